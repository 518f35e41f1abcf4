"""The model exports to ONNX (plain ops, GridSample with float32 grids) and onnxruntime agrees with PyTorch."""

from __future__ import annotations

import warnings

import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from mask2former.model.tiny import build_tiny_model  # noqa: E402


class _Outputs(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        out = self.model(images)
        return out["pred_logits"], out["pred_masks"]


@pytest.mark.slow  # ~10 s of CPU: the TorchScript-based exporter traces and optimises the whole graph
def test_tiny_model_exports_and_runs_in_onnxruntime(tmp_path) -> None:
    # One shifted block in the first stage is enough to cover every op kind; fewer blocks export faster.
    wrapper = _Outputs(build_tiny_model(overrides={"model.backbone.swin.depths": [2, 1, 1, 1]})).eval()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes baked in as constants
        torch.onnx.export(wrapper, (images,), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["pred_logits", "pred_masks"])
    wrapper.eval()  # export restores the wrapper's mode; keep eval for the reference
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.input)}
    grids = [n.input[1] for n in graph.node if n.op_type == "GridSample"]
    assert len(grids) == 3  # one per deformable-attention level
    assert all(types[g] == onnx.TensorProto.FLOAT for g in grids)
    assert not [n.op_type for n in graph.node if n.domain not in ("", "ai.onnx")]  # no custom ops
    logits, masks = ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})
    with torch.no_grad():
        ref_logits, ref_masks = wrapper(images)
    torch.testing.assert_close(torch.from_numpy(logits), ref_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.from_numpy(masks), ref_masks, atol=1e-4, rtol=0)
