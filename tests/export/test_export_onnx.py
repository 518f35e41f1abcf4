"""`mask2former export`: TAO output names, documented shapes/dtypes, float32 graph, dynamic batch, ORT = PyTorch."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from mask2former.export.graph_checks import inspect_graph, read_metadata
from mask2former.export.heads import ExportableMask2Former, output_shapes
from mask2former.export.onnx_export import (
    DEFAULT_TOLERANCE,
    ExportSettings,
    compare_outputs,
    run_onnxruntime,
)
from mask2former.model.tiny import build_tiny_model
from skillkit.errors import SpecError
from skillkit.status.writer import read_status
from tests.deploy.deploy_fixtures import NUM_CLASSES, SMALL_SIZE, exported, tiny_checkpoint, write_spec

TAO_OUTPUTS = {
    "semantic": ["pred_masks"],
    "instance": ["pred_masks", "pred_scores", "pred_classes"],
    "panoptic": ["prob_masks", "pred_masks", "pred_scores", "pred_classes"],
}
QUERIES = 10  # tiny model


@pytest.mark.parametrize("mode", ["semantic", "instance", "panoptic"])
def test_export_cli_writes_a_verified_float32_graph_with_tao_outputs(mode: str) -> None:
    result = exported(mode)
    assert result.exit_code == 0
    report = json.loads((result.results_dir / "export.json").read_text())
    graph = onnx.load(str(result.onnx_file))
    names = [o.name for o in graph.graph.output]
    assert names == TAO_OUTPUTS[mode] + ["raw_pred_logits", "raw_pred_masks"]
    assert [i.name for i in graph.graph.input] == ["inputs"]
    expected = output_shapes(mode, num_classes=NUM_CLASSES, num_queries=QUERIES, topk=100, height=SMALL_SIZE,
                             width=SMALL_SIZE)
    assert {k: (v["shape"], v["dtype"]) for k, v in report["outputs"].items()} == {k: (s, d) for k, (s, d) in expected.items()}
    assert report["verification"]["passed"] and report["verification"]["batch"] == 2  # dynamic batch was run at 2
    assert max(report["verification"]["max_abs_diff"].values()) <= DEFAULT_TOLERANCE
    assert report["graph"]["float64_tensors"] == []
    assert report["graph"]["grid_sample_nodes"] > 0 and report["graph"]["grid_sample_grid_dtypes"] == ["FLOAT"]
    assert read_metadata(result.onnx_file)["mode"] == mode
    lines = read_status(result.results_dir)
    assert [line["status"] for line in lines] == ["STARTED", "SUCCESS"]
    assert lines[-1]["kpi"]["max_abs_diff"] <= DEFAULT_TOLERANCE

    # Dynamic batch: three images in one call, with the documented shapes and dtypes.
    images = np.random.default_rng(0).random((3, 3, SMALL_SIZE, SMALL_SIZE), dtype=np.float32)
    outputs = run_onnxruntime(result.onnx_file, images)
    for name, (shape, dtype) in expected.items():
        assert list(outputs[name].shape) == [3, *shape[1:]]
        assert outputs[name].dtype == np.dtype(dtype)
    if mode == "panoptic":  # probabilities, and prob_masks = score * mask probability
        np.testing.assert_allclose(outputs["prob_masks"], outputs["pred_scores"][:, :, None, None] * outputs["pred_masks"],
                                   rtol=1e-5, atol=1e-6)
        assert ((outputs["pred_classes"] >= 0) & (outputs["pred_classes"] <= NUM_CLASSES)).all()
    if mode == "instance":
        assert set(np.unique(outputs["pred_masks"])) <= {0.0, 1.0}
        assert ((outputs["pred_classes"] >= 0) & (outputs["pred_classes"] < NUM_CLASSES)).all()
    if mode == "semantic":  # sum over classes of p(c|q) * mask_q, so bounded by the number of queries
        assert outputs["pred_masks"].min() >= 0 and outputs["pred_masks"].max() <= QUERIES


def test_export_at_960x544_with_a_fixed_batch(tmp_path) -> None:
    from mask2former.cli import main

    spec = {"model": {"mode": "panoptic"},
            "export": {"checkpoint": str(tiny_checkpoint()), "onnx_file": str(tmp_path / "m.onnx"), "batch_size": 1},
            "results_dir": str(tmp_path / "out")}
    assert main(["export", "-e", str(write_spec(tmp_path / "s.yaml", spec))]) == 0
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert report["input"]["shape"] == [1, 3, 544, 960]  # the TAO default size
    assert report["outputs"]["prob_masks"]["shape"] == [1, QUERIES, 544, 960]
    assert report["verification"]["passed"] and report["verification"]["batch"] == 1
    dims = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 544, 960]
    print("960x544 ORT vs PyTorch max abs difference:", max(report["verification"]["max_abs_diff"].values()))


@pytest.mark.parametrize("field, value, message", [
    ("opset", 13, "opset >= 16"),
    ("batch_size", 0, "dynamic batch"),
    ("mode", "depth", "cannot be exported"),
    ("height", 16, ">= 32"),
])
def test_export_settings_are_checked(field: str, value, message: str) -> None:
    kwargs = {"mode": "semantic", "height": 64, "width": 64, field: value}
    with pytest.raises(SpecError, match=message):
        ExportSettings(**kwargs)


class _Float64Grid(torch.nn.Module):
    """A graph the checker must refuse: float64 arithmetic and a float64 GridSample grid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = torch.zeros(x.shape[0], 2, 2, 2, dtype=torch.float64) + 0.25
        return F.grid_sample(x.double(), grid, align_corners=False).float()


