"""Fill the spec parameters a job inherits from the job before it (TAO's job-chain mappings).

`spec_params` in skill_info.yaml says, per action, which keys come from where: `output_dir` (this
job's folder), `parent_model` (a checkpoint / ONNX file / engine in the parent job's folder),
`create_onnx_file` / `create_engine_file` (new files in this job's folder), `resume_model` (this job's
own newest checkpoint). A checkpoint is chosen exactly: a named file, an epoch, the best epoch the
parent's status.json recorded, or `latest` only when asked for. Never a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillkit.errors import SpecError
from skillkit.skill_dir import SkillDir
from skillkit.spec.dotted import get_dotted, set_dotted

CHECKPOINT_PATTERN = re.compile(r"^model_epoch_(\d{3,})_step_(\d{5,})\.pth$")
LATEST_LINK = "mask2former_model_latest.pth"
ONNX_NAME = "mask2former.onnx"
ENGINE_NAME = "mask2former.engine"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    epoch: int
    step: int


def list_checkpoints(folder: Path) -> list[Checkpoint]:
    found = []
    for path in sorted(folder.glob("model_epoch_*_step_*.pth")):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and not path.is_symlink():
            found.append(Checkpoint(path, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda c: (c.epoch, c.step))


def read_status_lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / "status.json"
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        raw = raw.strip()
        if raw:
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
    return lines


def best_epoch_from_status(folder: Path, metric: str) -> tuple[int, int | None, float]:
    """(epoch, step, value) of the best validation the trainer recorded for `metric`."""
    minimize = "loss" in metric.lower()
    best: tuple[int, int | None, float] | None = None
    for line in read_status_lines(folder):
        kpi = line.get("kpi") or {}
        if metric in kpi and isinstance(kpi[metric], (int, float)) and line.get("epoch") is not None:
            value = float(kpi[metric])
            better = best is None or (value < best[2] if minimize else value > best[2])
            if better:
                best = (int(line["epoch"]), line.get("step"), value)
    if best is None:
        raise SpecError(
            f"cannot choose a checkpoint in '{folder}': its status.json records no '{metric}' validation result. "
            "Name one with --checkpoint (a file name, 'epoch=N', or 'latest')."
        )
    return best


def choose_checkpoint(folder: Path, choice: str | None, *, metric: str) -> Path:
    """The checkpoint named by `choice` ('best' by default, 'latest', 'epoch=N', or a file name)."""
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        raise SpecError(f"the parent job folder '{folder}' holds no checkpoint (model_epoch_XXX_step_XXXXX.pth).")
    choice = choice or "best"
    if choice == "latest":
        return checkpoints[-1].path
    if choice.startswith("epoch="):
        try:
            epoch = int(choice.split("=", 1)[1])
        except ValueError:
            raise SpecError(f"checkpoint choice '{choice}' must be epoch=<integer>.") from None
        return _by_epoch(folder, checkpoints, epoch, step=None)
    if choice == "best":
        epoch, step, value = best_epoch_from_status(folder, metric)
        return _by_epoch(folder, checkpoints, epoch, step=step, reason=f" (best {metric}={value:.4f})")
    named = folder / choice
    if CHECKPOINT_PATTERN.match(Path(choice).name) and named.is_file():
        return named
    raise SpecError(
        f"checkpoint '{choice}' is not in '{folder}'; available: {', '.join(c.path.name for c in checkpoints)} "
        "(or use 'best', 'latest', 'epoch=N')."
    )


def _by_epoch(folder: Path, checkpoints: list[Checkpoint], epoch: int, *, step: int | None, reason: str = "") -> Path:
    matches = [c for c in checkpoints if c.epoch == epoch and (step is None or c.step == step)]
    if not matches and step is not None:
        matches = [c for c in checkpoints if c.epoch == epoch]
    if not matches:
        raise SpecError(
            f"no checkpoint of epoch {epoch}{reason} in '{folder}'; available: "
            f"{', '.join(c.path.name for c in checkpoints)}."
        )
    if len(matches) > 1:
        raise SpecError(
            f"epoch {epoch}{reason} is ambiguous in '{folder}': {', '.join(c.path.name for c in matches)}; "
            "name the file with --checkpoint."
        )
    return matches[0].path


def _single_file(folder: Path, pattern: str, what: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SpecError(f"the parent job folder '{folder}' holds no {what} ({pattern}).")
    raise SpecError(f"the parent job folder '{folder}' holds several {what}s: {', '.join(p.name for p in found)}; name one explicitly.")


def _parent_model(action: str, key: str, spec: dict[str, Any], parent: Path, choice: str | None, metric: str) -> str:
    if action == "gen_trt_engine":
        return str(_single_file(parent, "*.onnx", "ONNX file"))
    if action == "quantize" and str(get_dotted(spec, "quantize.backend", "")) in ("modelopt.onnx", "onnxruntime"):
        return str(_single_file(parent, "*.onnx", "ONNX file"))
    if action in ("evaluate", "inference") and not list_checkpoints(parent):
        engines = sorted(parent.glob("*.engine")) or sorted(parent.glob("*.onnx"))
        if engines:
            set_dotted(spec, f"{action}.trt_engine", str(_single_file(parent, f"*{engines[0].suffix}", "engine")))
            return ""
    return str(choose_checkpoint(parent, choice, metric=metric))


def resolve_job_chain(
    spec: dict[str, Any],
    skill: SkillDir,
    action: str,
    *,
    parent_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Fill `spec` in place per skill_info's `spec_params` for `action`; return it."""
    metric = skill.monitoring_metric
    for key, kind in skill.spec_params(action).items():
        if kind == "output_dir" and output_dir is not None:
            set_dotted(spec, key, str(output_dir))
        elif kind == "parent_model" and parent_dir is not None:
            parent = Path(parent_dir)
            if not parent.is_dir():
                raise SpecError(f"parent job folder '{parent}' does not exist.")
            value = _parent_model(action, key, spec, parent, checkpoint, metric)
            if value:
                set_dotted(spec, key, value)
        elif kind == "create_onnx_file" and output_dir is not None:
            set_dotted(spec, key, str(Path(output_dir) / ONNX_NAME))
        elif kind == "create_engine_file" and output_dir is not None:
            set_dotted(spec, key, str(Path(output_dir) / ENGINE_NAME))
        elif kind == "resume_model" and output_dir is not None:
            own = list_checkpoints(Path(output_dir)) if Path(output_dir).is_dir() else []
            if own:
                set_dotted(spec, key, str(own[-1].path))
    pretrained_keys = [key for key, kind in skill.spec_params(action).items() if kind == "ptm_if_no_resume_model"]
    resuming = any(get_dotted(spec, key, "") for key, kind in skill.spec_params(action).items() if kind == "resume_model")
    if pretrained_keys and parent_dir is not None and not resuming:
        chosen = str(choose_checkpoint(Path(parent_dir), checkpoint, metric=metric))
        for key in pretrained_keys:
            set_dotted(spec, key, chosen)
    return spec
