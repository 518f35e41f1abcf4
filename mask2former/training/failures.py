"""How a failed run is classified, reported in status.json, and turned into an exit code.

Classes (the engine reads them from the FAILURE line's `error_class`):
  * `oom`      – CUDA (or host) out of memory; exit code 10, with advice on what to shrink.
  * `data`     – `skillkit.errors.DataError` (missing/bad dataset files); its own exit code (6).
  * `spec`     – any other `skillkit.errors.UserError` (bad spec values); its exit code (3 for SpecError).
  * `internal` – everything else; exit code 1 and a traceback.
"""

from __future__ import annotations

import torch

from skillkit.errors import DataError, ExitCode, HpoError, UserError

OOM_EXIT_CODE = ExitCode.OUT_OF_MEMORY
INTERNAL_EXIT_CODE = ExitCode.INTERNAL

OOM_ADVICE = (
    "Out of memory. To fit: use a smaller Swin (model.backbone.swin.type tiny, fewer depths) or EfficientViT "
    "(model.backbone.efficientvit.name l0 / b0-b2), lower the resolution "
    "(dataset.augmentation.train_crop_size / train_min_size / test_min_size), use a smaller "
    "dataset.train.batch_size, fewer model.mask_former.num_object_queries or train_num_points, "
    "train.precision fp16/bf16, or train.activation_checkpoint true."
)


class TrainingOutOfMemory(HpoError):
    """Training ran out of (GPU) memory; carries the advice in its message and exit code 10."""

    exit_code = OOM_EXIT_CODE


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's OOM errors and RuntimeErrors whose message says 'out of memory' (any cause in the chain)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TrainingOutOfMemory):
            return True
        if isinstance(current, torch.cuda.OutOfMemoryError):
            return True
        if isinstance(current, (RuntimeError, MemoryError)) and (
            isinstance(current, MemoryError) or "out of memory" in str(current).lower()
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def classify(error: BaseException) -> str:
    """The status.json `error_class` of `error`."""
    if is_out_of_memory(error):
        return "oom"
    if isinstance(error, DataError):
        return "data"
    if isinstance(error, UserError):
        return "spec"
    return "internal"


def exit_code_for(error: BaseException) -> int:
    """The process exit code for a run that ended with `error`."""
    if is_out_of_memory(error):
        return OOM_EXIT_CODE
    if isinstance(error, HpoError):
        return error.exit_code
    return INTERNAL_EXIT_CODE
