"""EfficientViT: the released models' key layout loads, published sizes and feature-map shapes match.

No reference implementation runs here (the release package imports triton and timm), so the
checks are: (1) a state dict laid out like the release — keys and shapes derived below from the
release's construction code, independently of our modules — loads with no missing or unexpected
keys, for every model name; (2) backbone + the release's ImageNet head has the published parameter
count; (3) the four maps have the widths TAO's wrapper declares and strides 4..32; (4) LiteMLA's
linear attention equals the release's formulation (v padded with a row of ones).
"""

from __future__ import annotations

import pytest
import torch

from mask2former.model.backbone.efficientvit import EFFICIENTVIT_PRESETS, EfficientViT
from mask2former.model.backbone.efficientvit_checkpoint import (
    adapt_efficientvit_state_dict,
    load_efficientvit_checkpoint,
)
from mask2former.model.backbone.efficientvit_layers import LiteMLA
from mask2former.model.errors import PretrainedWeightsError

# The release's ImageNet head widths (ClsHead width_list) per model; b0 and l0 have no ImageNet release.
CLS_HEAD = {"b0": (1024, 1280), "b1": (1536, 1600), "b2": (2304, 2560), "b3": (2304, 2560),
            "l0": (3072, 3200), "l1": (3072, 3200), "l2": (3072, 3200), "l3": (6144, 6400)}
# Published parameter counts (millions) of the ImageNet models: the EfficientViT README's tables
# (b1-b3, l1-l3) and the paper's ImageNet table (b0).
PUBLISHED_MILLIONS = {"b0": "3.4", "b1": "9.1", "b2": "24", "b3": "49", "l1": "53", "l2": "64", "l3": "246"}
# Stage widths of res2..res5 as TAO's Mask2Former wrapper declares them (arch table, entries 1..4).
TAO_WIDTHS = {"b0": [16, 32, 64, 128], "b1": [32, 64, 128, 256], "b2": [48, 96, 192, 384],
              "b3": [64, 128, 256, 512], "l0": [64, 128, 256, 512], "l1": [64, 128, 256, 512],
              "l2": [64, 128, 256, 512], "l3": [128, 256, 512, 1024]}


class _Layout:
    """Key -> shape of a release state dict, written from the release's module construction."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}

    def conv(self, p: str, cin: int, cout: int, k: int, *, groups: int = 1, bias: bool = False, norm: bool = True):
        self.shapes[f"{p}.conv.weight"] = (cout, cin // groups, k, k)
        if bias:
            self.shapes[f"{p}.conv.bias"] = (cout,)
        if norm:
            for name in ("weight", "bias", "running_mean", "running_var"):
                self.shapes[f"{p}.norm.{name}"] = (cout,)
            self.shapes[f"{p}.norm.num_batches_tracked"] = ()

    def mb(self, p: str, cin: int, cout: int, expand: float, fewer_norm: bool):
        mid = round(cin * expand)
        self.conv(f"{p}.inverted_conv", cin, mid, 1, bias=fewer_norm, norm=not fewer_norm)
        self.conv(f"{p}.depth_conv", mid, mid, 3, groups=mid, bias=fewer_norm, norm=not fewer_norm)
        self.conv(f"{p}.point_conv", mid, cout, 1)

    def fmb(self, p: str, cin: int, cout: int, expand: float):
        mid = round(cin * expand)
        self.conv(f"{p}.spatial_conv", cin, mid, 3)
        self.conv(f"{p}.point_conv", mid, cout, 1)

    def attention_block(self, p: str, width: int, dim: int, expand: float):
        heads = width // dim
        total = heads * dim
        self.conv(f"{p}.context_module.main.qkv", width, 3 * total, 1, norm=False)
        self.shapes[f"{p}.context_module.main.aggreg.0.0.weight"] = (3 * total, 1, 5, 5)
        self.shapes[f"{p}.context_module.main.aggreg.0.1.weight"] = (3 * total, dim, 1, 1)
        self.conv(f"{p}.context_module.main.proj", 2 * total, width, 1)
        self.mb(f"{p}.local_module.main", width, width, expand, True)


def release_layout(name: str, *, prefix: str = "backbone.", with_head: bool = True) -> dict[str, tuple[int, ...]]:
    """The key -> shape map of the release's `EfficientViTCls` for `name` (backbone under `prefix`)."""
    preset = EFFICIENTVIT_PRESETS[name]
    w, d, dim = preset.widths, preset.depths, preset.head_dim
    lay = _Layout()
    if preset.series == "b":
        lay.conv("input_stem.op_list.0", 3, w[0], 3)
        for j in range(1, d[0] + 1):
            lay.conv(f"input_stem.op_list.{j}.main.depth_conv", w[0], w[0], 3, groups=w[0])
            lay.conv(f"input_stem.op_list.{j}.main.point_conv", w[0], w[0], 1)
        for s in (1, 2):
            for j in range(d[s]):
                lay.mb(f"stages.{s - 1}.op_list.{j}.main", w[s - 1] if j == 0 else w[s], w[s], 4, False)
        for s in (3, 4):
            lay.mb(f"stages.{s - 1}.op_list.0.main", w[s - 1], w[s], 4, True)
            for j in range(1, d[s] + 1):
                lay.attention_block(f"stages.{s - 1}.op_list.{j}", w[s], dim, 4)
    else:
        lay.conv("stages.0.op_list.0", 3, w[0], 3)
        for j in range(1, d[0] + 1):
            lay.conv(f"stages.0.op_list.{j}.main.conv1", w[0], w[0], 3)
            lay.conv(f"stages.0.op_list.{j}.main.conv2", w[0], w[0], 3)
        for s in (1, 2, 3):
            for j in range(d[s] + 1):
                cin, expand = (w[s - 1], 16) if j == 0 else (w[s], 4)
                if s <= 2:
                    lay.fmb(f"stages.{s}.op_list.{j}.main", cin, w[s], expand)
                else:
                    lay.mb(f"stages.{s}.op_list.{j}.main", cin, w[s], expand, True)
        lay.mb("stages.4.op_list.0.main", w[3], w[4], 24, True)
        for j in range(1, d[4] + 1):
            lay.attention_block(f"stages.4.op_list.{j}", w[4], dim, 6)
    shapes = {prefix + k: v for k, v in lay.shapes.items()}
    if with_head:
        h0, h1 = CLS_HEAD[name]
        head = _Layout()
        head.conv("head.op_list.0", w[4], h0, 1)
        head.shapes.update({"head.op_list.2.linear.weight": (h1, h0), "head.op_list.2.norm.weight": (h1,),
                            "head.op_list.2.norm.bias": (h1,), "head.op_list.3.linear.weight": (1000, h1),
                            "head.op_list.3.linear.bias": (1000,)})
        shapes.update(head.shapes)
    return shapes


