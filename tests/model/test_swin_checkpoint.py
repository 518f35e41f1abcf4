"""Loading the original Swin release checkpoint format ({"model": state_dict}, classification layout)."""

from __future__ import annotations

import pytest
import torch

from mask2former.model.backbone.swin import SwinTransformer
from mask2former.model.backbone.swin_checkpoint import load_swin_checkpoint
from mask2former.model.backbone.swin_layers import relative_position_index, shifted_window_mask
from mask2former.model.build import build_model
from mask2former.model.errors import PretrainedWeightsError
from mask2former.model.tiny import tiny_config

ARCH = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), patch_size=4, pretrain_img_size=64)


def _swin(window_size: int = 4, seed: int = 0, **kw) -> SwinTransformer:
    torch.manual_seed(seed)
    return SwinTransformer(**{**ARCH, **kw}, window_size=window_size)


def release_state_dict(source: SwinTransformer, *, num_classes: int = 21841) -> dict[str, torch.Tensor]:
    """What the Swin release's classification model saves for `source`'s weights: a final `norm`
    instead of per-stage output norms, an ImageNet `head`, and the derived buffers
    (`relative_position_index` everywhere, `attn_mask` in shifted blocks), absolute position
    embedding (if any) as [1, L, C]."""
    state = {}
    last = source.num_stages - 1
    for key, value in source.state_dict().items():
        if key.startswith("norm"):
            stage, rest = key[4:].split(".", 1)
            if int(stage) == last:
                state[f"norm.{rest}"] = value.clone()
            continue
        if key == "absolute_pos_embed":
            value = value.flatten(2).transpose(1, 2)  # [1, C, H, W] -> [1, H*W, C]
        state[key] = value.clone()
    for i, stage in enumerate(source.layers):
        ws = stage.window_size
        for j, _ in enumerate(stage.blocks):
            state[f"layers.{i}.blocks.{j}.attn.relative_position_index"] = relative_position_index(ws)
            if j % 2:
                state[f"layers.{i}.blocks.{j}.attn_mask"] = shifted_window_mask(2 * ws, 2 * ws, ws, ws // 2, torch.device("cpu"))
    state["head.weight"] = torch.randn(num_classes, source.num_features[-1])
    state["head.bias"] = torch.zeros(num_classes)
    return state


def _save(tmp_path, state, name="swin_tiny_patch4_window7_224_22k.pth", wrap=True):
    path = tmp_path / name
    torch.save({"model": state} if wrap else state, path)
    return path


def test_release_checkpoint_loads_with_every_key_matched(tmp_path) -> None:
    source = _swin(seed=1)
    path = _save(tmp_path, release_state_dict(source))
    target = _swin(seed=2)
    report = load_swin_checkpoint(target, path)

    expected = {k for k in source.state_dict() if not k.startswith(("norm0", "norm1", "norm2"))}
    assert set(report.loaded) == expected
    assert set(report.initialised) == {f"norm{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert {"head.weight", "head.bias"} <= set(report.dropped)
    assert any(k.endswith("attn_mask") for k in report.dropped)
    assert any(k.endswith("relative_position_index") for k in report.dropped)
    for key in expected:
        torch.testing.assert_close(target.state_dict()[key], source.state_dict()[key], atol=0, rtol=0)
    # The release's final norm is our last stage's output norm.
    torch.testing.assert_close(target.norm3.weight, source.norm3.weight, atol=0, rtol=0)


@pytest.mark.parametrize("wrap", ["model", "state_dict", "bare", "backbone_prefix"])
def test_wrappers_and_prefixes(tmp_path, wrap: str) -> None:
    source = _swin(seed=1)
    state = release_state_dict(source)
    if wrap == "backbone_prefix":
        state = {f"backbone.{k}": v for k, v in state.items()}
    obj = {"model": state} if wrap == "model" else {"state_dict": state} if wrap == "state_dict" else state
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    target = _swin(seed=2)
    load_swin_checkpoint(target, path)
    torch.testing.assert_close(target.patch_embed.proj.weight, source.patch_embed.proj.weight, atol=0, rtol=0)


def test_other_window_size_resizes_bias_tables(tmp_path) -> None:
    source = _swin(window_size=7, seed=1)  # e.g. a window-7 checkpoint into a window-4 model
    path = _save(tmp_path, release_state_dict(source))
    target = _swin(window_size=4, seed=2)
    report = load_swin_checkpoint(target, path)
    tables = [k for k in report.resized if k.endswith("relative_position_bias_table")]
    assert len(tables) == 8
    assert target.layers[0].blocks[0].attn.relative_position_bias_table.shape == (49, 1)
    # A smooth table stays smooth: a constant table stays (almost) that constant.
    with torch.no_grad():
        source.layers[0].blocks[0].attn.relative_position_bias_table.fill_(0.25)
    load_swin_checkpoint(target, _save(tmp_path, release_state_dict(source), name="c.pth"))
    torch.testing.assert_close(
        target.layers[0].blocks[0].attn.relative_position_bias_table, torch.full((49, 1), 0.25), atol=1e-5, rtol=0
    )


def test_absolute_position_embedding_classification_layout_and_resize(tmp_path) -> None:
    source = _swin(seed=1, ape=True, pretrain_img_size=64)  # grid 16, saved as [1, 256, 32]
    path = _save(tmp_path, release_state_dict(source))
    same = _swin(seed=2, ape=True, pretrain_img_size=64)
    load_swin_checkpoint(same, path)
    torch.testing.assert_close(same.absolute_pos_embed, source.absolute_pos_embed, atol=0, rtol=0)
    bigger = _swin(seed=2, ape=True, pretrain_img_size=96)  # grid 24: resized
    report = load_swin_checkpoint(bigger, path)
    assert "absolute_pos_embed" in report.resized and bigger.absolute_pos_embed.shape == (1, 32, 24, 24)


def test_wrong_architecture_lists_mismatched_keys(tmp_path) -> None:
    path = _save(tmp_path, release_state_dict(_swin(seed=1)))
    wider = SwinTransformer(**{**ARCH, "embed_dim": 64}, window_size=4)
    with pytest.raises(PretrainedWeightsError, match=r"keys with another shape: patch_embed\.proj\.weight "
                                                     r"\(checkpoint \[32, 3, 4, 4\] vs model \[64, 3, 4, 4\]\)"):
        load_swin_checkpoint(wider, path)
    deeper = SwinTransformer(**{**ARCH, "depths": (2, 2, 4, 2)}, window_size=4)
    with pytest.raises(PretrainedWeightsError, match=r"model keys the checkpoint lacks: layers\.2\.blocks\.2\.norm1\.weight"):
        load_swin_checkpoint(deeper, path)
    shallower = SwinTransformer(**{**ARCH, "depths": (2, 2, 1, 2)}, window_size=4)
    with pytest.raises(PretrainedWeightsError, match=r"checkpoint keys the model does not have: layers\.2\.blocks\.1\.norm1\.weight"):
        load_swin_checkpoint(shallower, path)


def test_unknown_and_missing_keys_are_reported(tmp_path) -> None:
    state = release_state_dict(_swin(seed=1))
    state["layers.0.blocks.0.extra.weight"] = torch.zeros(3)
    del state["layers.1.downsample.reduction.weight"]
    with pytest.raises(PretrainedWeightsError) as info:
        load_swin_checkpoint(_swin(), _save(tmp_path, state))
    message = str(info.value)
    assert "layers.0.blocks.0.extra.weight" in message and "layers.1.downsample.reduction.weight" in message
    assert "model.backbone.pretrained_weights" in message


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        load_swin_checkpoint(_swin(), tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="cannot read"):
        load_swin_checkpoint(_swin(), tmp_path / "junk.pth")
    torch.save({"model": {"a": 1}}, tmp_path / "notensors.pth")
    with pytest.raises(PretrainedWeightsError, match="no state dict of tensors"):
        load_swin_checkpoint(_swin(), tmp_path / "notensors.pth")


def test_build_model_loads_pretrained_weights(tmp_path) -> None:
    cfg = tiny_config()
    torch.manual_seed(5)
    source = build_model(cfg).backbone
    path = _save(tmp_path, release_state_dict(source))
    cfg.model.backbone.pretrained_weights = str(path)
    model = build_model(cfg)
    torch.testing.assert_close(model.backbone.layers[2].blocks[1].mlp.fc2.weight, source.layers[2].blocks[1].mlp.fc2.weight)
    skipped = build_model(cfg, load_pretrained=False)
    assert not torch.equal(skipped.backbone.patch_embed.proj.weight, source.patch_embed.proj.weight)
