"""Inference output files, one writer per format, all in label-map terms (raw category ids, names, colours).

Layout under the inference results_dir (`<stem>` = the image's path relative to the input folder,
without extension; sub-folders are kept):

    semantic/<stem>.png      single-channel PNG, pixel = raw category id (8-bit, 16-bit when an id > 255);
                             only label-map categories are predicted (scores of other class indices are
                             ignored)                                                       -- every mode
    panoptic/<stem>.png      COCO panoptic PNG, segment id = R + 256·G + 256²·B (0 = void) -- panoptic mode
    panoptic.json            COCO panoptic results {"images": [{"id", "file_name", "height", "width"}],
                             "annotations": [{"image_id", "file_name" (the PNG under panoptic/),
                             "segments_info": [{"id", "category_id", "isthing", "score", "area", "bbox"}]}],
                             "categories": [...]}                                         -- panoptic mode
    instances.json           COCO results [{"image_id", "file_name", "category_id", "score", "bbox",
                             "segmentation": {"size": [h, w], "counts": RLE string}}] of thing
                             categories                                                   -- instance mode

`image_id` is the integer COCO id of the image (from the dataset's annotations when known, see
`image_ids.py`), so panopticapi's `pq_compute` and pycocotools' `loadRes`/`COCOeval` read the files as written.
    overlays/<stem>.jpg      the image blended with label-map colours (segments outlined)  -- every mode
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from mask2former.data.io import id_to_rgb, read_image
from mask2former.data.label_map import Categories

OVERLAY_ALPHA = 0.5
OVERLAY_INSTANCE_SCORE = 0.5


def semantic_class_map(scores: torch.Tensor, categories: Categories) -> np.ndarray:
    """[K, H, W] class scores -> int64 [H, W] train ids, choosing only among label-map categories."""
    known = sorted(c.train_id for c in categories if c.train_id < scores.shape[0])
    index = torch.tensor(known, dtype=torch.long, device=scores.device)
    best = scores.index_select(0, index).argmax(0)  # position among known train ids
    return index[best].cpu().numpy()


def train_to_raw_map(train_ids: np.ndarray, categories: Categories) -> np.ndarray:
    """Train ids -> raw category ids, via a lookup table."""
    table = np.zeros(max(categories.min_num_classes, int(train_ids.max(initial=0)) + 1), dtype=np.int64)
    for category in categories:
        table[category.train_id] = category.id
    return table[train_ids]


def write_semantic_png(path: Path, raw_ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if int(raw_ids.max(initial=0)) <= 255:
        Image.fromarray(raw_ids.astype(np.uint8), mode="L").save(path)
    else:
        Image.fromarray(raw_ids.astype(np.uint16)).save(path)


def panoptic_record(id_map: np.ndarray, segments: Sequence[dict], categories: Categories, *, image_id: int,
                    file_name: str) -> tuple[np.ndarray, dict]:
    """Keep label-map segments only; returns (id map with dropped segments set to 0, COCO annotation)."""
    kept, out_map = [], np.zeros_like(id_map)
    for segment in segments:
        train_id = int(segment["category_id"])
        if train_id not in categories.train_to_raw:
            continue
        mask = id_map == int(segment["id"])
        area = int(mask.sum())
        if area == 0:
            continue
        out_map[mask] = int(segment["id"])
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        kept.append({
            "id": int(segment["id"]),
            "category_id": int(categories.train_to_raw[train_id]),
            "isthing": bool(segment.get("isthing", categories.by_train_id(train_id).isthing)),
            "score": float(segment.get("score", 1.0)),
            "area": area,
            "bbox": [float(v) for v in mask_utils.toBbox(encoded).tolist()],
        })
    return out_map, {"image_id": image_id, "file_name": file_name, "segments_info": kept}


def write_panoptic_png(path: Path, id_map: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(id_to_rgb(id_map.astype(np.int64)).astype(np.uint8), mode="RGB").save(path)


def instance_records(masks: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, categories: Categories, *,
                     image_id: int, file_name: str) -> list[dict]:
    """COCO result records (RLE masks) for the label map's thing categories, highest score first."""
    records = []
    order = torch.argsort(scores, descending=True).tolist()
    array = masks.cpu().numpy().astype(np.uint8)
    things = categories.thing_train_ids
    for i in order:
        train_id = int(labels[i])
        if train_id not in things:
            continue
        rle = mask_utils.encode(np.asfortranarray(array[i]))
        records.append({
            "image_id": image_id,
            "file_name": file_name,
            "category_id": int(categories.train_to_raw[train_id]),
            "score": float(scores[i]),
            "bbox": [float(v) for v in mask_utils.toBbox(rle).tolist()],
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        })
    return records


