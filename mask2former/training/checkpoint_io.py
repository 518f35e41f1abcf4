"""Reading training checkpoints back: the model weights, the spec that built them, the epoch reached.

A training checkpoint (`model_epoch_XXX_step_XXXXX.pth`) is a Lightning checkpoint plus our keys:

    state_dict        system weights: `model.<...>` (the Mask2Former nn.Module) and `criterion.<...>`
    optimizer_states, lr_schedulers, loops, callbacks, epoch, global_step   (Lightning; for resume)
    spec              the full experiment spec dict the model was built from
    completed_epochs  epochs completed when it was written (a resume continues from here); the number in
                      the file name is TAO's index of the epoch in progress (`skillkit.checkpoints`),
                      one less than this for a checkpoint written at the end of an epoch
    format            "mask2former-lightning/1"
    monitor           {"name": train.optim.monitor_name, "value": float|None}
    validation        the last validation metrics, when the run had validated

`load_model_from_checkpoint(path)` rebuilds the model from `spec` and loads the weights, which is all
evaluate/inference/export need. Other weight files (`{"model": sd}`, `{"state_dict": sd}`, a bare state
dict) are accepted by `model_state_dict` for `train.pretrained_model_path`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skillkit.errors import DataError

MODEL_PREFIX = "model."


def read_checkpoint(path: str | os.PathLike[str], *, what: str = "checkpoint") -> dict[str, Any]:
    """`torch.load` a checkpoint on CPU with tensors-and-plain-data-only unpickling; clear errors otherwise."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{what} '{path}' does not exist (or is not a file).")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise DataError(f"{what} '{path}' cannot be read as a PyTorch checkpoint: {error}") from error
    if not isinstance(data, Mapping):
        raise DataError(f"{what} '{path}' holds a {type(data).__name__}, not a checkpoint dictionary.")
    return dict(data)


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> OrderedDict[str, torch.Tensor]:
    """Keys under `prefix` with it removed; keeps torch's per-module `_metadata` (module versions) aligned."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict(
        (key[len(prefix):], value) for key, value in state.items() if key.startswith(prefix)
    )
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        root = prefix.rstrip(".")
        out._metadata = OrderedDict(  # type: ignore[attr-defined]
            ("" if key == root else key[len(prefix):], value)
            for key, value in metadata.items()
            if key == root or key.startswith(prefix)
        )
    return out


def model_state_dict(checkpoint: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """The Mask2Former model's state dict inside any supported weights file (see module docstring)."""
    if "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], Mapping):
        state = checkpoint["state_dict"]
        if any(key.startswith(MODEL_PREFIX) for key in state):
            return _strip_prefix(state, MODEL_PREFIX)
        return OrderedDict(state)
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        return OrderedDict(checkpoint["model"])
    if checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return OrderedDict(checkpoint)
    raise DataError("the weights file holds no model state dict (expected 'state_dict', 'model' or a bare state dict).")


def checkpoint_spec(checkpoint: Mapping[str, Any], *, path: str | os.PathLike[str] = "checkpoint") -> dict[str, Any]:
    """The experiment spec stored in a training checkpoint."""
    spec = checkpoint.get("spec")
    if not isinstance(spec, Mapping):
        raise DataError(
            f"'{path}' carries no experiment spec (key 'spec'); only checkpoints written by `mask2former train` "
            "can rebuild their model."
        )
    return dict(spec)


def checkpoint_completed_epochs(checkpoint: Mapping[str, Any]) -> int:
    """Epochs completed when the checkpoint was written (Lightning's own `epoch` is a 0-based index)."""
    if "completed_epochs" in checkpoint:
        return int(checkpoint["completed_epochs"])
    return int(checkpoint.get("epoch", -1)) + 1


def load_model_from_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a training checkpoint was trained as, with its weights; returns (model in eval mode, spec)."""
    from mask2former.config import config_from_dict
    from mask2former.model import build_model

    checkpoint = read_checkpoint(path)
    spec = checkpoint_spec(checkpoint, path=path)
    model = build_model(config_from_dict(spec))
    state = model_state_dict(checkpoint)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(
            f"checkpoint '{path}' does not match the model its own spec describes: "
            f"missing keys {sorted(missing)[:10]}, unexpected keys {sorted(unexpected)[:10]}."
        )
    model.eval()
    return model, spec


def resume_mismatch(checkpoint: Mapping[str, Any], model: nn.Module, spec: Mapping[str, Any], *,
                    path: str | os.PathLike[str]) -> str | None:
    """Why the model built from `spec` cannot continue from `checkpoint` (None when every tensor fits).

    A resume must be refused before Lightning tries it: a strict load of a differently shaped model dies with a
    raw `size mismatch` traceback. The message names the spec settings that differ from the checkpoint's own
    spec (the cause: e.g. a changed `model.mask_former.hidden_dim`) and a few of the tensors that do not fit.
    """
    try:
        stored = model_state_dict(checkpoint)
    except DataError:
        return f"train.resume_training_checkpoint_path '{path}' holds no model weights to continue from."
    wanted = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    have = {key: tuple(value.shape) for key, value in stored.items()}
    wrong = [key for key in wanted if key in have and wanted[key] != have[key]]
    missing = [key for key in wanted if key not in have]
    unexpected = [key for key in have if key not in wanted]
    if not (wrong or missing or unexpected):
        return None
    details = [f"{key}: checkpoint {list(have[key])} vs spec {list(wanted[key])}" for key in wrong[:3]]
    if missing:
        details.append(f"{len(missing)} tensors the spec's model has and the checkpoint lacks (e.g. {missing[0]})")
    if unexpected:
        details.append(f"{len(unexpected)} tensors the checkpoint has and the spec's model lacks (e.g. {unexpected[0]})")
    changed = _changed_settings(checkpoint.get("spec"), spec, "model")
    cause = (f" The spec changes {', '.join(changed)} (checkpoint value -> spec value): a resumed run must keep the "
             "architecture it was trained with." if changed else "")
    return (f"train.resume_training_checkpoint_path '{path}' does not fit the model this spec builds "
            f"({len(wrong)} tensors of another shape; {'; '.join(details)}).{cause} Resume with the checkpoint's "
            "architecture settings, or start a new run (train.pretrained_model_path loads the weights that still fit).")


def _changed_settings(before: Any, after: Mapping[str, Any], section: str, limit: int = 6) -> list[str]:
    """`dotted.key (old -> new)` for the leaves of `section` that differ between two spec dicts."""
    if not isinstance(before, Mapping):
        return []

    def leaves(node: Any, prefix: str) -> dict[str, Any]:
        if isinstance(node, Mapping):
            out: dict[str, Any] = {}
            for key, value in node.items():
                out.update(leaves(value, f"{prefix}.{key}"))
            return out
        return {prefix: node}

    old, new = leaves(before.get(section, {}), section), leaves(after.get(section, {}), section)
    changed = [f"{key} ({old.get(key)!r} -> {new.get(key)!r})" for key in sorted(set(old) | set(new))
               if old.get(key) != new.get(key)]
    return changed[:limit] + ([f"and {len(changed) - limit} more"] if len(changed) > limit else [])
