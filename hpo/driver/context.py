"""Everything a backend needs to run one sweep, resolved once in the driver: the skill, the base spec with
its data sources, the compiled search space, the metric and its direction, the epoch budget, and how to
turn sampled values into a trial's spec.

The engine knows nothing Mask2Former-specific: which spec keys hold the results folder, the resume
checkpoint, the pretrained model and the epoch count comes from the skill's `skill_info.yaml`
(`spec_params` roles `output_dir`, `resume_model`, `ptm_if_no_resume_model`, `parent_model`, and the
`num_epochs` shorthand), and which keys say how many GPUs a trial has from `gpu_spec_key` (TAO's) and
`x_gpu_ids_spec_key` (ours).

GPUs of a trial (`resources.gpus_per_trial`): N >= 1 whole GPUs set the count key to N and the index key to
[0, ..., N-1] — indices into the trial's own CUDA_VISIBLE_DEVICES, which the backend (our GPU pool, or Ray)
sets to the N devices it assigned — so the trainer runs data-parallel over exactly those. A fraction (GPU
sharing) or 0 (CPU) sets them to 1 / [0]: a trial never asks for more devices than it was given.
"""

from __future__ import annotations

import copy
import math
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpo.driver.workspace import SweepWorkspace
from hpo.space import SearchSpace, compile_space
from hpo.spec import resolve_data_sources
from hpo.sweep.config import SweepConfig, resolve_metric
from skillkit.errors import SweepConfigError
from skillkit.files import SPEC_FILE, atomic_write_text
from skillkit.skill_dir import SkillDir
from skillkit.spec import dump_spec, get_dotted, set_dotted, validate_spec
from skillkit.spec.loader import merge_spec

WORKER_ID_FILE = "worker_id"


@dataclass(frozen=True)
class SpecKeys:
    """Dotted spec keys with a role in the engine–trainer contract, read from skill_info.yaml."""

    results_dir: str
    resume: str
    num_epochs: str
    pretrained: str | None
    eval_results_dir: str | None
    eval_checkpoint: str | None
    gpu_count: str | None = None
    gpu_ids: str | None = None


def _role_key(params: Mapping[str, str], role: str) -> str | None:
    for key, value in params.items():
        if value == role:
            return key
    return None


def spec_keys(skill: SkillDir) -> SpecKeys:
    train = skill.spec_params("train")
    evaluate = skill.spec_params("evaluate") if "evaluate" in skill.info.get("actions", {}) else {}
    results_dir = _role_key(train, "output_dir")
    resume = _role_key(train, "resume_model")
    num_epochs = (skill.info.get("spec_shorthand_keys") or {}).get("num_epochs")
    missing = [
        what for what, value in (
            ("spec_params.train.<key>: output_dir", results_dir), ("spec_params.train.<key>: resume_model", resume),
            ("spec_shorthand_keys.num_epochs", num_epochs),
        ) if not value
    ]
    if missing:
        raise SweepConfigError(
            f"skill '{skill.path}' cannot run sweeps: its references/skill_info.yaml lacks {', '.join(missing)}; the "
            "engine needs them to give each trial its own results folder, its epoch budget and a resume checkpoint."
        )
    gpu_count, gpu_ids = skill.gpu_spec_keys
    return SpecKeys(
        results_dir=str(results_dir), resume=str(resume), num_epochs=str(num_epochs),
        pretrained=_role_key(train, "ptm_if_no_resume_model"),
        eval_results_dir=_role_key(evaluate, "output_dir"), eval_checkpoint=_role_key(evaluate, "parent_model"),
        gpu_count=gpu_count, gpu_ids=gpu_ids,
    )


def devices_per_trial(gpus_per_trial: float) -> int:
    """How many devices one trial's trainer is told to use: N for N whole GPUs, else 1 (a GPU share or CPU)."""
    return int(gpus_per_trial) if gpus_per_trial >= 1 else 1


def apply_gpu_keys(spec: dict[str, Any], keys: SpecKeys, gpus_per_trial: float) -> None:
    """Set the skill's GPU keys of a trial spec for `gpus_per_trial` (see the module docstring)."""
    devices = devices_per_trial(gpus_per_trial)
    if keys.gpu_count:
        set_dotted(spec, keys.gpu_count, devices)
    if keys.gpu_ids:
        set_dotted(spec, keys.gpu_ids, list(range(devices)))