def _instance_color(base: tuple[int, int, int], index: int) -> np.ndarray:
    """The category colour, nudged per instance so touching instances of one class stay apart."""
    rng = np.random.default_rng(index + 1)
    return np.clip(np.asarray(base, dtype=np.int64) + rng.integers(-40, 41, size=3), 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, colors: np.ndarray, painted: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Blend uint8 [H, W, 3] colours over the image where `painted`, and draw `edges` solid."""
    out = image.astype(np.float32)
    out[painted] = (1 - OVERLAY_ALPHA) * out[painted] + OVERLAY_ALPHA * colors[painted].astype(np.float32)
    out[edges] = colors[edges]
    return out.clip(0, 255).astype(np.uint8)


def boundaries(label_map: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour carries another label."""
    edges = np.zeros(label_map.shape, dtype=bool)
    edges[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edges[:-1, :] |= label_map[:-1, :] != label_map[1:, :]
    return edges


def semantic_overlay(image: np.ndarray, train_ids: np.ndarray, categories: Categories) -> np.ndarray:
    palette = categories.palette(int(train_ids.max(initial=0)) + 1)
    colors = palette[train_ids]
    return overlay(image, colors, np.ones(train_ids.shape, dtype=bool), boundaries(train_ids))


def panoptic_overlay(image: np.ndarray, id_map: np.ndarray, segments: Sequence[dict],
                     categories: Categories) -> np.ndarray:
    colors = np.zeros(image.shape, dtype=np.uint8)
    for index, segment in enumerate(segments):
        train_id = int(segment["category_id"])
        base = categories.by_train_id(train_id).color
        color = _instance_color(base, index) if segment.get("isthing") else np.asarray(base, dtype=np.uint8)
        colors[id_map == int(segment["id"])] = color
    return overlay(image, colors, id_map > 0, boundaries(id_map))


def instance_overlay(image: np.ndarray, masks: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                     categories: Categories) -> np.ndarray:
    """Instances scoring above `OVERLAY_INSTANCE_SCORE`, lowest score painted first."""
    colors = np.zeros(image.shape, dtype=np.uint8)
    owner = np.zeros(image.shape[:2], dtype=np.int64)
    array = masks.cpu().numpy()
    order = torch.argsort(scores).tolist()
    for rank, i in enumerate(order, start=1):
        train_id = int(labels[i])
        if float(scores[i]) < OVERLAY_INSTANCE_SCORE or train_id not in categories.thing_train_ids:
            continue
        colors[array[i]] = _instance_color(categories.by_train_id(train_id).color, i)
        owner[array[i]] = rank
    return overlay(image, colors, owner > 0, boundaries(owner))


def write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=92)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def categories_json(categories: Categories) -> list[dict]:
    return [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)} for c in categories]


