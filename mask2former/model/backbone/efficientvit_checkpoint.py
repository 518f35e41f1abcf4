"""Load the released EfficientViT checkpoints (classification or segmentation) into `EfficientViT`.

Accepted files: `{"state_dict": sd}` (the release format, e.g. `efficientvit_l1_r224.pt` or
`efficientvit_seg_l1_ade20k.pt`), `{"model": sd}` or a bare state dict; keys may carry a `module.`
prefix. A release model is `backbone` + `head`: when keys start with `backbone.`, those are the
backbone's (prefix removed) and `head.*` (the ImageNet classifier or the segmentation head) is
dropped. A bare backbone state dict (keys `stages.*`, `input_stem.*`) is taken as is.

Our module names equal the release's, so nothing is renamed: every remaining key must match a
parameter/buffer of the same shape, and every model key must be provided; otherwise
`PretrainedWeightsError` lists the mismatched, unexpected and missing keys and names the
`model.backbone.efficientvit.name` that was built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from mask2former.model.backbone.efficientvit import EfficientViT
from mask2former.model.backbone.swin_checkpoint import key_mismatch_message, read_checkpoint_state_dict
from mask2former.model.errors import PretrainedWeightsError

_MODEL_PREFIX = "backbone."
_DROPPED_PREFIX = "head."


@dataclass(frozen=True)
class EfficientViTLoadReport:
    """What happened to each checkpoint key, for logging."""

    loaded: tuple[str, ...]
    dropped: tuple[str, ...]


def adapt_efficientvit_state_dict(
    state: Mapping[str, Tensor], backbone: EfficientViT, *, source: str = "checkpoint"
) -> tuple[dict[str, Tensor], EfficientViTLoadReport]:
    """Select the backbone keys of a release state dict; raise if anything does not fit `backbone`."""
    dropped: list[str] = []
    if any(k.startswith(_MODEL_PREFIX) for k in state):
        own = {}
        for key, value in state.items():
            if key.startswith(_MODEL_PREFIX):
                own[key[len(_MODEL_PREFIX):]] = value
            elif key.startswith(_DROPPED_PREFIX):
                dropped.append(key)
            else:
                own[key] = value  # reported as unexpected below
        state = own
    target = backbone.state_dict()
    adapted: dict[str, Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key, value in state.items():
        if key not in target:
            unexpected.append(key)
        elif value.shape != target[key].shape:
            mismatched.append(f"{key} (checkpoint {list(value.shape)} vs model {list(target[key].shape)})")
        else:
            adapted[key] = value.to(target[key].dtype)
    missing = [k for k in target if k not in adapted and k not in {m.split(" ")[0] for m in mismatched}]
    if unexpected or mismatched or missing:
        raise PretrainedWeightsError(key_mismatch_message(
            f"model.backbone.pretrained_weights: {source!r} does not fit the EfficientViT backbone built from "
            f"model.backbone.efficientvit.name {backbone.name!r} (stage widths {backbone.num_features}).",
            mismatched, unexpected, missing,
            "Set model.backbone.efficientvit.name (b0-b3, l0-l3) to the checkpoint's model, or point "
            "pretrained_weights at a matching EfficientViT release file."))
    return adapted, EfficientViTLoadReport(tuple(adapted), tuple(dropped))


def load_efficientvit_checkpoint(backbone: EfficientViT, path: str | os.PathLike) -> EfficientViTLoadReport:
    """Load an EfficientViT release checkpoint file into `backbone` (in place); see the module docstring."""
    state = read_checkpoint_state_dict(path, family="EfficientViT", example="efficientvit_l1_r224.pt")
    adapted, report = adapt_efficientvit_state_dict(state, backbone, source=os.fspath(path))
    backbone.load_state_dict(adapted, strict=True)
    return report