def _meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v, device="meta", dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
            for k, v in shapes.items()}


def _meta_model(name: str) -> EfficientViT:
    with torch.device("meta"):
        return EfficientViT(name=name)


@pytest.mark.parametrize("name", sorted(EFFICIENTVIT_PRESETS))
def test_release_layout_fits_with_no_missing_or_unexpected_keys(name: str) -> None:
    model = _meta_model(name)
    shapes = release_layout(name)
    adapted, report = adapt_efficientvit_state_dict(_meta_state(shapes), model)
    assert set(adapted) == set(model.state_dict())
    assert set(report.dropped) == {k for k in shapes if k.startswith("head.")}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_parameter_counts_equal_the_published_models(name: str) -> None:
    backbone = sum(p.numel() for p in _meta_model(name).parameters())
    head = sum(torch.Size(s).numel() for k, s in release_layout(name).items()
               if k.startswith("head.") and "running" not in k and "num_batches" not in k)
    published = PUBLISHED_MILLIONS[name]
    decimals = len(published.split(".")[1]) if "." in published else 0
    assert abs((backbone + head) / 1e6 - float(published)) <= 0.5 * 10 ** -decimals, (name, (backbone + head) / 1e6)


@pytest.mark.parametrize("name", sorted(EFFICIENTVIT_PRESETS))
def test_feature_maps_have_tao_widths_and_strides_4_to_32(name: str) -> None:
    model = _meta_model(name)
    assert list(model.output_channels.values()) == TAO_WIDTHS[name]
    outputs = model(torch.empty(2, 3, 544, 960, device="meta"))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        f"res{i + 2}": (2, TAO_WIDTHS[name][i], 544 // 2 ** (i + 2), 960 // 2 ** (i + 2)) for i in range(4)
    }


def test_b0_release_file_loads_every_weight(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = release_layout("b0")
    state = {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(v, generator=generator))
             for k, v in shapes.items()}
    path = tmp_path / "efficientvit_b0_r224.pt"
    torch.save({"state_dict": state}, path)
    model = EfficientViT(name="b0")
    report = load_efficientvit_checkpoint(model, path)
    own = model.state_dict()
    assert len(report.loaded) == len(own) and all(torch.equal(own[k], state["backbone." + k]) for k in own)
    # A bare backbone state dict (no wrapper, no prefix) loads too.
    torch.save({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}, path)
    load_efficientvit_checkpoint(EfficientViT(name="b0"), path)


