"""Load the original Swin release checkpoints into `SwinTransformer`.

Accepted files: `{"model": state_dict}` (the release format, e.g.
`swin_tiny_patch4_window7_224_22k.pth`), `{"state_dict": ...}` or a bare state dict; keys may carry a
`backbone.` or `module.` prefix. What is adapted, and why:

- `head.*` (the ImageNet classifier), `*.attn_mask` and `*.relative_position_index` (buffers derived
  from the window size) are dropped.
- `norm.*`, the release's final LayerNorm after the last stage, becomes `norm{last}.*`, the norm we
  apply to the last stage's output at the same place. The other per-stage output norms
  (`norm0`.. ) do not exist in a classification checkpoint and keep their fresh initialisation.
- Relative position bias tables of another window size are resized (bicubic over the
  (2w-1) x (2w-1) offset grid); an absolute position embedding of another grid (or in the
  classification layout [1, L, C]) is reshaped/resized likewise.

Every other key must match a parameter of the same shape; otherwise `PretrainedWeightsError`
lists the mismatched, unexpected and missing keys.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from mask2former.model.backbone.swin import SwinTransformer
from mask2former.model.errors import PretrainedWeightsError

_DROPPED_SUFFIXES = ("attn_mask", "relative_position_index")
_STRIPPED_PREFIXES = ("module.", "backbone.")
_MAX_LISTED = 15


@dataclass(frozen=True)
class SwinLoadReport:
    """What happened to each checkpoint key, for logging."""

    loaded: tuple[str, ...]
    dropped: tuple[str, ...]
    resized: tuple[str, ...]
    initialised: tuple[str, ...]  # model keys the checkpoint cannot provide (per-stage output norms)


def read_checkpoint_state_dict(
    path: str | os.PathLike, *, family: str = "Swin", example: str = "swin_tiny_patch4_window7_224_22k.pth"
) -> dict[str, Tensor]:
    """Read a checkpoint file and unwrap it to a flat {key: tensor} dict (`family`/`example` word the errors)."""
    if not os.path.isfile(path):
        raise PretrainedWeightsError(
            f"model.backbone.pretrained_weights: file {os.fspath(path)!r} does not exist. Give the path of a {family} "
            f"checkpoint (e.g. {example}) or leave it empty to train from scratch."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise PretrainedWeightsError(
            f"model.backbone.pretrained_weights: cannot read {os.fspath(path)!r} as a PyTorch checkpoint of tensors "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    return unwrap_state_dict(obj, source=os.fspath(path), family=family)


def unwrap_state_dict(obj: object, *, source: str, family: str = "Swin") -> dict[str, Tensor]:
    """`{"model": sd}` / `{"state_dict": sd}` / `sd` -> sd, with a shared `module.`/`backbone.` prefix removed."""
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise PretrainedWeightsError(
            f"model.backbone.pretrained_weights: {source!r} holds no state dict of tensors (expected "
            '{"model": {name: tensor}}, {"state_dict": {name: tensor}} (the ' + family + ' release formats) or {name: tensor}).'
        )
    state = {str(k): v for k, v in obj.items()}
    for prefix in _STRIPPED_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def resize_relative_position_bias_table(table: Tensor, window_size: int) -> Tensor:
    """[(2w-1)^2, heads] -> [(2W-1)^2, heads] by bicubic resizing of the offset grid."""
    old_side = math.isqrt(table.shape[0])
    new_side = 2 * window_size - 1
    # rows are a (2w-1) x (2w-1) grid of offsets: [L, heads] -> [1, heads, side, side]
    grid = table.T.reshape(1, table.shape[1], old_side, old_side).float()
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
    return grid.reshape(table.shape[1], -1).T.contiguous().to(table.dtype)


def resize_absolute_pos_embed(embed: Tensor, target_shape: torch.Size) -> Tensor:
    """[1, C, h, w] or the classification layout [1, h*w, C] -> `target_shape` [1, C, H, W]."""
    if embed.dim() == 3:
        side = math.isqrt(embed.shape[1])
        # [1, L, C] -> [1, side, side, C] -> [1, C, side, side]
        embed = embed.reshape(1, side, side, embed.shape[2]).permute(0, 3, 1, 2)
    if embed.shape[2:] != target_shape[2:]:
        embed = F.interpolate(embed.float(), size=tuple(target_shape[2:]), mode="bicubic", align_corners=False)
    return embed.contiguous()


def adapt_swin_state_dict(
    state: Mapping[str, Tensor], backbone: SwinTransformer, *, source: str = "checkpoint"
) -> tuple[dict[str, Tensor], SwinLoadReport]:
    """Map a release-format state dict onto `backbone`'s keys; raise if anything does not fit."""
    target = backbone.state_dict()
    last_norm = f"norm{backbone.num_stages - 1}"
    adapted: dict[str, Tensor] = {}
    dropped: list[str] = []
    resized: list[str] = []
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key, value in state.items():
        if key.startswith("head.") or key.endswith(_DROPPED_SUFFIXES):
            dropped.append(key)
            continue
        name = key
        if key.startswith("norm.") and f"{last_norm}.{key[5:]}" in target:
            name = f"{last_norm}.{key[5:]}"
        if name not in target:
            unexpected.append(key)
            continue
        want = target[name].shape
        if value.shape != want:
            if (
                name.endswith("relative_position_bias_table") and value.dim() == 2 and value.shape[1] == want[1]
                and math.isqrt(value.shape[0]) ** 2 == value.shape[0]
            ):
                value = resize_relative_position_bias_table(value, backbone_window_size(backbone))
                resized.append(key)
            elif name == "absolute_pos_embed" and _pos_embed_channels(value) == want[1]:
                value = resize_absolute_pos_embed(value, want)
                resized.append(key)
        if value.shape != want:
            mismatched.append(f"{key} (checkpoint {list(value.shape)} vs model {list(want)})")
            continue
        adapted[name] = value.to(target[name].dtype)
    out_norms = {f"norm{i}" for i in backbone.out_indices}
    missing = [k for k in target if k not in adapted]
    initialised = [k for k in missing if k.split(".")[0] in out_norms]
    missing = [k for k in missing if k not in initialised]
    if unexpected or mismatched or missing:
        raise PretrainedWeightsError(_mismatch_message(source, backbone, mismatched, unexpected, missing))
    report = SwinLoadReport(tuple(adapted), tuple(dropped), tuple(resized), tuple(initialised))
    return adapted, report


