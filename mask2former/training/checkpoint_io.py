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
from pathlib import Path
from typing import Any, Mapping

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


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> "OrderedDict[str, torch.Tensor]":
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


def model_state_dict(checkpoint: Mapping[str, Any]) -> "OrderedDict[str, torch.Tensor]":
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
