"""The specs handed off with a promoted checkpoint: export, evaluate, and the deploy trio
(gen_trt_engine, TensorRT evaluate, TensorRT inference).

Each spec is the winning train spec (so every structural setting the downstream action needs travels with
it: the skill's `x_handoff_keys`, e.g. `model.mode`, and the data sections) merged onto
the skill's template for that action, with the action's inputs and outputs pointed at `best/`:

    best/model_epoch_XXX_step_XXXXX.pth   <- export.checkpoint, evaluate.checkpoint
    best/mask2former.onnx                  <- export.onnx_file (written by export), gen_trt_engine.onnx_file
    best/deploy/mask2former.engine         <- gen_trt_engine.trt_engine, TensorRT evaluate/inference
    best/export, best/evaluate, best/inference, best/deploy/...  results_dir of each action
    best/inference_spec.yaml               PyTorch inference of the promoted checkpoint (also what the MLflow
                                           model is packaged from)

Deploy specs follow the shape of TAO's `spec_template_deploy_*.yaml`; when the skill ships its own deploy
templates they are the base, so the result validates against the skill's schemas as well. Everything is
plain YAML dicts: the engine never imports the trainer.

Deploy-side evaluate/inference come for two runtimes, each in its own file: ONNX Runtime
(`deploy_<action>_onnxruntime_spec.yaml`, `trt_engine` = the exported `.onnx`; runs on any machine once
`mask2former export -e best/export_spec.yaml` has run) and TensorRT (`deploy_<action>_tensorrt_spec.yaml`,
`trt_engine` = the `.engine` that `gen_trt_engine` builds). `deploy_<action>_spec.yaml`, the file the README's
next command names, is the one this machine can run (`deploy_runtime()`: TensorRT where it is importable and
a GPU is present, else ONNX Runtime). Each file starts with a comment saying what it runs, what to run first,
and how to switch to the other runtime.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo.trials.candidates import PromotionError
from skillkit.spec import deep_merge, get_dotted, set_dotted

ONNX_RUNTIME, TENSORRT = "onnxruntime", "tensorrt"
ONNX_NAME = "mask2former.onnx"
ENGINE_NAME = "mask2former.engine"
EXPORT_SHAPE = (960, 544)  # (width, height): the export input TAO's Mask2Former deploy path is built for
_ACTION_SECTIONS = ("export", "evaluate", "inference", "gen_trt_engine", "quantize")


@dataclasses.dataclass(frozen=True)
class HandoffSpecs:
    """Every spec written into best/ (None for actions the skill does not offer)."""

    train: dict[str, Any]
    export: dict[str, Any] | None
    evaluate: dict[str, Any] | None
    deploy_gen_trt_engine: dict[str, Any] | None
    deploy_evaluate: dict[str, Any] | None  # TensorRT
    deploy_inference: dict[str, Any] | None  # TensorRT
    inference: dict[str, Any] | None = None
    deploy_evaluate_onnxruntime: dict[str, Any] | None = None
    deploy_inference_onnxruntime: dict[str, Any] | None = None
    deploy_runtime: str = ONNX_RUNTIME  # what deploy_<action>_spec.yaml runs: the runtime this machine has

    def files(self) -> dict[str, dict[str, Any]]:
        named = {
            "train_spec.yaml": self.train,
            "export_spec.yaml": self.export,
            "evaluate_spec.yaml": self.evaluate,
            "deploy_gen_trt_engine_spec.yaml": self.deploy_gen_trt_engine,
            **self._deploy_files(),
            "inference_spec.yaml": self.inference,
        }
        return {name: spec for name, spec in named.items() if spec is not None}

    def _deploy_files(self) -> dict[str, dict[str, Any] | None]:
        by_runtime = {
            TENSORRT: {"evaluate": self.deploy_evaluate, "inference": self.deploy_inference},
            ONNX_RUNTIME: {"evaluate": self.deploy_evaluate_onnxruntime, "inference": self.deploy_inference_onnxruntime},
        }
        files: dict[str, dict[str, Any] | None] = {}
        for action in ("evaluate", "inference"):
            chosen = by_runtime[self.deploy_runtime][action] or by_runtime[TENSORRT][action]
            files[f"deploy_{action}_spec.yaml"] = chosen
            for runtime in (ONNX_RUNTIME, TENSORRT):
                files[f"deploy_{action}_{runtime}_spec.yaml"] = by_runtime[runtime][action]
        return files

    def headers(self, best_dir: Path) -> dict[str, str]:
        """The comment each deploy file starts with: what it runs, what to run first, how to switch."""
        export, engine = best_dir / "export_spec.yaml", best_dir / "deploy_gen_trt_engine_spec.yaml"
        notes: dict[str, str] = {}
        for action in ("evaluate", "inference"):
            ort, trt = f"deploy_{action}_{ONNX_RUNTIME}_spec.yaml", f"deploy_{action}_{TENSORRT}_spec.yaml"
            ort_text = (f"Deploy-side {action} with ONNX Runtime (CPU, or CUDA where onnxruntime-gpu is installed) "
                        f"of the exported graph.\nFirst: mask2former export -e {export}\nThen:  mask2former {action} "
                        f"-e {best_dir / ort}\nFor TensorRT instead: mask2former gen_trt_engine -e {engine}, then "
                        f"mask2former {action} -e {best_dir / trt}")
            trt_text = (f"Deploy-side {action} with TensorRT (needs an NVIDIA GPU and the tensorrt package) of the "
                        f"engine built from the exported graph.\nFirst: mask2former export -e {export}\n       "
                        f"mask2former gen_trt_engine -e {engine}\nThen:  mask2former {action} -e {best_dir / trt}\n"
                        f"Without TensorRT: mask2former {action} -e {best_dir / ort} (ONNX Runtime, same metrics code)")
            texts = {ONNX_RUNTIME: ort_text, TENSORRT: trt_text}
            notes[ort], notes[trt] = ort_text, trt_text
            chosen = self.deploy_runtime if self._deploy_files()[f"deploy_{action}_{self.deploy_runtime}_spec.yaml"] \
                else TENSORRT
            notes[f"deploy_{action}_spec.yaml"] = (
                f"The {action} this machine can run ({'TensorRT' if chosen == TENSORRT else 'no TensorRT here: ONNX Runtime'}); "
                f"a copy of {f'deploy_{action}_{chosen}_spec.yaml'}.\n" + texts[chosen])
        return {name: text for name, text in notes.items() if self.files().get(name) is not None}


def deploy_runtime() -> str:
    """TensorRT where the `tensorrt` package imports and a GPU is visible, else ONNX Runtime."""
    if importlib.util.find_spec("tensorrt") is None:
        return ONNX_RUNTIME
    from hpo.trials.resources import detect_gpus

    return TENSORRT if detect_gpus() else ONNX_RUNTIME


@dataclasses.dataclass(frozen=True)
class HandoffPaths:
    """Where each action reads and writes, all absolute."""

    best_dir: Path
    checkpoint: Path

    @property
    def onnx_file(self) -> Path:
        return self.best_dir / ONNX_NAME

    @property
    def export_dir(self) -> Path:
        return self.best_dir / "export"

    @property
    def evaluate_dir(self) -> Path:
        return self.best_dir / "evaluate"

    @property
    def deploy_dir(self) -> Path:
        return self.best_dir / "deploy"

    @property
    def trt_engine(self) -> Path:
        return self.deploy_dir / ENGINE_NAME


def build_handoff_specs(train_spec: Mapping[str, Any], paths: HandoffPaths, *,
                        templates: Mapping[str, Mapping[str, Any]],
                        actions: Collection[str] = ("export", "evaluate"),
                        export_size: tuple[int, int] | None = None,
                        runtime: str | None = None, carried: Sequence[str] = ()) -> HandoffSpecs:
    """The handoff specs for the winning `train_spec`.

    `templates` maps an action (`export`, `evaluate`, `deploy_<action>`) to the skill's template; `actions`
    are the skill's actions: no export action, no export or deploy specs (a skill that cannot export cannot
    deploy either); no evaluate action, no evaluate spec. `export_size` (width, height) is the export input
    size (`export_size.py` chooses it: the tuned test size or `deploy.input_size`); without it, the spec's or
    template's export section. `runtime` names what `deploy_<action>_spec.yaml` runs (default: what this
    machine has, `deploy_runtime()`). `carried` are the spec keys the trained model's structure depends on
    (the skill's `x_handoff_keys`): an export spec is only written when the training spec has them.
    """
    common = {key: copy.deepcopy(value) for key, value in train_spec.items() if key not in _ACTION_SECTIONS}
    export = evaluate = gen_engine = deploy_evaluate = deploy_inference = ort_evaluate = ort_inference = None
    if "export" in actions:
        _check_carried(train_spec, templates.get("export"), carried)
        export = deep_merge(templates.get("export") or {}, common)
        export["results_dir"] = str(paths.export_dir)
        width, height = export_size or template_export_shape(train_spec, templates.get("export") or {})
        for dotted, value in (
            ("export.results_dir", str(paths.export_dir)),
            ("export.checkpoint", str(paths.checkpoint)),
            ("export.onnx_file", str(paths.onnx_file)),
            ("export.input_width", width),
            ("export.input_height", height),
        ):
            set_dotted(export, dotted, value)
        export["export"].setdefault("input_channel", 3)
        gen_engine = _deploy_gen_trt_engine(paths, templates.get("deploy_gen_trt_engine"), common)
        deploy_evaluate = _deploy_trt_action(train_spec, paths, "evaluate", templates.get("deploy_evaluate"), common)
        deploy_inference = _deploy_trt_action(train_spec, paths, "inference", templates.get("deploy_inference"), common)
        ort_evaluate = _onnxruntime_variant(deploy_evaluate, paths, "evaluate")
        ort_inference = _onnxruntime_variant(deploy_inference, paths, "inference")
    if "evaluate" in actions:
        evaluate = deep_merge(templates.get("evaluate") or {}, common)
        evaluate["results_dir"] = str(paths.evaluate_dir)
        set_dotted(evaluate, "evaluate.checkpoint", str(paths.checkpoint))
        set_dotted(evaluate, "evaluate.results_dir", str(paths.evaluate_dir))
        if "trt_engine" in (evaluate.get("evaluate") or {}) or "export" in actions:
            set_dotted(evaluate, "evaluate.trt_engine", "")  # PyTorch evaluation of the checkpoint, not TensorRT
    inference = None
    if "inference" in actions:
        inference = deep_merge(templates.get("inference") or {}, common)
        inference["results_dir"] = str(paths.best_dir / "inference")
        set_dotted(inference, "inference.checkpoint", str(paths.checkpoint))
        set_dotted(inference, "inference.results_dir", str(paths.best_dir / "inference"))
        if "trt_engine" in (inference.get("inference") or {}):
            set_dotted(inference, "inference.trt_engine", "")  # PyTorch inference of the checkpoint
    return HandoffSpecs(train=copy.deepcopy(dict(train_spec)), export=export, evaluate=evaluate,
                        deploy_gen_trt_engine=gen_engine, deploy_evaluate=deploy_evaluate,
                        deploy_inference=deploy_inference, inference=inference,
                        deploy_evaluate_onnxruntime=ort_evaluate, deploy_inference_onnxruntime=ort_inference,
                        deploy_runtime=runtime or deploy_runtime())


def _check_carried(train_spec: Mapping[str, Any], template: Mapping[str, Any] | None, carried: Sequence[str]) -> None:
    """Export and deploy need the structural settings; a template that has them says the skill uses them."""
    for dotted in carried:
        if template and get_dotted(template, dotted, None) is None:
            continue
        if get_dotted(train_spec, dotted, None) is None:
            raise PromotionError(
                f"the winning trial's spec has no '{dotted}'; export and deploy need it carried over. "
                "The trial's spec.yaml must be the full resolved spec."
            )


def template_export_shape(train_spec: Mapping[str, Any], template: Mapping[str, Any]) -> tuple[int, int]:
    """The export input size: the spec's own export section if it has one, else 960x544."""
    width = get_dotted(train_spec, "export.input_width", None) or get_dotted(template, "export.input_width", None)
    height = get_dotted(train_spec, "export.input_height", None) or get_dotted(template, "export.input_height", None)
    return int(width or EXPORT_SHAPE[0]), int(height or EXPORT_SHAPE[1])


def _deploy_gen_trt_engine(paths: HandoffPaths, template: Mapping[str, Any] | None,
                           common: Mapping[str, Any]) -> dict[str, Any]:
    if template:
        spec = deep_merge(template, common)
    else:
        spec = {"gen_trt_engine": {"gpu_id": 0, "tensorrt": {"data_type": "fp16", "workspace_size": 1024,
                                                            "min_batch_size": 1, "opt_batch_size": 1,
                                                            "max_batch_size": 1}}}
    spec["results_dir"] = str(paths.deploy_dir)
    set_dotted(spec, "gen_trt_engine.results_dir", str(paths.deploy_dir))
    set_dotted(spec, "gen_trt_engine.onnx_file", str(paths.onnx_file))
    set_dotted(spec, "gen_trt_engine.trt_engine", str(paths.trt_engine))
    return spec


def _deploy_trt_action(train_spec: Mapping[str, Any], paths: HandoffPaths, action: str,
                       template: Mapping[str, Any] | None, common: Mapping[str, Any]) -> dict[str, Any]:
    """TensorRT evaluate/inference: TAO's deploy shape (data, the model settings post-processing needs)."""
    results_dir = paths.deploy_dir / action
    if template:
        spec = deep_merge(template, common)
    else:
        dataset = train_spec.get("dataset") or {}
        model = train_spec.get("model") or {}
        head = model.get("sem_seg_head") or {}
        spec = {
            "dataset": {
                "label_map": dataset.get("label_map", ""),
                "contiguous_id": dataset.get("contiguous_id"),
                "val": copy.deepcopy(dataset.get("val") or {}),
                "test": copy.deepcopy(dataset.get("test") or {}),
            },
            "model": {
                "mode": model.get("mode"),
                "object_mask_threshold": model.get("object_mask_threshold"),
                "overlap_threshold": model.get("overlap_threshold"),
                "sem_seg_head": {"norm": head.get("norm"), "num_classes": head.get("num_classes")},
            },
        }
    spec["results_dir"] = str(results_dir)
    for split in ("val", "test"):
        if isinstance(spec.get("dataset", {}).get(split), dict):
            spec["dataset"][split]["batch_size"] = 1  # TensorRT engines are built for batch 1 (see gen spec)
    for section in ("evaluate", "inference"):
        set_dotted(spec, f"{section}.trt_engine", str(paths.trt_engine))
    set_dotted(spec, f"{action}.results_dir", str(results_dir))
    return spec


def _onnxruntime_variant(trt_spec: Mapping[str, Any], paths: HandoffPaths, action: str) -> dict[str, Any]:
    """The TensorRT deploy spec pointed at the exported ONNX graph (run with ONNX Runtime), with its own
    results folder."""
    spec = copy.deepcopy(dict(trt_spec))
    results_dir = paths.deploy_dir / f"{action}_{ONNX_RUNTIME}"
    spec["results_dir"] = str(results_dir)
    for section in ("evaluate", "inference"):
        set_dotted(spec, f"{section}.trt_engine", str(paths.onnx_file))
        if "checkpoint" in (spec.get(section) or {}):
            set_dotted(spec, f"{section}.checkpoint", "")  # the graph is what runs, not a checkpoint
    set_dotted(spec, f"{action}.results_dir", str(results_dir))
    return spec
