"""Deploy-side evaluation: metrics of any `InferenceBackend` on a labelled split (what the `evaluate` action
runs when `evaluate.trt_engine` names a TensorRT engine or an ONNX file, `mask2former.actions.deploy_evaluate`).

The data path is the PyTorch evaluation's: `Mask2FormerDataModule` (same transforms, normalisation and
collate), the spec's `Postprocessor`, and the trainer's `MetricsSuite`; only the forward pass is the
backend's. So a deployed graph and its checkpoint are scored by the same code, and the same metric keys
come out (mIoU, pixel_acc, val_loss, plus PQ/SQ/RQ/PQ_th/PQ_st or AP...).

Graph backends take one fixed input size: the evaluation split is resized to it (its `target_size` is
set to the graph's H x W; a different `target_size` in the spec is replaced, with a notice).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mask2former.deploy.backends import InferenceBackend
from skillkit.errors import SpecError

if TYPE_CHECKING:
    from mask2former.config import DatasetConfig, ExperimentConfig


@dataclass(frozen=True)
class BackendEvaluation:
    """metrics: the MetricsSuite keys plus val_loss (None without a loss or images); seconds: wall time of the
    forward passes only."""

    metrics: dict[str, float | None]
    split: str
    num_images: int
    seconds: float
    notices: tuple[str, ...] = ()


def _sized_dataset_cfg(dataset_cfg: DatasetConfig, split: str, size: tuple[int, int] | None
                       ) -> tuple[DatasetConfig, list[str]]:
    """A copy of `cfg.dataset` whose `split` is resized to the graph's input size."""
    notices: list[str] = []
    if size is None:
        return dataset_cfg, notices
    split_cfg = getattr(dataset_cfg, split)
    current = list(split_cfg.target_size or [])
    wanted = [int(size[0]), int(size[1])]
    if current and [current[0], current[-1]] != wanted:
        notices.append(f"dataset.{split}.target_size {current} replaced by the graph's input size {wanted}")
    return dataclasses.replace(dataset_cfg, **{split: dataclasses.replace(split_cfg, target_size=wanted)}), notices


@torch.no_grad()
def evaluate_backend(
    backend: InferenceBackend,
    cfg: ExperimentConfig,
    *,
    num_classes: int,
    split: str | None = None,
    batch_size: int | None = None,
    with_loss: bool = True,
    progress: Callable[[int], None] | None = None,
) -> BackendEvaluation:
    """Score `backend` on `split` (default: the PyTorch evaluate's choice) with `cfg`'s data and
    post-processing; `num_classes` is the graph's K."""
    from mask2former.data.build import evaluation_split
    from mask2former.model.build import build_criterion, build_postprocessor
    from mask2former.training.datamodule import Mask2FormerDataModule
    from mask2former.training.validation import MetricsSuite

    split = split or evaluation_split(cfg.dataset)
    dataset_cfg, notices = _sized_dataset_cfg(cfg.dataset, split, backend.input_size)
    data = Mask2FormerDataModule(dataset_cfg, mode=cfg.model.mode, num_classes=num_classes, eval_split=split,
                                 eval_batch_size=batch_size)
    data.check(training=False)
    postprocessor = build_postprocessor(cfg, thing_ids=sorted(data.categories.thing_train_ids))
    suite = MetricsSuite(mode=cfg.model.mode, categories=data.categories, num_classes=num_classes,
                         postprocessor=postprocessor)
    suite.reset()
    criterion = None
    if with_loss:
        loss_cfg = copy.deepcopy(cfg)
        loss_cfg.model.sem_seg_head.num_classes = num_classes
        criterion = build_criterion(loss_cfg, generator=torch.Generator().manual_seed(0))
    loss_sum, loss_images, images_seen, forward_seconds = 0.0, 0, 0, 0.0
    size = backend.input_size
    for batch in data.val_dataloader():
        images = batch["images"]
        if size is not None and tuple(images.shape[-2:]) != size:
            # The collate pads to a multiple of 32; the graph takes exactly its own size (the data was
            # resized to it, so only padding is cut).
            images = images[..., : size[0], : size[1]]
            batch = {**batch, "images": images}
        started = time.perf_counter()
        outputs = backend.predict(images)
        forward_seconds += time.perf_counter() - started
        suite.update(outputs, batch)
        count = int(images.shape[0])
        if criterion is not None:
            padded = [{"labels": t["labels"], "masks": t["masks"][..., : images.shape[-2], : images.shape[-1]]}
                      for t in batch["targets"]]
            losses = criterion(outputs, padded)
            loss_sum += float(torch.stack([v.float() for v in losses.values()]).sum()) * count
            loss_images += count
        images_seen += count
        if progress is not None:
            progress(images_seen)
    metrics: dict[str, float | None] = dict(suite.compute())
    if criterion is not None:
        metrics["val_loss"] = loss_sum / loss_images if loss_images else None
    return BackendEvaluation(metrics=metrics, split=split, num_images=images_seen, seconds=forward_seconds,
                             notices=tuple(notices))


def check_graph_classes(cfg: ExperimentConfig, backend: InferenceBackend, key: str) -> int:
    """The graph's K; SpecError when the spec's model.sem_seg_head.num_classes says otherwise."""
    graph_classes = backend.num_classes
    spec_classes = int(cfg.model.sem_seg_head.num_classes)
    if graph_classes is None:
        return spec_classes
    if graph_classes != spec_classes:
        raise SpecError(f"model.sem_seg_head.num_classes={spec_classes} but {key} '{backend.metadata.get('path')}' "
                        f"predicts {graph_classes} classes; set model.sem_seg_head.num_classes: {graph_classes} "
                        "(and the label map the model was trained with).")
    return graph_classes
