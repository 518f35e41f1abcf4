"""`dataset` section: train/val/test sources, label map, normalisation and augmentation."""

from __future__ import annotations

from dataclasses import dataclass

from mask2former.config.fields import (
    INF,
    bool_field,
    enum_field,
    int_field,
    list_field,
    section,
    str_field,
)

DATASET_TYPES = ("coco", "ade", "coco_panoptic")


@dataclass
class DatasetSplitConfig:
    type: str = enum_field("ade", DATASET_TYPES, title="dataset format",
                           description="coco: COCO instance JSON; coco_panoptic: COCO panoptic JSON + PNGs; ade: JSON Lines of {img, segm} pairs under root_dir.")
    name: str = str_field("", title="dataset name", description="A name for logs.")
    panoptic_json: str = str_field("", title="COCO panoptic JSON", description="Panoptic annotations (coco_panoptic).")
    instance_json: str = str_field("", title="COCO instance JSON", description="Instance annotations (coco; also things of coco_panoptic).")
    img_dir: str = str_field("", title="image directory", description="Folder (or .tar.gz) of images.")
    panoptic_dir: str = str_field("", title="panoptic PNG directory", description="Folder (or .tar.gz) of panoptic PNGs (coco_panoptic).")
    root_dir: str = str_field("", title="root directory", description="Root that ade annotation paths are relative to.")
    annot_file: str = str_field("", title="semantic annotation file", description="JSON Lines file of {\"img\": ..., \"segm\": ...} records (ade).")
    batch_size: int = int_field(1, title="batch size", minimum=1, maximum=INF, math_cond="> 0", description="Images per batch per device.")
    num_workers: int = int_field(1, title="data loader workers", minimum=0, maximum=INF, description="Worker processes loading data.")
    target_size: list = list_field([], title="target size", item_type="int", minimum=1, max_items=2,
                                   description="Fixed [height, width] every image is resized to; empty keeps the augmentation's sizes.")


@dataclass
class AugmentationConfig:
    train_min_size: list = list_field([640], title="train shortest-edge sizes", item_type="int", minimum=32, min_items=1,
                                      description="Shortest-edge sizes drawn per training image (multi-scale training).")
    train_max_size: int = int_field(
        2560, title="train longest-edge cap", minimum=32, maximum=INF, automl_enabled=True, x_search_range=(512, 4096),
        description="Longest edge allowed after the training resize.",
    )
    train_crop_size: list = list_field([640, 640], title="train crop size", item_type="int", minimum=1, min_items=2, max_items=2,
                                       description="[height, width] of the random training crop.")
    test_min_size: int = int_field(
        640, title="test shortest edge", minimum=32, maximum=INF, automl_enabled=True, x_search_range=(320, 1024),
        description="Shortest edge of images at evaluation.",
    )
    test_max_size: int = int_field(
        640, title="test longest-edge cap", minimum=32, maximum=INF, automl_enabled=True, x_search_range=(320, 2048),
        math_cond=">= depends_on", depends_on="dataset.augmentation.test_min_size",
        description="Longest edge allowed at evaluation; never below test_min_size.",
    )


@dataclass
class QuantCalibrationDatasetConfig:
    images_dir: str = str_field("", title="calibration images", description="Folder (or .tar.gz) of calibration images for static quantization.")


@dataclass
class DatasetConfig:
    train: DatasetSplitConfig = section(DatasetSplitConfig, title="train split", description="Training data.")
    val: DatasetSplitConfig = section(DatasetSplitConfig, title="validation split", description="Validation data.")
    test: DatasetSplitConfig = section(DatasetSplitConfig, title="test split", description="Test / inference data.")
    pin_memory: bool = bool_field(True, title="pin memory", description="Pin host memory for faster GPU transfers.")
    pixel_mean: list = list_field([0.485, 0.456, 0.406], title="pixel mean", item_type="float", min_items=3, max_items=3,
                                  description="Per-channel RGB mean of images scaled to [0, 1].")
    pixel_std: list = list_field([0.229, 0.224, 0.225], title="pixel std", item_type="float", minimum=0.0, min_items=3, max_items=3,
                                 description="Per-channel RGB standard deviation of images scaled to [0, 1].")
    augmentation: AugmentationConfig = section(AugmentationConfig, title="augmentation", description="Resize, crop and flip settings.")
    contiguous_id: bool = bool_field(False, title="contiguous ids",
                                     description="true: categories map to 0..N-1 in id order and num_classes must equal N; false: the raw category id is the class index and num_classes must exceed the largest id.")
    label_map: str = str_field("", title="label map", description="JSON list of {id, name, color, isthing} categories.")
    quant_calibration_dataset: QuantCalibrationDatasetConfig = section(QuantCalibrationDatasetConfig, title="quantization calibration", description="Data for static quantization.")
