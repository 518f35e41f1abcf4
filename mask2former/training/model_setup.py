"""Preparing the model before training: pretrained weights (`train.pretrained_model_path`) and freezing
(`train.freeze`).

Pretrained weights: every parameter/buffer whose name and shape match is copied. Entries whose shape
differs are allowed only for the class head (`...class_embed.*`, sized num_classes + 1): a model
fine-tuned on a different label set keeps its randomly initialised head, and a notice says so. Any other
shape mismatch is a clear error listing the keys, because it means the architecture in the spec is not
the one the weights were trained as. Keys present on only one side are reported in a notice.

Freezing: each entry of `train.freeze` is a dotted module-name prefix (e.g. `backbone`,
`sem_seg_head.pixel_decoder`); parameters under it stop requiring gradients and are therefore left out of
the optimizer. A prefix that matches nothing is an error listing the model's top-level modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from mask2former.training.checkpoint_io import model_state_dict, read_checkpoint
from skillkit.errors import SpecError

CLASS_HEAD_MARKER = "class_embed."


@dataclass(frozen=True)
class PretrainedReport:
    """What `load_pretrained` did, for logs and status notices."""

    loaded: tuple[str, ...]
    reinitialised_class_head: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    def notices(self, path: str) -> list[str]:
        out = [f"loaded {len(self.loaded)} tensors from pretrained model '{path}'."]
        if self.reinitialised_class_head:
            out.append(
                "class count differs from the pretrained model: the class head "
                f"({', '.join(self.reinitialised_class_head)}) is re-initialised."
            )
        if self.missing:
            out.append(f"{len(self.missing)} model tensors are not in the pretrained model and keep their "
                       f"initialisation: {', '.join(self.missing[:8])}{' ...' if len(self.missing) > 8 else ''}")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} pretrained tensors have no place in this model and are ignored: "
                       f"{', '.join(self.unexpected[:8])}{' ...' if len(self.unexpected) > 8 else ''}")
        return out


def load_pretrained(model: nn.Module, path: str | os.PathLike[str]) -> PretrainedReport:
    """Copy matching weights from `path` into `model` (see module docstring)."""
    checkpoint = read_checkpoint(path, what="train.pretrained_model_path")
    source = model_state_dict(checkpoint)
    target = model.state_dict()
    loadable, head, mismatched = {}, [], []
    for key, value in source.items():
        if key not in target:
            continue
        if tuple(value.shape) == tuple(target[key].shape):
            loadable[key] = value
        elif CLASS_HEAD_MARKER in key:
            head.append(key)
        else:
            mismatched.append(f"{key}: pretrained {tuple(value.shape)} vs model {tuple(target[key].shape)}")
    if mismatched:
        raise SpecError(
            f"train.pretrained_model_path '{path}' was trained with a different architecture than the spec "
            f"describes; shape mismatches (only the class head may differ): {'; '.join(mismatched[:10])}"
            f"{' ...' if len(mismatched) > 10 else ''}."
        )
    if not loadable:
        raise SpecError(
            f"train.pretrained_model_path '{path}' shares no tensor name with this model; is it a Mask2Former "
            "checkpoint? (Backbone-only weights belong in model.backbone.pretrained_weights.)"
        )
    model.load_state_dict(loadable, strict=False)
    missing = tuple(sorted(k for k in target if k not in loadable and k not in head))
    unexpected = tuple(sorted(k for k in source if k not in target))
    return PretrainedReport(tuple(sorted(loadable)), tuple(sorted(head)), missing, unexpected)


def apply_freeze(model: nn.Module, prefixes: Iterable[str]) -> list[str]:
    """Stop gradients for parameters under each dotted prefix; returns the frozen parameter names."""
    prefixes = [str(p).strip().rstrip(".") for p in prefixes if str(p).strip()]
    names = [name for name, _ in model.named_parameters()]
    frozen: list[str] = []
    for prefix in prefixes:
        hits = [name for name in names if name == prefix or name.startswith(prefix + ".")]
        if not hits:
            top = sorted({name.split(".", 1)[0] for name in names})
            raise SpecError(
                f"train.freeze entry {prefix!r} matches no parameter of the model; use dotted module names such "
                f"as {', '.join(top)} (or deeper, e.g. '{top[0]}.<child>')."
            )
        frozen.extend(hits)
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    return sorted(set(frozen))
