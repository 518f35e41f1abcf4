"""Non-square and odd-sized inputs run through the whole model (wide images once crashed in Swin)."""

from __future__ import annotations

import pytest
import torch

from mask2former.model.tiny import build_tiny_model


@pytest.mark.parametrize("height, width", [(64, 96), (128, 192), (96, 64), (70, 130)])
def test_forward_on_non_square_inputs(height: int, width: int) -> None:
    model = build_tiny_model().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, height, width))
    assert out["pred_masks"].shape[-2:] == (-(-height // 4), -(-width // 4))
    assert torch.isfinite(out["pred_logits"]).all()
