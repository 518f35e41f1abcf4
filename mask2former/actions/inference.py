"""`mask2former inference -e spec.yaml [a.b=c ...]`: predictions for a folder of images.

* Images: every image file under `dataset.test.img_dir` (a folder or a `.tar.gz`, searched recursively,
  sorted by path). They go through the evaluation pipeline of training (test resize or `target_size`,
  the data package's normalisation and padding), so the model sees what it saw in validation.
* Model: rebuilt from the spec stored in `inference.checkpoint`; post-processing settings (`model.mode`,
  thresholds, `test_topk_per_image`) from this spec. Predictions are made at each image's original size.
* Label map: `dataset.label_map` of this spec, else the one the checkpoint was trained with (names,
  colours and raw ids for the outputs).
* Batch size: `inference.batch_size`, or `dataset.test.batch_size` when -1.
* Output files: see `mask2former.actions.outputs`; plus `inference.json` (a summary) and status.json lines.
  The COCO JSON files carry each image's integer id from the dataset's annotations when known
  (`image_ids.py`), so pycocotools and panopticapi score them as written.
* `inference.trt_engine` set (an engine or an ONNX file): the command hands over to the deploy side
  (`mask2former.actions.deploy_inference.run_deploy_inference`), which writes the same files.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mask2former.actions import outputs as out
from mask2former.actions.common import (
    action_results_dir,
    add_spec_arguments,
    batch_size_for,
    eval_device,
    load_action_config,
    load_eval_model,
    reject_trt_engine,
)
from mask2former.training.failures import classify
from skillkit.errors import DataError, SpecError
from skillkit.status.writer import ERROR, FAILURE, STARTED, SUCCESS, StatusWriter

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig
    from mask2former.data.label_map import Categories

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursive, sorted by relative path)."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise DataError(f"dataset.test.img_dir '{folder}' holds no image ({', '.join(IMAGE_SUFFIXES)}).")
    return found


def image_folder(cfg: ExperimentConfig, root: Path, files: list[Path], transforms: Any) -> ImageFolder:
    """The images of `dataset.test.img_dir`, each with its COCO image id (see `image_ids.py`)."""
    from mask2former.actions.image_ids import annotation_files, assign_image_ids

    relative = [path.relative_to(root).as_posix() for path in files]
    return ImageFolder(root, files, transforms, image_ids=assign_image_ids(relative, annotation_files(cfg.dataset)))


class ImageFolder(Dataset):
    """Unlabelled images through the evaluation transforms; items carry empty targets so the data
    package's collate function batches them exactly like validation data."""

    def __init__(self, root: Path, files: list[Path], transforms: Any, *,
                 image_ids: Mapping[str, int] | None = None) -> None:
        self.root = root
        self.files = files
        self.transforms = transforms
        self.image_ids = dict(image_ids or {})

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> tuple[np.ndarray, str]:
        """(uint8 [H, W, 3] RGB image, its path relative to the folder)."""
        from mask2former.data.io import read_image

        path = self.files[index]
        relative = path.relative_to(self.root).as_posix()
        return read_image(path, record=relative), relative

    def __getitem__(self, index: int) -> dict[str, Any]:
        from mask2former.data.label_map import IGNORE_INDEX
        from mask2former.data.transforms import Sample

        array, relative = self._read(index)
        image = torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1).float().div_(255.0)  # HWC→CHW
        height, width = array.shape[:2]
        sample = self.transforms(Sample(image=image, id_map=torch.zeros((height, width), dtype=torch.int64)),
                                 np.random.default_rng(index))
        h, w = sample.size
        return {
            "image": sample.image,
            "labels": torch.zeros((0,), dtype=torch.long),
            "masks": torch.zeros((0, h, w), dtype=torch.bool),
            "sem_seg": torch.full((h, w), IGNORE_INDEX, dtype=torch.long),
            "image_id": self.image_ids.get(relative, index + 1),
            "file_name": relative,
            "orig_size": (int(height), int(width)),
            "panoptic": None,
            "instances": None,
        }


class ImageArrays(ImageFolder):
    """Decoded images held in memory (what the MLflow model receives), through the same transforms."""

    def __init__(self, images: list[np.ndarray], file_names: list[str], transforms: Any) -> None:
        super().__init__(Path("."), [Path(name) for name in file_names], transforms,
                         image_ids={name: index + 1 for index, name in enumerate(file_names)})
        self.images = images
        self.file_names = file_names

    def _read(self, index: int) -> tuple[np.ndarray, str]:
        return self.images[index], self.file_names[index]


