"""Fill the spec parameters a job inherits from the job before it (TAO's job-chain mappings).

`spec_params` in skill_info.yaml says, per action, which keys come from where: `output_dir` (this
job's folder), `parent_model` (a checkpoint / ONNX file / engine in the parent job's folder),
`create_onnx_file` / `create_engine_file` (new files in this job's folder), `resume_model` (this job's
own newest checkpoint). A checkpoint is chosen exactly: a named file, an epoch, the best epoch the
parent's status.json recorded, or `latest` only when asked for. Never a guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpo import selection
from skillkit.checkpoints import CheckpointFile, checkpoint_for, checkpoints_of_epoch, list_checkpoints
from skillkit.errors import SpecError
from skillkit.skill_dir import SkillDir
from skillkit.spec.dotted import get_dotted, set_dotted
from skillkit.status import STATUS_FILE, Validation, read_lines, read_validations


def best_validation(folder: Path, metric: str) -> Validation:
    """The best validation the trainer recorded in `folder`'s status.json for `metric` (`hpo.selection`)."""
    validations = read_validations(folder / STATUS_FILE, metric)
    best = selection.best_of(validations, lambda v: selection.metric_value({metric: v.value}, metric),
                             selection.infer_direction(metric))
    if best is None:
        raise SpecError(
            f"cannot choose a checkpoint in '{folder}': its status.json records no '{metric}' validation result. "
            "Name one with --checkpoint (a file name, 'epoch=N', or 'latest')."
        )
    return best


def choose_checkpoint(folder: Path, choice: str | None, *, metric: str) -> Path:
    """The checkpoint named by `choice`: 'best' (default: the best validated epoch), 'latest', 'epoch=N'
    (TAO's 0-based epoch index, the number in the file name) or a file name."""
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
        return _of_epoch(folder, checkpoints, epoch)
    if choice == "best":
        best = best_validation(folder, metric)
        found = checkpoint_for(folder, best.epoch, best.step)
        if found is None:
            raise SpecError(
                f"no checkpoint of epoch {best.epoch} (best {metric}={best.value:.4f}) in '{folder}'; available: "
                f"{_names(checkpoints)}."
            )
        return found.path
    named = folder / Path(choice).name
    if named.name in {c.name for c in checkpoints}:
        return named
    raise SpecError(
        f"checkpoint '{choice}' is not in '{folder}'; available: {_names(checkpoints)} "
        "(or use 'best', 'latest', 'epoch=N')."
    )


def _of_epoch(folder: Path, checkpoints: list[CheckpointFile], epoch: int) -> Path:
    """`--checkpoint epoch=N`: the one file of epoch N; when there are several (a mid-epoch checkpoint
    beside the epoch's last one), the one at the step status.json reached in epoch N (its end)."""
    matches = checkpoints_of_epoch(folder, epoch)
    steps = [line.step for line in read_lines(folder / STATUS_FILE) if line.epoch == epoch and line.step is not None]
    if len(matches) > 1 and steps:
        closing = checkpoint_for(folder, epoch, max(steps))
        matches = [closing] if closing is not None else matches
    if not matches:
        raise SpecError(f"no checkpoint of epoch {epoch} in '{folder}'; available: {_names(checkpoints)}.")
    if len(matches) > 1:
        raise SpecError(
            f"epoch {epoch} is ambiguous in '{folder}': {_names(matches)}; name the file with --checkpoint."
        )
    return matches[0].path


def _names(checkpoints: list[CheckpointFile]) -> str:
    return ", ".join(c.name for c in checkpoints)


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
            set_dotted(spec, key, str(Path(output_dir) / f"{skill.network_arch}.onnx"))
        elif kind == "create_engine_file" and output_dir is not None:
            set_dotted(spec, key, str(Path(output_dir) / f"{skill.network_arch}.engine"))
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