def check_gpu_keys(config: SweepConfig, keys: SpecKeys, skill: SkillDir) -> None:
    """Refuse, before any trial, a multi-GPU trial the skill could not be told about."""
    gpus = config.resources.gpus_per_trial
    if gpus >= 2 and not keys.gpu_count:
        raise SweepConfigError(
            f"'resources.gpus_per_trial' = {gpus:g} but skill '{skill.path}' names no 'gpu_spec_key' in "
            "references/skill_info.yaml, so its trainer could not be told to use more than one GPU. Add "
            "`gpu_spec_key: <dotted key of the GPU count>` there, or use gpus_per_trial: 1."
        )


def plain(value: Any) -> Any:
    """Plain Python values (Ray and BOHB hand out numpy scalars such as np.str_, which YAML cannot write)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class SweepContext:
    config: SweepConfig
    workspace: SweepWorkspace
    skill: SkillDir
    metric: str
    direction: str
    base_spec: dict[str, Any]
    space: SearchSpace
    max_epochs: int
    keys: SpecKeys
    resumed: bool = False
    notes: list[str] = field(default_factory=list)
    held: list[Any] = field(default_factory=list)  # compatibility.HeldParameter: defaults the algorithm cannot search
    joined: bool = False  # a worker that joined the sweep of a first worker (`hpo run --join`)
    joined_worker_id: str | None = None
    # The base spec before its s3:// data sources were staged on the driver (`hpo.storage.sweeps`): what a
    # trial on a Ray node without the driver's disk stages again on that node (`ray.storage`).
    remote_base_spec: dict[str, Any] | None = None

    @property
    def worker_id(self) -> str:
        """Identifies this worker's trials in a study several workers share (PostgreSQL). The first worker's
        is kept in the workspace (state/worker_id), so a workspace moved or restored elsewhere still adopts
        its own trials; a joined worker has its own for its lifetime (its trials are re-queued if it dies)."""
        if self.joined_worker_id:
            return self.joined_worker_id
        path = self.workspace.state_dir / WORKER_ID_FILE
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, f"{socket.gethostname()}-{uuid.uuid4().hex[:12]}\n")
        return path.read_text().strip()

    @property
    def gpus_per_trial(self) -> float:
        return self.config.resources.gpus_per_trial

    def trial_spec(self, params: Mapping[str, Any], trial_dir: Path, *, resume_from: Path | None = None) -> dict[str, Any]:
        """The trial's full spec: base spec + sampled values + epoch budget + its own results folder (+ the
        checkpoint to resume from). Validated against the train schema: a sampled combination the schema
        rejects raises SpecError, which fails that trial with class 'spec'."""
        spec = copy.deepcopy(self.base_spec)
        for name, value in params.items():
            set_dotted(spec, name, plain(value))
        set_dotted(spec, self.keys.num_epochs, self.max_epochs)
        set_dotted(spec, self.keys.results_dir, str(trial_dir))
        set_dotted(spec, self.keys.resume, str(resume_from) if resume_from else "")
        apply_gpu_keys(spec, self.keys, self.config.resources.gpus_per_trial)
        validate_spec(spec, "train", self.skill, source=str(trial_dir / SPEC_FILE))
        return spec

    def write_trial_spec(self, spec: Mapping[str, Any], trial_dir: Path) -> Path:
        return dump_spec(dict(spec), trial_dir / SPEC_FILE)

    def train_argv(self, spec_path: Path) -> tuple[str, ...]:
        return tuple(self.skill.train_command(spec_path))

    def trial_env(self, *, cuda_visible_devices: str | None) -> dict[str, str]:
        """Variables for one trainer: its GPUs, thread counts matching its CPU share, unbuffered logs."""
        threads = str(max(1, math.ceil(self.config.resources.cpus_per_trial)))
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
        if cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
        env.update(self.config.trial.env)
        return env


def build_base_spec(config: SweepConfig, skill: SkillDir, keys: SpecKeys, max_epochs: int | None = None) -> tuple[dict[str, Any], int]:
    """(base spec with data sources resolved and the epoch budget set, epoch budget)."""
    spec = merge_spec(config.base_spec, config.action, config.spec_overrides, skill)
    if config.datasets.train or config.datasets.eval:
        resolve_data_sources(
            spec, skill, config.action, train_datasets=config.datasets.train, eval_dataset=config.datasets.eval,
            dataset_type=config.datasets.type,
        )
    epochs = max_epochs or config.algorithm.max_epochs or get_dotted(spec, keys.num_epochs, None)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise SweepConfigError(
            f"the epoch budget of a trial is unknown: set algorithm.max_epochs, or '{keys.num_epochs}' in the base spec "
            f"(it holds {epochs!r})."
        )
    set_dotted(spec, keys.num_epochs, epochs)
    grace = config.algorithm.grace_period
    if config.algorithm.scheduler in ("median", "asha", "hyperband", "hyperband_es", "bohb") and grace > epochs:
        raise SweepConfigError(f"'algorithm.grace_period' = {grace} exceeds the trial epoch budget {epochs}.")
    if config.algorithm.scheduler == "hyperband_es" and config.algorithm.min_early_stop_epochs >= epochs:
        from hpo.sweep.config_rules import early_stop_budget_problem

        raise SweepConfigError(early_stop_budget_problem(config.algorithm.min_early_stop_epochs, epochs))
    return spec, epochs


def _check_test_dataset(config: SweepConfig, skill: SkillDir, base_spec: Mapping[str, Any]) -> None:
    """`datasets.test` (a folder or an `s3://` prefix, listed once, nothing downloaded) must hold what the
    evaluate action's data sources need, checked before launch rather than when the sweep is over."""
    root = config.datasets.test
    if not root:
        return
    if not skill.data_sources("evaluate"):
        raise SweepConfigError(f"datasets.test = '{root}': skill '{skill.path}' has no data_sources for its evaluate "
                               "action, so a held-out test dataset cannot be handed to it.")
    resolve_data_sources(copy.deepcopy(dict(base_spec)), skill, "evaluate", eval_dataset=root,
                         dataset_type=config.datasets.type)


