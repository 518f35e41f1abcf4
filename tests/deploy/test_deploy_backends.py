"""InferenceBackend contract (chunking, size checks, raw outputs) and gen_trt_engine's checks on any machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mask2former.deploy.backends import InferenceBackend, OnnxRuntimeBackend, metadata_from_io, open_backend
from skillkit.errors import DataError, SpecError, UserError
from skillkit.status.writer import read_status
from tests.deploy.deploy_fixtures import SMALL_SIZE, exported, write_spec

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


class _Recorder(InferenceBackend):
    """A graph of fixed batch 2 that returns each image's mean, recording the batches it was given."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__({"input_height": 8, "input_width": 8})
        self.calls: list[int] = []

    @property
    def batch_range(self):
        return (2, 2)

    def _run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        assert images.shape[0] == 2
        self.calls.append(int(images.shape[0]))
        return {"mean": images.mean(dim=(1, 2, 3))}


def test_batches_are_chunked_and_padded_to_the_graph_batch() -> None:
    backend = _Recorder()
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 8, 8).contiguous()
    out = backend.outputs(images)
    assert backend.calls == [2, 2, 2]  # 5 images -> 2 + 2 + (1 padded to 2)
    assert out["mean"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # padding dropped


def test_wrong_image_size_is_a_data_error() -> None:
    with pytest.raises(DataError, match="takes 8x8"):
        _Recorder().outputs(torch.zeros(2, 3, 16, 8))


def test_graph_without_raw_outputs_cannot_be_evaluated(tmp_path: Path) -> None:
    node = helper.make_node("Identity", ["inputs"], ["pred_masks"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["b", 3, 4, 4])],
                              [helper.make_tensor_value_info("pred_masks", TensorProto.FLOAT, ["b", 3, 4, 4])])
    path = tmp_path / "tao_only.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with open_backend(path) as backend:
        assert backend.mode == "semantic" and backend.input_size == (4, 4)  # read off the graph itself
        with pytest.raises(UserError, match="mask2former export"):
            backend.predict(torch.zeros(1, 3, 4, 4))


def test_metadata_is_read_from_the_graph_when_absent() -> None:
    info = metadata_from_io(["prob_masks", "pred_masks", "pred_scores", "pred_classes", "raw_pred_logits",
                             "raw_pred_masks"], {"raw_pred_logits": ["b", 10, 7]}, ["b", 3, 64, 96])
    assert info == {"mode": "panoptic", "num_classes": 6, "input_height": 64, "input_width": 96}


def test_onnx_backend_reads_export_metadata() -> None:
    with OnnxRuntimeBackend(exported("semantic").onnx_file) as backend:
        assert backend.metadata["format"] == "mask2former-onnx/1"
        assert backend.num_classes == 6 and backend.batch_range is None  # dynamic batch
        assert backend.metadata["verification"]["passed"]


def _engine_spec(tmp_path: Path, **tensorrt) -> Path:
    spec = {"gen_trt_engine": {"onnx_file": str(exported("semantic").onnx_file),
                               "trt_engine": str(tmp_path / "m.engine"), "tensorrt": tensorrt},
            "results_dir": str(tmp_path / "out")}
    return write_spec(tmp_path / "engine.yaml", spec)


@pytest.mark.parametrize("tensorrt, message", [
    ({"data_type": "INT8"}, "INT8 is not supported"),
    ({"data_type": "int8"}, "mask2former quantize"),
    ({"min_batch_size": 4, "opt_batch_size": 2, "max_batch_size": 8}, "min_batch_size <= opt_batch_size"),
    ({"layers_precision": ["/model/backbone/*"]}, "layer name or glob"),
    ({"layers_precision": ["/model/*:int4"]}, "fp32, fp16"),
])
def test_gen_trt_engine_refuses_bad_settings_before_needing_tensorrt(tmp_path: Path, capsys, tensorrt, message) -> None:
    from mask2former.cli import main

    code = main(["gen_trt_engine", "-e", str(_engine_spec(tmp_path, **tensorrt))])
    assert code == SpecError.exit_code
    assert message in capsys.readouterr().err
    last = read_status(tmp_path / "out")[-1]
    assert last["status"] == "FAILURE" and last["error_class"] == "spec"


def test_gen_trt_engine_checks_a_fixed_batch_graph_against_the_profile(tmp_path: Path) -> None:
    from mask2former.config import config_from_dict
    from mask2former.deploy.trt_engine import check_onnx_batch, engine_settings
    from skillkit.spec import load_spec

    graph = onnx.load(str(exported("semantic").onnx_file), load_external_data=False)
    graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2  # as if exported with batch_size 2
    fixed = tmp_path / "fixed.onnx"
    onnx.save(graph, str(fixed))
    cfg = config_from_dict(load_spec(_engine_spec(tmp_path, max_batch_size=4), action="gen_trt_engine"))
    with pytest.raises(SpecError, match="fixed batch of 2"):
        check_onnx_batch(fixed, engine_settings(cfg))
    assert check_onnx_batch(exported("semantic").onnx_file, engine_settings(cfg)) == (-1, SMALL_SIZE, SMALL_SIZE)
    with pytest.raises(DataError, match="does not exist"):
        check_onnx_batch(tmp_path / "missing.onnx", engine_settings(cfg))


@pytest.mark.skipif(HAS_TENSORRT, reason="this machine has TensorRT; the GPU tests cover it")
def test_without_tensorrt_gen_trt_engine_points_to_onnx_runtime(tmp_path: Path, capsys) -> None:
    from mask2former.cli import main

    code = main(["gen_trt_engine", "-e", str(_engine_spec(tmp_path, data_type="fp16"))])
    assert code == UserError.exit_code
    err = capsys.readouterr().err
    assert "TensorRT is needed" in err and "ONNX Runtime" in err and ".onnx" in err
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.skipif(HAS_TENSORRT, reason="this machine has TensorRT")
def test_opening_an_engine_without_tensorrt_is_a_clear_error(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(UserError, match="ONNX Runtime"):
        open_backend(engine)


def test_unused_numpy_inputs_are_converted() -> None:
    with OnnxRuntimeBackend(exported("semantic").onnx_file) as backend:
        images = torch.from_numpy(np.random.default_rng(0).random((1, 3, SMALL_SIZE, SMALL_SIZE), dtype=np.float32))
        out = backend.predict(images.double())  # any float dtype is fed as float32
        assert out["pred_logits"].dtype == torch.float32
