"""Swin pieces: window bookkeeping, the shifted-window mask, padding, drop path, checkpointing."""

from __future__ import annotations

import pytest
import torch

from mask2former.model.backbone.swin import SwinTransformer
from mask2former.model.backbone.swin_layers import (
    DropPath,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

ARCH = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.0)


def test_window_partition_roundtrip() -> None:
    x = torch.randn(2, 8, 12, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 4, 4, 3)
    torch.testing.assert_close(windows[1], x[0, 0:4, 4:8])  # second window of the first row
    torch.testing.assert_close(window_reverse(windows, 4, 8, 12), x)


def test_relative_position_index_covers_all_offsets() -> None:
    index = relative_position_index(3)
    assert index.shape == (9, 9) and index.min() == 0 and index.max() == 24
    assert index[0, 0] == index[4, 4] == 12  # zero offset in the middle of the 5x5 table


def test_shifted_window_mask_matches_region_definition() -> None:
    """Textbook construction: label the 3x3 regions with slices, compare token pairs per window."""
    size, ws, shift = 8, 4, 2
    labels = torch.zeros(size, size)
    region = 0
    for rows in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for cols in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            labels[rows, cols] = region
            region += 1
    windows = window_partition(labels[None, :, :, None], ws).flatten(1)
    expected = torch.where(windows[:, None, :] == windows[:, :, None], 0.0, -100.0)
    torch.testing.assert_close(shifted_window_mask(size, size, ws, shift, torch.device("cpu")), expected)


@pytest.mark.parametrize("size", [(64, 64), (50, 38), (17, 9)])
def test_any_input_size_gives_ceil_strided_maps(size) -> None:
    model = SwinTransformer(**ARCH).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    h, w = size
    for i, name in enumerate(("res2", "res3", "res4", "res5")):
        h, w = (-(-h // 4), -(-w // 4)) if i == 0 else ((h + 1) // 2, (w + 1) // 2)
        assert out[name].shape == (1, 16 * 2**i, h, w)
    assert model.output_channels == {"res2": 16, "res3": 32, "res4": 64, "res5": 128}
    assert model.output_strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


def test_stochastic_depth_grows_linearly_and_is_off_in_eval() -> None:
    model = SwinTransformer(**{**ARCH, "drop_path_rate": 0.7})
    rates = [b.drop_path.drop_prob for stage in model.layers for b in stage.blocks]
    assert rates == pytest.approx([0.1 * i for i in range(8)])
    drop = DropPath(0.5)
    x = torch.ones(1000, 4)
    drop.train()
    y = drop(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0} and 0.35 < (y[:, 0] == 0).float().mean() < 0.65
    drop.eval()
    assert torch.equal(drop(x), x)


def test_activation_checkpointing_gives_same_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    plain = SwinTransformer(**ARCH)
    torch.manual_seed(0)
    ckpt = SwinTransformer(**ARCH, use_checkpoint=True)
    x = torch.randn(2, 3, 32, 32)
    for model in (plain, ckpt):
        sum(o.sum() for o in model(x).values()).backward()
    torch.testing.assert_close(ckpt.patch_embed.proj.weight.grad, plain.patch_embed.proj.weight.grad)


def test_constructor_rejects_inconsistent_outputs() -> None:
    with pytest.raises(ValueError, match="out_features"):
        SwinTransformer(**ARCH, out_indices=(1, 2, 3), out_features=("res2",))
    with pytest.raises(ValueError, match="out_indices"):
        SwinTransformer(**ARCH, out_indices=(0, 5))
    with pytest.raises(ValueError, match="not divisible"):
        SwinTransformer(**{**ARCH, "num_heads": (3, 2, 2, 4)})
