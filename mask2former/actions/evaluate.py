"""`mask2former evaluate -e spec.yaml [a.b=c ...]`: metrics of a trained checkpoint on labelled data.

* The model is rebuilt from the spec stored in `evaluate.checkpoint` (architecture and class count as
  trained); post-processing (`model.mode`, `object_mask_threshold`, `overlap_threshold`,
  `test_topk_per_image`), data and devices come from the evaluate spec.
* Split: `dataset.test` when it names annotations (every file its type needs is set), otherwise
  `dataset.val`. The split used is printed and recorded.
* Batch size: `evaluate.batch_size`, or the split's when -1.
* `evaluate.trt_engine` set (an engine or an ONNX file): the command hands over to the deploy side
  (`mask2former.actions.deploy_evaluate.run_deploy_evaluation`), which scores the graph with the same code.
* Scores: at each image's original resolution (predictions resized back, ground truth as on disk), so they do
  not depend on the test-time size: PQ/SQ/RQ counted as COCO's panopticapi `pq_compute` counts them, mask AP
  with pycocotools' COCOeval, mIoU. Deterministic for a checkpoint and data, val_loss included (its point
  sampling is seeded per batch).
* Output: a metrics table on stdout, `results_dir/evaluation.json`
  (`{"checkpoint", "split", "mode", "num_images", "metrics"}`) and a SUCCESS line in
  `results_dir/status.json` whose `kpi` holds the metrics (mIoU, pixel_acc, val_loss, and PQ or AP).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mask2former.actions.common import (
    action_results_dir,
    add_spec_arguments,
    batch_size_for,
    eval_device,
    load_action_config,
    load_eval_model,
    reject_trt_engine,
)
from mask2former.training.failures import classify
from skillkit.status.writer import ERROR, FAILURE, STARTED, SUCCESS, StatusWriter

if TYPE_CHECKING:
    from mask2former.config import ExperimentConfig

EVALUATION_FILENAME = "evaluation.json"


def run_evaluation(cfg: ExperimentConfig, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate `cfg.evaluate.checkpoint`; returns the evaluation.json content (also written to disk)."""
    results_dir = action_results_dir(cfg, "evaluate")
    writer = StatusWriter(results_dir, num_epochs=None)
    writer.write(STARTED, f"Evaluating {cfg.evaluate.checkpoint}")
    try:
        report = _evaluate(cfg, results_dir)
    except BaseException as error:
        writer.write(FAILURE, f"{type(error).__name__}: {error}", verbosity=ERROR, error_class=classify(error))
        raise
    writer.write(SUCCESS, f"Evaluation finished on dataset.{report['split']} ({report['num_images']} images).",
                 kpi=report["metrics"])
    return report


def _evaluate(cfg: ExperimentConfig, results_dir: Path) -> dict[str, Any]:
    import lightning as L

    from mask2former.data.build import evaluation_split
    from mask2former.model.build import build_criterion, build_postprocessor
    from mask2former.training.datamodule import Mask2FormerDataModule
    from mask2former.training.system import Mask2FormerSystem
    from mask2former.training.trainer import clip_settings, optim_settings
    from mask2former.training.validation import MetricsSuite

    reject_trt_engine(cfg, "evaluate")
    device = eval_device(cfg.evaluate, action="evaluate")
    model, trained_cfg, trained_spec = load_eval_model(cfg.evaluate.checkpoint)
    split = evaluation_split(cfg.dataset)
    num_classes = int(trained_cfg.model.sem_seg_head.num_classes)
    data = Mask2FormerDataModule(cfg.dataset, mode=cfg.model.mode, num_classes=num_classes, eval_split=split,
                                 eval_batch_size=batch_size_for(cfg, "evaluate", split))
    data.check(training=False)
    postprocessor = build_postprocessor(cfg, thing_ids=sorted(data.categories.thing_train_ids))
    suite = MetricsSuite(mode=cfg.model.mode, categories=data.categories, num_classes=num_classes,
                         postprocessor=postprocessor)
    system = Mask2FormerSystem(model, build_criterion(trained_cfg), spec=trained_spec,
                               optim=optim_settings(trained_cfg), clip=clip_settings(trained_cfg), validation=suite)
    trainer = L.Trainer(accelerator=device.accelerator, devices=device.devices, num_nodes=device.num_nodes,
                        logger=False, enable_checkpointing=False, enable_model_summary=False,
                        default_root_dir=str(results_dir))
    trainer.validate(system, datamodule=data, verbose=False)
    metrics = dict(system.last_validation or {})
    report = {
        "checkpoint": str(cfg.evaluate.checkpoint),
        "split": split,
        "mode": cfg.model.mode,
        "num_images": len(data.val_dataloader().dataset),
        "metrics": metrics,
    }
    if trainer.is_global_zero:
        (results_dir / EVALUATION_FILENAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        _print_table(report)
    return report


def _print_table(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Evaluation on dataset.{report['split']} ({report['num_images']} images, "
                        f"mode {report['mode']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report["metrics"].items():
        table.add_row(name, "-" if value is None else f"{value:.4f}")
    Console().print(table)


def handle(args: argparse.Namespace) -> int:
    cfg, spec = load_action_config(args, "evaluate")
    if cfg.evaluate.trt_engine:
        # A TensorRT engine or an ONNX file: the deploy side runs it through the same metrics code.
        from mask2former.actions.deploy_evaluate import run_deploy_evaluation

        run_deploy_evaluation(cfg, spec)
    else:
        run_evaluation(cfg, spec)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a trained checkpoint (mIoU, pixel accuracy, PQ or AP)")
    add_spec_arguments(parser)
    parser.set_defaults(func=handle)