def prepare_sweep(config: SweepConfig, *, resumed: bool = False, space: SearchSpace | None = None) -> SweepContext:
    """Resolve skill, base spec, space, metric and budget; raises a UserError subclass on any mistake."""
    skill = SkillDir(config.skill_dir)
    keys = spec_keys(skill)
    check_gpu_keys(config, keys, skill)
    base_spec, max_epochs = build_base_spec(config, skill, keys)
    workspace = SweepWorkspace(config.sweep_dir)
    probe = copy.deepcopy(base_spec)
    set_dotted(probe, keys.results_dir, str(workspace.trials_dir / "probe"))
    validate_spec(probe, config.action, skill, source=str(config.base_spec or f"<{config.action} template>"))
    _check_test_dataset(config, skill, base_spec)
    held: list[Any] = []
    if space is None:
        from hpo.driver.compatibility import fit_space

        schema = skill.schema(config.action)
        options = config.search_space

        def compile_with(selection: Any) -> SearchSpace:
            ranges = options.custom_param_ranges or {}
            if selection is not None:
                ranges = {name: value for name, value in ranges.items() if name in selection}
            return compile_space(
                schema, selection=selection, custom_param_ranges=ranges or None, pinned=options.pinned or None,
                override_automl_disabled_params=options.override_automl_disabled_params,
            )

        space = compile_with(options.parameters)
        if space.parameters:
            # A resumed sweep reads its space back from space.yaml, already fitted to its algorithm.
            space, held = fit_space(config, space, base_spec=base_spec, recompile=compile_with)
    if not space.parameters:
        raise SweepConfigError("the search space is empty: no AutoML parameter was selected (search_space.parameters).")
    metric, direction = resolve_metric(config.metric, config.direction, skill.monitoring_metric)
    from hpo.driver.compatibility import held_note

    return SweepContext(
        config=config, workspace=workspace, skill=skill, metric=metric, direction=direction, base_spec=base_spec,
        space=space, max_epochs=max_epochs, keys=keys, resumed=resumed, held=held,
        notes=[held_note(h) for h in held],
    )