def load_swin_checkpoint(backbone: SwinTransformer, path: str | os.PathLike) -> SwinLoadReport:
    """Load a Swin release checkpoint file into `backbone` (in place); see the module docstring."""
    state = read_checkpoint_state_dict(path)
    adapted, report = adapt_swin_state_dict(state, backbone, source=os.fspath(path))
    backbone.load_state_dict(adapted, strict=False)
    return report


def _pos_embed_channels(embed: Tensor) -> int | None:
    """Channels of an absolute position embedding in either layout, None if it is neither."""
    if embed.dim() == 3 and math.isqrt(embed.shape[1]) ** 2 == embed.shape[1]:
        return embed.shape[2]
    if embed.dim() == 4:
        return embed.shape[1]
    return None


def backbone_window_size(backbone: SwinTransformer) -> int:
    return backbone.layers[0].window_size


def listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {title}: {shown}{more}"


def key_mismatch_message(what: str, mismatched: list[str], unexpected: list[str], missing: list[str], advice: str) -> str:
    """One paragraph for a backbone checkpoint that does not fit: what was built, each kind of key problem with
    a bounded listing, then what to change (shared by the Swin and EfficientViT loaders)."""
    parts = [what]
    if mismatched:
        parts.append(listing("keys with another shape", mismatched) + ".")
    if unexpected:
        parts.append(listing("checkpoint keys the model does not have", unexpected) + ".")
    if missing:
        parts.append(listing("model keys the checkpoint lacks", missing) + ".")
    parts.append(advice)
    return " ".join(parts)


def _mismatch_message(
    source: str, backbone: SwinTransformer, mismatched: list[str], unexpected: list[str], missing: list[str]
) -> str:
    return key_mismatch_message(
        f"model.backbone.pretrained_weights: {source!r} does not fit the Swin backbone built from model.backbone.swin "
        f"(embed_dim={backbone.num_features[0]}, depths={[len(s.blocks) for s in backbone.layers]}, "
        f"patch_size={backbone.patch_size}, ape={backbone.ape}).",
        mismatched, unexpected, missing,
        "Set model.backbone.swin.type (or embed_dim/depths/num_heads/patch_size/ape) to the checkpoint's "
        "architecture, or point pretrained_weights at a matching file.",
    )
