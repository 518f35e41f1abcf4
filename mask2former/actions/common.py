"""What the actions share: spec loading, output folders, devices, the eval model, the metrics table.

Every action is `mask2former <action> -e spec.yaml [a.b=c ...]`: the spec file is merged onto the
action's template, the dotted overrides are applied, the result is validated
(`hpo.spec.load_spec`) and turned into an `ExperimentConfig` (`mask2former.config.config_from_dict`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from skillkit.errors import SpecError, UserError
from skillkit.status.writer import ERROR, FAILURE, StatusWriter

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """`-e/--experiment_spec FILE` and trailing `dotted.key=value` overrides, as TAO's launcher takes them."""
    parser.add_argument("-e", "--experiment_spec", "--experiment-spec", dest="spec", required=True,
                        metavar="SPEC.yaml", help="experiment spec (YAML) merged onto the action's template")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides applied after the file, e.g. train.num_epochs=5 results_dir=/out")


def load_action_config(args: argparse.Namespace, action: str) -> tuple[Any, dict[str, Any]]:
    """(ExperimentConfig, spec dict) for `action`; a spec error is also recorded in status.json when the
    (unvalidated) spec names a results_dir, so the engine sees a FAILURE line with class `spec`."""
    from mask2former.config import config_from_dict
    from skillkit.spec import load_spec

    try:
        spec = load_spec(args.spec, action=action, overrides=list(args.overrides))
        return config_from_dict(spec), spec
    except UserError as error:
        _record_early_failure(args, action, error)
        raise


def _record_early_failure(args: argparse.Namespace, action: str, error: UserError) -> None:
    from skillkit.errors import DataError

    try:
        from skillkit.skill_dir import SkillDir
        from skillkit.spec import merge_spec

        raw = merge_spec(args.spec, action, list(args.overrides), SkillDir(None))
        section = raw.get(action) if isinstance(raw.get(action), Mapping) else {}
        folder = (section or {}).get("results_dir") or raw.get("results_dir")
    except Exception:  # noqa: BLE001 - the file itself is unreadable: nothing to record into
        return
    if folder:
        StatusWriter(folder, num_epochs=None).write(
            FAILURE, str(error), verbosity=ERROR, error_class="data" if isinstance(error, DataError) else "spec")


def action_results_dir(cfg: ExperimentConfig, action: str) -> Path:
    """`<action>.results_dir`, else the top-level `results_dir`."""
    chosen = getattr(getattr(cfg, action), "results_dir", "") or cfg.results_dir
    if not chosen:
        raise SpecError(f"results_dir is empty: set results_dir (or {action}.results_dir) to the output folder.")
    path = Path(chosen).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def reject_trt_engine(cfg: ExperimentConfig, action: str) -> None:
    """The PyTorch path runs `<action>.checkpoint`; an engine/ONNX file belongs to the deploy path, which
    the CLI handlers pick when `<action>.trt_engine` is set."""
    engine = getattr(getattr(cfg, action), "trt_engine", "")
    if engine:
        raise SpecError(
            f"{action}.trt_engine='{engine}' is set, but this is the PyTorch {action} of {action}.checkpoint; "
            f"run `mask2former {action}` (which hands engines and ONNX files to the deploy side) or leave "
            f"{action}.trt_engine empty."
        )


@dataclass(frozen=True)
class EvalDevice:
    """Where evaluation/inference runs: Lightning arguments and a torch device for plain loops."""

    accelerator: str
    devices: Any
    num_nodes: int
    torch_device: torch.device
    notice: str = ""


def eval_device(section: Any, *, action: str) -> EvalDevice:
    """Devices from `<action>.num_gpus / gpu_ids / num_nodes`; CPU when no CUDA device is visible."""
    if not torch.cuda.is_available():
        notice = ""
        if section.num_gpus > 1 or section.num_nodes > 1:
            notice = f"no CUDA device is visible: {action} runs on CPU (num_gpus/num_nodes apply on GPU machines)."
        return EvalDevice("cpu", 1, 1, torch.device("cpu"), notice)
    gpu_ids = [int(g) for g in section.gpu_ids]
    if len(gpu_ids) != section.num_gpus:
        if gpu_ids == [0]:
            gpu_ids = list(range(section.num_gpus))
        else:
            raise SpecError(f"{action}.gpu_ids {gpu_ids} must list {action}.num_gpus={section.num_gpus} ids.")
    return EvalDevice("gpu", gpu_ids, int(section.num_nodes), torch.device("cuda", gpu_ids[0]))


def batch_size_for(cfg: ExperimentConfig, action: str, split: str) -> int:
    """`<action>.batch_size`, or the split's batch size when it is -1."""
    size = int(getattr(getattr(cfg, action), "batch_size", -1))
    return size if size > 0 else int(getattr(cfg.dataset, split).batch_size)


def load_eval_model(checkpoint_path: str) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(model in eval mode, the checkpoint's ExperimentConfig, its spec dict)."""
    from mask2former.config import config_from_dict
    from mask2former.training.checkpoint_io import load_model_from_checkpoint

    if not checkpoint_path or checkpoint_path == "???":
        raise SpecError("a checkpoint is required: set evaluate.checkpoint / inference.checkpoint to a .pth file "
                        "written by `mask2former train`.")
    model, spec = load_model_from_checkpoint(checkpoint_path)
    return model, config_from_dict(spec), spec


def print_metrics(title: str, metrics: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> None:
    """A rich table of metrics (with a baseline column and the change when given)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    if baseline is not None:
        table.add_column("float", justify="right")
    table.add_column("value", justify="right")
    if baseline is not None:
        table.add_column("change", justify="right")
    for name, value in metrics.items():
        shown = "-" if value is None else f"{value:.4f}"
        if baseline is None:
            table.add_row(name, shown)
            continue
        base = baseline.get(name)
        delta = "-" if value is None or base is None else f"{value - base:+.4f}"
        table.add_row(name, "-" if base is None else f"{base:.4f}", shown, delta)
    Console().print(table)
