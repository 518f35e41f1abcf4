"""The `inference` action on a deployed graph: `inference.trt_engine` (a TensorRT engine, or an ONNX file for
ONNX Runtime) over every image of `dataset.test.img_dir`, writing the same files as the PyTorch inference
(`mask2former.actions.outputs`: semantic PNGs, COCO panoptic PNG + JSON, instance RLE JSON, overlays,
inference.json).

Images go through the PyTorch inference's reader (`ImageFolder`) and collate, resized to the graph's fixed
input size; the backend's raw outputs go through the spec's `Postprocessor` at each image's original size,
exactly as `mask2former.actions.inference` does with the checkpoint. The label map comes from
`dataset.label_map` (a deploy spec carries no checkpoint to fall back on).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from skillkit.errors import SpecError

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig


@torch.no_grad()
def predict_folder(backend: Any, cfg: ExperimentConfig, results_dir: Path, *, num_classes: int) -> dict[str, Any]:
    """Predict every image of dataset.test.img_dir with `backend`; write the output files; return the summary."""
    from torch.utils.data import DataLoader

    from mask2former.actions import outputs as out
    from mask2former.actions.common import batch_size_for
    from mask2former.actions.inference import image_folder, list_images
    from mask2former.data.archive import resolve_folder
    from mask2former.data.build import build_collate, load_categories
    from mask2former.data.transforms import AugmentationSettings, Compose, FixedResize, build_transforms
    from mask2former.model.build import build_postprocessor

    if not cfg.dataset.test.img_dir:
        raise SpecError("dataset.test.img_dir is empty: set it to the folder (or .tar.gz) of images to predict.")
    if not cfg.dataset.label_map:
        raise SpecError("dataset.label_map is empty: deploy inference needs the label map the model was trained with "
                        "(category names, colours and raw ids of the outputs).")
    categories = load_categories(cfg.dataset, cfg.dataset.train, split="train")
    categories.check_num_classes(num_classes)
    mode = cfg.model.mode
    postprocessor = build_postprocessor(cfg, thing_ids=sorted(categories.thing_train_ids))
    root = resolve_folder(cfg.dataset.test.img_dir)
    files = list_images(root)
    size = backend.input_size
    if size is not None:
        transforms = Compose([FixedResize(size)])
    else:
        settings = AugmentationSettings.from_config(cfg.dataset.augmentation, cfg.dataset.test.target_size or (),
                                                    target_key="dataset.test.target_size")
        transforms = build_transforms(settings, is_train=False)
    loader = DataLoader(image_folder(cfg, root, files, transforms), batch_size=batch_size_for(cfg, "inference", "test"),
                        shuffle=False, num_workers=int(cfg.dataset.test.num_workers),
                        collate_fn=build_collate(cfg.dataset))
    writer = out.PredictionWriter(results_dir, mode=mode, categories=categories, image_root=root)
    for batch in loader:
        images = batch["images"]
        if size is not None:
            images = images[..., : size[0], : size[1]]  # collate pads to a multiple of 32
        predictions = backend.predict(images)
        metas = batch["metas"]
        results = postprocessor(predictions, input_size=tuple(images.shape[-2:]),
                                image_sizes=[m["image_size"] for m in metas],
                                output_sizes=[m["orig_size"] for m in metas])
        for meta, result in zip(metas, results):
            writer.add(meta, result)
    written = writer.finish()
    summary = {"trt_engine": str(backend.metadata.get("path", "")), "backend": backend.name, "mode": mode,
               "num_images": len(files), "images": str(root), "outputs": written}
    out.write_json(results_dir / "inference.json", summary)
    return summary


def run_deploy_inference(cfg: ExperimentConfig, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `inference` action with `inference.trt_engine` set."""
    from mask2former.actions.common import action_results_dir
    from mask2former.actions.status import recorded
    from mask2former.deploy.backends import open_backend
    from mask2former.deploy.evaluate import check_graph_classes
    from skillkit.status.writer import SUCCESS

    results_dir = action_results_dir(cfg, "inference")
    engine = str(cfg.inference.trt_engine)
    with recorded(results_dir, f"Inference with {engine}") as writer:
        device = f"cuda:{int(cfg.inference.gpu_ids[0])}" if torch.cuda.is_available() else "cpu"
        with open_backend(engine, device=device) as backend:
            num_classes = check_graph_classes(cfg, backend, "inference.trt_engine")
            summary = predict_folder(backend, cfg, Path(results_dir), num_classes=num_classes)
        writer.write(SUCCESS, f"Inference with {engine} ({summary['backend']}) finished: {summary['num_images']} "
                              f"images written to {results_dir}.")
    print(f"{summary['num_images']} images -> {', '.join(summary['outputs'].values())} in {results_dir}")
    return summary
