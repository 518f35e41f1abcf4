"""A tiny Mask2Former for tests and CPU smoke runs (the project's `BoringModel`).

Swin embed 32, depths [2, 2, 2, 2] (so shifted windows run), window 4, one deformable encoder
layer, 3 decoder layers of width 32, 10 queries: a forward + backward on a 64 px batch of two
takes well under a second on one CPU core.

- `tiny_spec_overrides()` -> dotted spec overrides ("model.backbone.swin.embed_dim": 32, ...) for
  tests that write spec files or pass overrides to the CLI;
- `tiny_config(...)` -> an `ExperimentConfig` with those values;
- `tiny_model_kwargs(...)` -> the resolved constructor arguments (`model_constructor_args`);
- `build_tiny_model(...)` / `build_tiny_criterion(...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mask2former.config import ExperimentConfig
from mask2former.model.build import build_criterion, build_model, model_constructor_args
from mask2former.model.criterion import SetCriterion
from mask2former.model.mask2former import Mask2FormerModel

TINY_IMAGE_SIZE = 64


def tiny_spec_overrides(num_classes: int = 5) -> dict[str, Any]:
    """Dotted spec keys -> values of the tiny model (model section only)."""
    return {
        "model.backbone.swin.embed_dim": 32,
        "model.backbone.swin.depths": [2, 2, 2, 2],
        "model.backbone.swin.num_heads": [1, 2, 4, 8],
        "model.backbone.swin.window_size": 4,
        "model.backbone.swin.pretrain_img_size": TINY_IMAGE_SIZE,
        "model.backbone.swin.drop_path_rate": 0.1,
        "model.sem_seg_head.convs_dim": 32,
        "model.sem_seg_head.mask_dim": 32,
        "model.sem_seg_head.transformer_enc_layers": 1,
        "model.sem_seg_head.transformer_dim_feedforward": 64,
        "model.sem_seg_head.transformer_nheads": 4,
        "model.sem_seg_head.num_classes": num_classes,
        "model.mask_former.hidden_dim": 32,
        "model.mask_former.nheads": 4,
        "model.mask_former.dim_feedforward": 64,
        "model.mask_former.dec_layers": 3,
        "model.mask_former.num_object_queries": 10,
        "model.mask_former.train_num_points": 1024,
    }


def tiny_config(num_classes: int = 5, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Default `ExperimentConfig` with the tiny model values, then `overrides` (dotted keys)."""
    cfg = ExperimentConfig()
    for dotted, value in {**tiny_spec_overrides(num_classes), **(overrides or {})}.items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for name in parents:
            node = getattr(node, name)
        if not hasattr(node, leaf):
            raise KeyError(f"no config field {dotted!r}")
        setattr(node, leaf, value)
    return cfg


def tiny_model_kwargs(num_classes: int = 5, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The resolved constructor arguments of the tiny model (see `model_constructor_args`)."""
    return model_constructor_args(tiny_config(num_classes, overrides))


def build_tiny_model(num_classes: int = 5, overrides: Mapping[str, Any] | None = None, *, seed: int = 0) -> Mask2FormerModel:
    """The tiny model, initialised from `seed` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(tiny_config(num_classes, overrides))


def build_tiny_criterion(num_classes: int = 5, overrides: Mapping[str, Any] | None = None) -> SetCriterion:
    return build_criterion(tiny_config(num_classes, overrides))
