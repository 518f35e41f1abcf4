"""The assembled model: output contract, all three modes end to end, tiny-model speed, deformable attention."""

from __future__ import annotations

import time

import pytest
import torch

from mask2former.model.build import build_postprocessor
from mask2former.model.pixel_decoder.deformable_attention import MSDeformAttn
from mask2former.model.tiny import build_tiny_criterion, build_tiny_model, tiny_config


def _targets(batch: int, size: int, num_classes: int):
    g = torch.Generator().manual_seed(0)
    return [{"labels": torch.randint(0, num_classes, (2,), generator=g), "masks": torch.rand(2, size, size, generator=g) > 0.5}
            for _ in range(batch)]


def test_output_contract_train_and_eval() -> None:
    model = build_tiny_model(num_classes=5)
    images = torch.rand(2, 3, 64, 64)
    model.train()
    out = model(images)
    assert out["pred_logits"].shape == (2, 10, 6)
    assert out["pred_masks"].shape == (2, 10, 16, 16)
    assert len(out["aux_outputs"]) == 3  # exactly dec_layers
    assert all(a["pred_logits"].shape == (2, 10, 6) and a["pred_masks"].shape == (2, 10, 16, 16) for a in out["aux_outputs"])
    model.eval()
    with torch.no_grad():
        assert set(model(images)) == {"pred_logits", "pred_masks"}


def test_non_multiple_input_size() -> None:
    model = build_tiny_model().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 70, 45))
    assert out["pred_masks"].shape == (1, 10, 18, 12)


@pytest.mark.parametrize("mode", ["semantic", "panoptic", "instance"])
def test_train_step_and_inference_for_each_mode(mode: str) -> None:
    cfg_overrides = {"model.mode": mode}
    model = build_tiny_model(num_classes=4, overrides=cfg_overrides)
    criterion = build_tiny_criterion(num_classes=4, overrides=cfg_overrides)
    images = torch.rand(2, 3, 64, 64)
    model.train()
    losses = criterion(model(images), _targets(2, 64, 4))
    assert len(losses) == 3 * 4
    sum(losses.values()).backward()
    assert model.sem_seg_head.predictor.class_embed.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(images)
    post = build_postprocessor(tiny_config(4, cfg_overrides), thing_ids={0, 1})
    results = post(out, input_size=(64, 64), image_sizes=[(64, 60), (50, 64)])
    assert results[0]["sem_seg"].shape == (4, 64, 60) and results[1]["sem_seg"].shape == (4, 50, 64)
    if mode == "panoptic":
        assert results[0]["panoptic_seg"].id_map.shape == (64, 60)
    if mode == "instance":
        assert results[0]["instances"].masks.shape[1:] == (64, 60)
        assert len(results[0]["instances"].scores) == 10 * 4  # test_topk_per_image 100 > Q*K


def test_every_parameter_gets_a_gradient() -> None:
    model = build_tiny_model().train()
    criterion = build_tiny_criterion()
    sum(criterion(model(torch.rand(2, 3, 64, 64)), _targets(2, 64, 5)).values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_tiny_step_is_fast_on_cpu() -> None:
    model = build_tiny_model().train()
    criterion = build_tiny_criterion()
    images, targets = torch.rand(2, 3, 64, 64), _targets(2, 64, 5)
    sum(criterion(model(images), targets).values()).backward()  # warm-up
    start = time.process_time()
    sum(criterion(model(images), targets).values()).backward()
    assert time.process_time() - start < 2.0  # CPU time, robust to a busy machine; typically ~0.1 s


def test_deformable_attention_with_zero_offsets_reads_the_reference_pixel() -> None:
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=8, n_levels=1, n_heads=2, n_points=3)
    with torch.no_grad():
        attn.sampling_offsets.bias.zero_()  # every point sits on the reference point
    h, w = 4, 5
    value = torch.randn(1, h * w, 8)
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    ref = torch.stack([xs.flatten(), ys.flatten()], -1)[None, :, None, :]  # pixel centres
    out = attn(torch.randn(1, h * w, 8), ref, value, [(h, w)])
    expected = attn.output_proj(attn.value_proj(value))  # bilinear at pixel centres = the pixel itself
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_step_on_cpu(dtype: torch.dtype) -> None:
    model = build_tiny_model().train()
    criterion = build_tiny_criterion()
    with torch.autocast("cpu", dtype=dtype):
        losses = criterion(model(torch.rand(2, 3, 64, 64)), _targets(2, 64, 5))
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and total.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_train_step_on_gpu(dtype: torch.dtype) -> None:
    device = torch.device("cuda")
    model = build_tiny_model().train().to(device)
    criterion = build_tiny_criterion().to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in _targets(2, 64, 5)]
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        losses = criterion(model(torch.rand(2, 3, 64, 64, device=device)), targets)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    cpu_model = build_tiny_model().eval()
    images = torch.rand(1, 3, 64, 64)
    model.eval()
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # compare full-precision convs with the CPU
    try:
        with torch.no_grad():
            torch.testing.assert_close(model(images.to(device))["pred_masks"].cpu(), cpu_model(images)["pred_masks"],
                                       atol=1e-3, rtol=1e-3)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


@pytest.mark.parametrize("in_features,stride,fpn_levels", [
    (["res3", "res4", "res5"], 8, 0), (["res4", "res5"], 4, 2), (["res5"], 16, 1),
])
def test_pixel_decoder_levels_and_common_stride(in_features, stride, fpn_levels) -> None:
    model = build_tiny_model(overrides={
        "model.sem_seg_head.deformable_transformer_encoder_in_features": in_features,
        "model.sem_seg_head.common_stride": stride,
    }).train()
    decoder = model.sem_seg_head.pixel_decoder
    assert decoder.num_fpn_levels == fpn_levels and hasattr(decoder, f"adapter_{fpn_levels}") == (fpn_levels > 0)
    out = model(torch.rand(1, 3, 64, 64))
    assert out["pred_masks"].shape == (1, 10, 64 // stride, 64 // stride)
    assert model.sem_seg_head.predictor.num_feature_levels == len(in_features)
    sum(build_tiny_criterion()(out, _targets(1, 64, 5)).values()).backward()