def test_graph_check_finds_float64_tensors_and_grids(tmp_path) -> None:
    path = tmp_path / "f64.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Float64Grid(), (torch.rand(1, 1, 4, 4),), str(path), dynamo=False, opset_version=17)
    report = inspect_graph(path)
    assert report.float64 and not report.is_float32
    assert [dtype for _, dtype in report.grid_sample_grids] == ["DOUBLE"]


def _panoptic_outputs(batch: int = 1) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    model = build_tiny_model(NUM_CLASSES).eval()
    wrapper = ExportableMask2Former(model, mode="panoptic", output_size=(32, 32), topk=100)
    images = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        values = wrapper(images)
        probs = model(images)["pred_logits"].softmax(-1)
    names = ["prob_masks", "pred_masks", "pred_scores", "pred_classes", "raw_pred_logits", "raw_pred_masks"]
    return dict(zip(names, values)), probs


def test_comparison_rules_fail_on_real_differences_and_allow_ties() -> None:
    expected, probs = _panoptic_outputs()
    same = compare_outputs(expected, {k: v.clone() for k, v in expected.items()}, mode="panoptic", class_probs=probs,
                           tolerance=DEFAULT_TOLERANCE, batch=1)
    assert same.passed and max(same.max_abs_diff.values()) == 0.0

    drifted = {k: v.clone() for k, v in expected.items()}
    drifted["prob_masks"] = drifted["prob_masks"] + 5e-3
    result = compare_outputs(expected, drifted, mode="panoptic", class_probs=probs, tolerance=DEFAULT_TOLERANCE, batch=1)
    assert not result.passed and "prob_masks" in result.problems[0]

    swapped = {k: v.clone() for k, v in expected.items()}
    swapped["pred_classes"][0, 0] = (swapped["pred_classes"][0, 0] + 1) % (NUM_CLASSES + 1)
    clear = probs.clone()
    clear[0, 0] = 0.0
    clear[0, 0, int(expected["pred_classes"][0, 0])] = 1.0  # no tie at query 0: a real disagreement
    assert not compare_outputs(expected, swapped, mode="panoptic", class_probs=clear, tolerance=DEFAULT_TOLERANCE,
                               batch=1).passed
    tied = clear.clone()
    tied[0, 0] = 0.0
    tied[0, 0, int(expected["pred_classes"][0, 0])] = 0.5
    tied[0, 0, int(swapped["pred_classes"][0, 0])] = 0.5  # two classes tie: either answer is right
    assert compare_outputs(expected, swapped, mode="panoptic", class_probs=tied, tolerance=DEFAULT_TOLERANCE,
                           batch=1).passed

    missing = {k: v for k, v in expected.items() if k != "pred_scores"}
    assert "missing" in compare_outputs(expected, missing, mode="panoptic", class_probs=probs,
                                        tolerance=DEFAULT_TOLERANCE, batch=1).problems[0]


def test_too_small_export_size_is_refused_with_an_explanation(tmp_path, capsys) -> None:
    from mask2former.cli import main

    spec = {"export": {"checkpoint": str(tiny_checkpoint()), "onnx_file": str(tmp_path / "m.onnx"),
                       "input_width": 32, "input_height": 32},
            "results_dir": str(tmp_path / "out")}
    code = main(["export", "-e", str(write_spec(tmp_path / "s.yaml", spec))])
    assert code == SpecError.exit_code
    assert re.search(r"stride 32: 1x1.*at least 2x2", capsys.readouterr().err)
    last = read_status(tmp_path / "out")[-1]
    assert last["status"] == "FAILURE" and last["error_class"] == "spec"
