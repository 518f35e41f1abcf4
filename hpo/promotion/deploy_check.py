"""The deploy-side score of the promoted model: export it, then evaluate the exported graph at its input size.

When the export size differs from the size the sweep tuned (a `deploy.input_size` such as TAO's 960 x 544),
the promoted metric says nothing about what will be deployed. Promotion then runs, with the skill's own
commands (the engine never imports the trainer):

1. `export` on `best/export_spec.yaml` -> `best/mask2former.onnx` (log in `best/export/export.log`);
2. `evaluate` on `best/deploy_evaluate_onnxruntime_spec.yaml`, the ONNX Runtime deploy spec promotion
   writes for users anyway (`evaluate.trt_engine` = the ONNX file; the skill resizes every image to the
   graph's input size), results in `best/deploy/evaluate_onnxruntime/`.

Both scores land in best.json: `evaluation.promoted` (at the tuned size) and `evaluation.deploy` (at the
export size). A failing step is reported there, never raised: the hand-off itself is still complete.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo.promotion.evaluation import EvaluationResult, SkillEvaluator
from hpo.promotion.export_size import ExportSize
from hpo.promotion.specs import HandoffPaths, HandoffSpecs
from skillkit.spec import dump_spec

ONNX_EVALUATE_SPEC = "deploy_evaluate_onnxruntime_spec.yaml"


@dataclasses.dataclass(frozen=True)
class DeployCheck:
    """The export and the exported graph's evaluation; `value` is None when either failed."""

    onnx_file: Path | None
    export_error: str | None
    evaluation: EvaluationResult | None
    size: ExportSize

    @property
    def value(self) -> float | None:
        return self.evaluation.value if self.evaluation else None

    def to_dict(self) -> dict[str, Any]:
        return {"onnx_file": str(self.onnx_file) if self.onnx_file else None, "export_error": self.export_error,
                "input_width": self.size.width, "input_height": self.size.height, "value": self.value,
                "run": self.evaluation.to_dict() if self.evaluation else None}


def onnx_evaluate_spec(specs: HandoffSpecs) -> dict[str, Any]:
    """The ONNX Runtime deploy evaluate spec (`deploy_evaluate_onnxruntime_spec.yaml`), one owner: `specs.py`."""
    return copy.deepcopy(specs.deploy_evaluate_onnxruntime or {})


def export_and_evaluate(runner: SkillEvaluator, specs: HandoffSpecs, paths: HandoffPaths, size: ExportSize,
                        metric: str) -> DeployCheck:
    """Export the promoted checkpoint and score the graph at its input size (see the module docstring)."""
    returncode, error, _ = runner.run_action("export", paths.best_dir / "export_spec.yaml",
                                             paths.export_dir / "export.log")
    if error is None and not paths.onnx_file.is_file():
        error = f"the export finished but wrote no '{paths.onnx_file}'"
    if error is not None:
        return DeployCheck(None, error, None, size)
    spec = onnx_evaluate_spec(specs)
    spec_path = paths.best_dir / ONNX_EVALUATE_SPEC
    if not spec_path.is_file():  # written with the other hand-off files; rewritten only if it went missing
        dump_spec(spec, spec_path)
    evaluation = runner(spec_path, Path(spec["results_dir"]), metric)
    return DeployCheck(paths.onnx_file, None, evaluation, size)


def wants_deploy_check(option: Any, size: ExportSize) -> bool:
    """`promotion.export`: "auto" (default) when the sizes differ, true always, false never."""
    if option is True:
        return True
    if option is False:
        return False
    return size.differs


def describe(check: DeployCheck, promoted: float | None, metric: str) -> Mapping[str, Any]:
    """The numbers for best.json's `evaluation` section."""
    deploy = check.value
    return {"deploy": deploy, "deploy_input_size": [check.size.width, check.size.height],
            "deploy_minus_promoted": None if deploy is None or promoted is None else deploy - promoted,
            "deploy_run": check.to_dict(), "deploy_metric": metric}