def test_mismatched_checkpoints_say_what_does_not_fit() -> None:
    l0 = _meta_model("l0")
    with pytest.raises(PretrainedWeightsError, match=r"name 'l0'.*checkpoint keys the model does not have: "
                                                     r"backbone\.stages\.3\.op_list\.5|stages\.3\.op_list\.5"):
        adapt_efficientvit_state_dict(_meta_state(release_layout("l1")), l0, source="l1.pt")
    with pytest.raises(PretrainedWeightsError, match=r"'l2'.*keys with another shape: stages\.0\.op_list\.0\.conv\.weight "
                                                     r"\(checkpoint \[64, 3, 3, 3\] vs model \[32, 3, 3, 3\]\)"):
        adapt_efficientvit_state_dict(_meta_state(release_layout("l3")), _meta_model("l2"), source="l3.pt")
    shapes = release_layout("l0")
    del shapes["backbone.stages.4.op_list.1.context_module.main.proj.conv.weight"]
    with pytest.raises(PretrainedWeightsError, match=r"model keys the checkpoint lacks: "
                                                     r"stages\.4\.op_list\.1\.context_module\.main\.proj\.conv\.weight.*"
                                                     r"Set model\.backbone\.efficientvit\.name"):
        adapt_efficientvit_state_dict(_meta_state(shapes), l0, source="cut.pt")
    with pytest.raises(PretrainedWeightsError, match=r"'b0'.*checkpoint keys the model does not have"):
        adapt_efficientvit_state_dict(_meta_state(release_layout("l0")), _meta_model("b0"), source="l0.pt")


def test_unreadable_files_are_named(tmp_path) -> None:
    with pytest.raises(PretrainedWeightsError, match=r"does not exist\. Give the path of a EfficientViT checkpoint"):
        load_efficientvit_checkpoint(_meta_model("b0"), tmp_path / "absent.pt")
    path = tmp_path / "notes.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(PretrainedWeightsError, match=r"holds no state dict of tensors.*EfficientViT release"):
        load_efficientvit_checkpoint(_meta_model("b0"), path)


def test_linear_attention_matches_the_release_formulation() -> None:
    attention = LiteMLA(64, head_dim=16).eval()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.relu(torch.randn(2, 8, 16, 50, generator=g)) for _ in range(3))
    # release: v padded with a row of ones; out = (v_pad k^T) q; rows [:-1] divided by the last row
    padded = torch.nn.functional.pad(v, (0, 0, 0, 1), value=1.0)
    out = (padded @ k.transpose(-1, -2)) @ q
    expected = out[:, :, :-1] / (out[:, :, -1:] + attention.eps)
    torch.testing.assert_close(attention._linear(q, k, v), expected, rtol=1e-5, atol=1e-6)


def test_checkpointed_stages_give_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = EfficientViT(name="b0", out_features=("res3", "res5"))
    checkpointed = EfficientViT(name="b0", out_features=("res3", "res5"), use_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 64, 64)
    grads = []
    for model in (plain, checkpointed):
        out = model(x)
        assert sorted(out) == ["res3", "res5"]
        (out["res3"].mean() + out["res5"].mean()).backward()
        grads.append(model.stages[0].op_list[0].main.inverted_conv.conv.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_attention_runs_in_fp32_under_bf16_autocast() -> None:
    model = EfficientViT(name="b0", out_features=("res5",)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)["res5"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(x)["res5"]
    assert mixed.dtype == torch.bfloat16 and torch.isfinite(mixed).all()
    assert (mixed.float() - reference).abs().mean() < 0.1 * reference.abs().mean()


def test_pretrained_weights_reach_the_built_model(tmp_path) -> None:
    from mask2former.model.build import build_model
    from mask2former.model.tiny import tiny_config

    source = EfficientViT(name="b0")
    path = tmp_path / "b0.pt"
    torch.save({"state_dict": {"backbone." + k: v for k, v in source.state_dict().items()}}, path)
    overrides = {"model.backbone.type": "efficientvit", "model.backbone.efficientvit.name": "b0",
                 "model.backbone.pretrained_weights": str(path)}
    built = build_model(tiny_config(overrides=overrides)).backbone.state_dict()
    assert all(torch.equal(built[k], v) for k, v in source.state_dict().items())
    with pytest.raises(PretrainedWeightsError, match=r"name 'b1'"):
        build_model(tiny_config(overrides={**overrides, "model.backbone.efficientvit.name": "b1"}))


@pytest.mark.parametrize("side", [3, 8], ids=["quadratic", "linear"])
def test_lite_mla_exports_to_onnx_in_both_forms(side: int, tmp_path) -> None:
    """9 tokens <= head dim 16 takes the quadratic form, 64 the linear one; ORT must equal PyTorch."""
    import warnings

    import onnxruntime

    attention = LiteMLA(32, head_dim=16).eval()
    x = torch.rand(1, 32, side, side, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "lite_mla.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(attention, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), attention(x), rtol=1e-4, atol=1e-5)
