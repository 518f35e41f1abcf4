"""The `evaluate` action on a deployed graph (`evaluate.trt_engine`: a TensorRT engine, or an ONNX file run
with ONNX Runtime): scores it with `mask2former.deploy.evaluate.evaluate_backend`, the PyTorch evaluation's data
path and metrics, and writes evaluation.json and status.json lines like the PyTorch evaluate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mask2former.actions.evaluate import EVALUATION_FILENAME

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig


def run_deploy_evaluation(cfg: ExperimentConfig, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `evaluate` action with `evaluate.trt_engine` set; writes evaluation.json and status.json lines."""
    import torch

    from mask2former.actions.common import action_results_dir, batch_size_for, print_metrics
    from mask2former.actions.status import recorded
    from mask2former.data.build import evaluation_split
    from mask2former.deploy.backends import open_backend
    from mask2former.deploy.evaluate import check_graph_classes, evaluate_backend
    from skillkit.status.writer import RUNNING, SUCCESS, WARNING

    results_dir = action_results_dir(cfg, "evaluate")
    engine = str(cfg.evaluate.trt_engine)
    with recorded(results_dir, f"Evaluating {engine}") as writer:
        device = f"cuda:{int(cfg.evaluate.gpu_ids[0])}" if torch.cuda.is_available() else "cpu"
        with open_backend(engine, device=device) as backend:
            num_classes = check_graph_classes(cfg, backend, "evaluate.trt_engine")
            if backend.mode and backend.mode != cfg.model.mode:
                writer.write(RUNNING, f"the graph was exported for model.mode={backend.mode}; evaluating as "
                                      f"model.mode={cfg.model.mode} from its raw outputs", verbosity=WARNING)
            split = evaluation_split(cfg.dataset)
            result = evaluate_backend(backend, cfg, num_classes=num_classes, split=split,
                                      batch_size=batch_size_for(cfg, "evaluate", split))
            for notice in result.notices:
                writer.write(RUNNING, notice, verbosity=WARNING)
            report = {
                "trt_engine": engine,
                "backend": backend.name,
                "providers": list(getattr(backend, "providers", [])),
                "split": result.split,
                "mode": cfg.model.mode,
                "num_images": result.num_images,
                "seconds_per_image": result.seconds / max(result.num_images, 1),
                "metrics": result.metrics,
            }
        (Path(results_dir) / EVALUATION_FILENAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        writer.write(SUCCESS, f"Evaluation of {engine} ({report['backend']}) finished on dataset.{result.split} "
                              f"({result.num_images} images).", kpi=result.metrics)
    print_metrics(f"{report['backend']} evaluation on dataset.{result.split} ({result.num_images} images, "
                  f"mode {cfg.model.mode})", result.metrics)
    return report
