"""The champion as a loadable MLflow model: packaged by the skill, uploaded and registered by the engine.

The engine never imports the trainer, so it cannot build the pyfunc wrapper itself. A skill that can package
its checkpoints declares it in references/skill_info.yaml:

    x_mlflow_model:
      command: mask2former mlflow_model -e {config_path} --output {output_dir}
      config_action: inference

Promotion writes the spec for `config_action` (best/inference_spec.yaml, with secrets redacted and
`inference.checkpoint` pointing at the checkpoint that is uploaded, itself redacted when it embeds a secret),
runs the command, and logs the folder it writes as an MLflow LoggedModel of the winning trial's run (also
listed among the parent run's outputs), registered under `registered_model_name` with the alias moved to it.
When the promoted model was exported, the ONNX file and its export report travel in the folder under
`onnx/`. Loading `models:/<name>@<alias>` then gives the skill's pyfunc.

A skill without `x_mlflow_model` (or a packaging that fails) registers the raw checkpoint folder as before,
with the reason in best.json's `mlflow.model_error`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo.promotion.evaluation import SkillEvaluator
from skillkit.errors import SchemaError
from skillkit.redaction import Redactor
from skillkit.spec import dump_spec, set_dotted

MODEL_DIRNAME = "model"
ONNX_DIRNAME = "onnx"


@dataclasses.dataclass(frozen=True)
class PackagedModel:
    """The MLflow model folder the skill wrote, or why there is none."""

    folder: Path | None
    error: str | None
    log: Path | None


def package_model(runner: SkillEvaluator, spec: Mapping[str, Any], checkpoint: Path, work_dir: Path,
                  redactor: Redactor, *, onnx_file: Path | None = None) -> PackagedModel:
    """Run the skill's `x_mlflow_model` command on a redacted copy of `spec` pointed at `checkpoint`."""
    spec_path = work_dir / "inference_spec.yaml"
    folder = work_dir / MODEL_DIRNAME
    log = work_dir / "mlflow_model.log"
    try:
        command = runner.skill.mlflow_model_command(spec_path, folder)
    except SchemaError as error:
        return PackagedModel(None, str(error), None)
    if command is None:
        return PackagedModel(None, "the skill declares no x_mlflow_model command in skill_info.yaml", None)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    packaged = redactor.data(copy.deepcopy(dict(spec)))
    set_dotted(packaged, "inference.checkpoint", str(checkpoint))
    packaged["results_dir"] = str(work_dir / "results")
    set_dotted(packaged, "inference.results_dir", str(work_dir / "results"))
    dump_spec(packaged, spec_path)
    _, problem, _ = runner.run_argv(command, log, "package the MLflow model")
    if problem is None and not (folder / "MLmodel").is_file():
        problem = f"the packaging command finished but wrote no '{folder / 'MLmodel'}'; see {log}"
    if problem is not None:
        return PackagedModel(None, problem, log)
    if onnx_file is not None and onnx_file.is_file():
        _attach_onnx(folder, onnx_file)
    return PackagedModel(folder, None, log)


def _attach_onnx(folder: Path, onnx_file: Path) -> None:
    target = folder / ONNX_DIRNAME
    target.mkdir(exist_ok=True)
    for source in (onnx_file, onnx_file.parent / "export" / "export.json"):
        if source.is_file():
            try:
                os.link(source, target / source.name)
            except OSError:
                shutil.copy2(source, target / source.name)
