"""GPU assignment for trials the engine launches itself (the Optuna backend; Ray assigns its own).

Each trial gets CUDA_VISIBLE_DEVICES: whole GPUs when `gpus_per_trial` >= 1, or a share of one GPU when it
is 1/N (N trials packed per GPU). A CPU-only trial gets an empty CUDA_VISIBLE_DEVICES so it cannot grab a
GPU by accident. `GpuPool` is used from the driver's scheduling loop only.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

from skillkit.errors import SweepConfigError


def detect_gpus(configured: int | None = None) -> list[str]:
    """GPU ids this driver may hand out: `configured` of them, else those in CUDA_VISIBLE_DEVICES, else
    those `nvidia-smi -L` lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        ids = [part.strip() for part in visible.split(",") if part.strip()]
    elif visible is not None:
        ids = []
    elif shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        ids = [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
    else:
        ids = []
    if configured is not None:
        if configured > len(ids) and visible is None and not ids:
            ids = [str(i) for i in range(configured)]
        ids = ids[:configured]
    return ids


class GpuPool:
    def __init__(self, gpu_ids: list[str], gpus_per_trial: float) -> None:
        self.gpus_per_trial = gpus_per_trial
        self.gpu_ids = list(gpu_ids)
        if gpus_per_trial > 0 and not gpu_ids:
            raise SweepConfigError(
                f"'resources.gpus_per_trial' = {gpus_per_trial} but no GPU is visible (CUDA_VISIBLE_DEVICES / "
                "nvidia-smi found none, or resources.gpus is 0); set gpus_per_trial: 0 to train on CPU."
            )
        if gpus_per_trial >= 1 and int(gpus_per_trial) > len(gpu_ids):
            raise SweepConfigError(
                f"'resources.gpus_per_trial' = {gpus_per_trial} but only {len(gpu_ids)} GPU(s) are available: no trial "
                "could start."
            )
        self.slots_per_gpu = 1 if gpus_per_trial >= 1 or gpus_per_trial == 0 else int(round(1 / gpus_per_trial))
        self._used: dict[str, int] = {gpu: 0 for gpu in gpu_ids}
        self._held: dict[str, list[str]] = {}

    @property
    def capacity(self) -> int | None:
        """How many trials can hold GPUs at once (None: unlimited, CPU-only trials)."""
        if self.gpus_per_trial == 0:
            return None
        if self.gpus_per_trial >= 1:
            return len(self.gpu_ids) // int(self.gpus_per_trial)
        return len(self.gpu_ids) * self.slots_per_gpu

    def acquire(self, trial_id: str) -> str | None:
        """CUDA_VISIBLE_DEVICES for the trial, or None when no GPU share is free now."""
        if self.gpus_per_trial == 0:
            self._held[trial_id] = []
            return ""
        if self.gpus_per_trial >= 1:
            free = [gpu for gpu in self.gpu_ids if self._used[gpu] == 0]
            need = int(math.ceil(self.gpus_per_trial))
            if len(free) < need:
                return None
            chosen = free[:need]
        else:
            open_gpus = [gpu for gpu in self.gpu_ids if self._used[gpu] < self.slots_per_gpu]
            if not open_gpus:
                return None
            chosen = [min(open_gpus, key=lambda gpu: self._used[gpu])]
        for gpu in chosen:
            self._used[gpu] += 1
        self._held[trial_id] = chosen
        return ",".join(chosen)

    def release(self, trial_id: str) -> None:
        for gpu in self._held.pop(trial_id, []):
            self._used[gpu] -= 1