def _categories(cfg: ExperimentConfig, trained_cfg: ExperimentConfig, num_classes: int) -> Categories:
    from mask2former.data.build import load_categories

    source = cfg if cfg.dataset.label_map else trained_cfg
    try:
        categories = load_categories(source.dataset, source.dataset.train, split="train")
    except SpecError:
        raise SpecError("inference needs category names and colours: set dataset.label_map (the checkpoint's spec "
                        "names no label map or annotation file either).") from None
    categories.check_num_classes(num_classes)
    return categories


def run_inference(cfg: ExperimentConfig, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Predict every image of `dataset.test.img_dir`; returns the summary written to inference.json."""
    results_dir = action_results_dir(cfg, "inference")
    writer = StatusWriter(results_dir, num_epochs=None)
    writer.write(STARTED, f"Inference with {cfg.inference.checkpoint}")
    try:
        summary = _infer(cfg, results_dir)
    except BaseException as error:
        writer.write(FAILURE, f"{type(error).__name__}: {error}", verbosity=ERROR, error_class=classify(error))
        raise
    writer.write(SUCCESS, f"Inference finished: {summary['num_images']} images written to {results_dir}.")
    return summary


class Predictor:
    """The checkpoint's model with this spec's post-processing: what `mask2former inference` and the MLflow
    model (`mask2former.serving`) both predict with, so they return the same outputs for the same image."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        from mask2former.data.transforms import AugmentationSettings, build_transforms
        from mask2former.model.build import build_postprocessor

        self.cfg = cfg
        self.device = eval_device(cfg.inference, action="inference")
        model, trained_cfg, _ = load_eval_model(cfg.inference.checkpoint)
        self.model = model.to(self.device.torch_device)
        self.categories = _categories(cfg, trained_cfg, int(trained_cfg.model.sem_seg_head.num_classes))
        self.mode = cfg.model.mode
        self.postprocessor = build_postprocessor(cfg, thing_ids=sorted(self.categories.thing_train_ids))
        settings = AugmentationSettings.from_config(cfg.dataset.augmentation, cfg.dataset.test.target_size or (),
                                                    target_key="dataset.test.target_size")
        self.transforms = build_transforms(settings, is_train=False)

    @torch.no_grad()
    def run(self, dataset: Dataset, batch_size: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(collate meta, post-processor result) for every image of `dataset`, in order."""
        from mask2former.data.build import build_collate

        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                            num_workers=int(self.cfg.dataset.test.num_workers),
                            collate_fn=build_collate(self.cfg.dataset))
        for batch in loader:
            images = batch["images"].to(self.device.torch_device)
            predictions = self.model(images)
            metas = batch["metas"]
            results = self.postprocessor(predictions, input_size=tuple(images.shape[-2:]),
                                         image_sizes=[m["image_size"] for m in metas],
                                         output_sizes=[m["orig_size"] for m in metas])
            yield from zip(metas, results)


def _infer(cfg: ExperimentConfig, results_dir: Path) -> dict[str, Any]:
    from mask2former.data.archive import resolve_folder

    reject_trt_engine(cfg, "inference")
    if not cfg.dataset.test.img_dir:
        raise SpecError("dataset.test.img_dir is empty: set it to the folder (or .tar.gz) of images to predict.")
    predictor = Predictor(cfg)
    if predictor.device.notice:
        print(f"note: {predictor.device.notice}")
    root = resolve_folder(cfg.dataset.test.img_dir)
    files = list_images(root)
    dataset = image_folder(cfg, root, files, predictor.transforms)
    writer = out.PredictionWriter(results_dir, mode=predictor.mode, categories=predictor.categories, image_root=root)
    for meta, result in predictor.run(dataset, batch_size_for(cfg, "inference", "test")):
        writer.add(meta, result)
    written = writer.finish()
    summary = {"checkpoint": str(cfg.inference.checkpoint), "mode": predictor.mode, "num_images": len(files),
               "images": str(root), "outputs": written}
    out.write_json(results_dir / "inference.json", summary)
    return summary


def handle(args: argparse.Namespace) -> int:
    cfg, spec = load_action_config(args, "inference")
    if cfg.inference.trt_engine:
        # A TensorRT engine or an ONNX file: the deploy side runs it and writes the same files.
        from mask2former.actions.deploy_inference import run_deploy_inference

        run_deploy_inference(cfg, spec)
        return 0
    summary = run_inference(cfg, spec)
    print(f"{summary['num_images']} images -> {', '.join(summary['outputs'].values())} "
          f"in {action_results_dir(cfg, 'inference')}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inference", help="predict a folder of images (PNG maps, COCO JSON, overlays)")
    add_spec_arguments(parser)
    parser.set_defaults(func=handle)