@dataclass(frozen=True)
class ImagePrediction:
    """One image's outputs in label-map terms, exactly what the files below hold for it."""

    image_id: int
    file_name: str
    semantic: np.ndarray                  # int64 [H, W] raw category ids
    panoptic_map: np.ndarray | None       # int64 [H, W] segment ids (0 = void)          -- panoptic mode
    panoptic: dict | None                 # COCO panoptic annotation of panoptic_map     -- panoptic mode
    instances: list[dict] | None          # COCO results with RLE masks                  -- instance mode

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (maps as nested lists): what the MLflow model returns per image."""
        record: dict[str, Any] = {"image_id": self.image_id, "file_name": self.file_name,
                                  "height": int(self.semantic.shape[0]), "width": int(self.semantic.shape[1]),
                                  "semantic": self.semantic.tolist()}
        if self.panoptic_map is not None and self.panoptic is not None:
            record["panoptic"] = self.panoptic_map.tolist()
            record["segments_info"] = self.panoptic["segments_info"]
        if self.instances is not None:
            record["instances"] = self.instances
        return record


def predict_image(meta: Mapping[str, Any], result: Mapping[str, Any], *, mode: str,
                  categories: Categories) -> ImagePrediction:
    """The post-processor's `result` for one image (`meta` from the collate) as label-map outputs."""
    stem = str(meta["file_name"]).rsplit(".", 1)[0]
    image_id = int(meta["image_id"])
    train_ids = semantic_class_map(result["sem_seg"], categories)
    panoptic_map = panoptic = instances = None
    if mode == "panoptic":
        segments = result["panoptic_seg"]
        panoptic_map, panoptic = panoptic_record(segments.id_map.cpu().numpy(), segments.segments_info, categories,
                                                 image_id=image_id, file_name=f"{stem}.png")
    elif mode == "instance":
        found = result["instances"]
        instances = instance_records(found.masks, found.scores, found.labels, categories, image_id=image_id,
                                     file_name=str(meta["file_name"]))
    return ImagePrediction(image_id, str(meta["file_name"]), train_to_raw_map(train_ids, categories),
                           panoptic_map, panoptic, instances)


class PredictionWriter:
    """Writes post-processed predictions of a folder of images, one image at a time: semantic PNG maps
    (raw category ids), colour overlays, and per mode the COCO panoptic PNGs + JSON or instance RLE JSON.
    Shared by PyTorch inference and deploy-side (ONNX Runtime / TensorRT) inference so both write the
    same files."""

    def __init__(self, results_dir: Path, *, mode: str, categories: Any, image_root: Path) -> None:
        self.results_dir = Path(results_dir)
        self.mode = mode
        self.categories = categories
        self.image_root = Path(image_root)
        self.panoptic_annotations: list[dict] = []
        self.instance_results: list[dict] = []
        self.images: list[dict] = []

    def add(self, meta: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """One image's `meta` (from the collate) and its post-processor `result`."""
        categories, results_dir = self.categories, self.results_dir
        stem = str(meta["file_name"]).rsplit(".", 1)[0]
        height, width = (int(v) for v in meta["orig_size"])
        prediction = predict_image(meta, result, mode=self.mode, categories=categories)
        self.images.append({"id": prediction.image_id, "file_name": meta["file_name"], "height": height,
                            "width": width})
        image = read_image(self.image_root / meta["file_name"], record=meta["file_name"])
        train_ids = semantic_class_map(result["sem_seg"], categories)
        write_semantic_png(results_dir / "semantic" / f"{stem}.png", prediction.semantic)
        picture = semantic_overlay(image, train_ids, categories)
        if prediction.panoptic is not None and prediction.panoptic_map is not None:
            write_panoptic_png(results_dir / "panoptic" / f"{stem}.png", prediction.panoptic_map)
            self.panoptic_annotations.append(prediction.panoptic)
            kept_ids = {r["id"] for r in prediction.panoptic["segments_info"]}
            kept = [s for s in result["panoptic_seg"].segments_info if int(s["id"]) in kept_ids]
            picture = panoptic_overlay(image, prediction.panoptic_map, kept, categories)
        elif prediction.instances is not None:
            instances = result["instances"]
            self.instance_results += prediction.instances
            picture = instance_overlay(image, instances.masks, instances.scores, instances.labels, categories)
        write_jpeg(results_dir / "overlays" / f"{stem}.jpg", picture)

    def finish(self) -> dict[str, str]:
        """Write the per-folder JSON files; returns what was written (name -> relative path)."""
        written = {"semantic": "semantic/", "overlays": "overlays/"}
        if self.mode == "panoptic":
            write_json(self.results_dir / "panoptic.json", {"images": self.images,
                                                            "annotations": self.panoptic_annotations,
                                                            "categories": categories_json(self.categories)})
            written.update(panoptic="panoptic/", panoptic_json="panoptic.json")
        if self.mode == "instance":
            write_json(self.results_dir / "instances.json", self.instance_results)
            written["instances_json"] = "instances.json"
        return written
