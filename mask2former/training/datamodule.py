"""LightningDataModule over `cfg.dataset`: train/val (and test) loaders with one shared class mapping.

The data package is the composition root for datasets (`mask2former.data.build`); this module only decides
which split feeds which loop and wires the loader settings:

* `dataset.<split>.batch_size` / `num_workers` per split, `dataset.pin_memory` (effective on CUDA only);
* training shuffles with `EpochShuffleSampler` and augments through `EpochSeededDataset`: the order of
  epoch e and the augmentation of each item are pure functions of (seed, e, index), so a resumed run sees
  exactly the data the uninterrupted run would have seen, with any number of workers (Lightning tells
  the sampler the epoch through `set_epoch`; `start_epoch` covers the first iterator, which Lightning
  creates before that call);
* `train.iters_per_epoch` is applied by the Trainer (`limit_train_batches`), not here;
* `train.use_distributed_sampler`: when true Lightning wraps the loaders in a DistributedSampler so each
  process sees its own shard; when false (TAO's default) every process iterates the whole dataset.
  On a single process it changes nothing.

The label map (`Categories`) is read once from the train split and reused for val/test, so every split
means the same class by the same index.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mask2former.config import DatasetConfig, DatasetSplitConfig
from mask2former.data.build import build_collate, build_dataloader, build_dataset, check_mode, load_categories
from mask2former.data.label_map import Categories
from mask2former.data.worker_init import ignore_sigterm_in_worker


class EpochShuffleSampler(Sampler[int]):
    """Yields `epoch * length + i` for a random permutation i of `range(length)` that depends only on
    (`seed`, epoch); `EpochSeededDataset` decodes the pair. Carrying the epoch inside the index reaches
    data-loader workers (also persistent ones), which a sampler attribute would not.

    Args:
        length: dataset size.
        seed: base seed (`train.seed` as resolved).
        start_epoch: epoch index of the first iteration (the completed-epoch count when resuming).
    """

    def __init__(self, length: int, *, seed: int, start_epoch: int = 0) -> None:
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = int(start_epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        offset = self.epoch * self.length
        return iter((torch.randperm(self.length, generator=generator) + offset).tolist())


class EpochSeededDataset(Dataset):
    """Wraps a training dataset so the augmentation of item i in epoch e is a pure function of (seed, e, i).

    The data package draws augmentation randomness from torch's global generator; here each item is
    loaded under a forked generator seeded from (seed, epoch, index), so neither the data order, nor
    prefetching, nor worker processes, nor a resume can change what an item looks like.
    """

    def __init__(self, dataset: Dataset, *, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, encoded: int) -> Any:
        epoch, index = divmod(int(encoded), len(self))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 1_000_033 + index)
            return self.dataset[index]


class Mask2FormerDataModule(L.LightningDataModule):
    """Data for one experiment.

    Args:
        dataset_cfg: `cfg.dataset`.
        mode: `cfg.model.mode`.
        num_classes: `cfg.model.sem_seg_head.num_classes`, checked against the label map.
        seed: seed of the training shuffle (`train.seed` as resolved by the trainer).
        start_epoch: completed epochs of the checkpoint being resumed (0 for a fresh run).
        eval_split: which split feeds the validation loop ("val", or "test" for evaluation on the test split).
        eval_batch_size: overrides the evaluation split's batch size when given (evaluate.batch_size).
    """

    def __init__(self, dataset_cfg: DatasetConfig, *, mode: str, num_classes: int | None, seed: int = 0,
                 start_epoch: int = 0, eval_split: str = "val", eval_batch_size: int | None = None) -> None:
        super().__init__()
        self.dataset_cfg = dataset_cfg
        self.mode = mode
        self.num_classes = num_classes
        self.seed = int(seed)
        self.start_epoch = int(start_epoch)
        self.eval_split = eval_split
        self.eval_batch_size = eval_batch_size
        self._categories: Categories | None = None
        self._train: DataLoader | None = None
        self._eval: DataLoader | None = None

    @property
    def categories(self) -> Categories:
        """The run's class mapping (label map, or the train annotation file's categories)."""
        if self._categories is None:
            self._categories = load_categories(self.dataset_cfg, self.dataset_cfg.train, split="train")
        return self._categories

    def check(self, *, training: bool = True) -> None:
        """Fail fast (SpecError/DataError) when `model.mode` does not fit a split's type/fields/categories,
        or a split's files are missing or malformed: both datasets are built now, before any training."""
        if training:
            check_mode(self.mode, self.dataset_cfg.train, self.categories, split="train")
        check_mode(self.mode, getattr(self.dataset_cfg, self.eval_split), self.categories, split=self.eval_split)
        if self.num_classes is not None:
            self.categories.check_num_classes(int(self.num_classes))
        if training:
            self.train_dataloader()
        self.val_dataloader()

    def _eval_split_cfg(self) -> DatasetSplitConfig:
        split_cfg: DatasetSplitConfig = getattr(self.dataset_cfg, self.eval_split)
        if self.eval_batch_size is not None and self.eval_batch_size > 0:
            import dataclasses

            split_cfg = dataclasses.replace(split_cfg, batch_size=int(self.eval_batch_size))
        return split_cfg

    def train_dataloader(self) -> DataLoader:
        if self._train is None:
            split_cfg = self.dataset_cfg.train
            dataset = build_dataset(split_cfg, dataset_cfg=self.dataset_cfg, mode=self.mode, is_train=True,
                                    categories=self.categories, num_classes=self.num_classes, split="train")
            batch_size = int(split_cfg.batch_size)
            workers = int(split_cfg.num_workers)
            self._train = DataLoader(
                EpochSeededDataset(dataset, seed=self.seed),
                batch_size=batch_size,
                sampler=EpochShuffleSampler(len(dataset), seed=self.seed, start_epoch=self.start_epoch),
                drop_last=len(dataset) >= batch_size,  # equal batch shapes, unless the dataset is smaller
                num_workers=workers,
                pin_memory=bool(self.dataset_cfg.pin_memory) and torch.cuda.is_available(),
                collate_fn=build_collate(self.dataset_cfg),
                persistent_workers=workers > 0,
                worker_init_fn=ignore_sigterm_in_worker,
            )
        return self._train

    def val_dataloader(self) -> DataLoader:
        if self._eval is None:
            self._eval = build_dataloader(self._eval_split_cfg(), dataset_cfg=self.dataset_cfg, mode=self.mode,
                                          is_train=False, categories=self.categories, num_classes=self.num_classes,
                                          split=self.eval_split)
        return self._eval

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
