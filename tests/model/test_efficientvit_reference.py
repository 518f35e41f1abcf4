"""Our EfficientViT equals the original release (mit-han-lab/efficientvit) on identical weights.

Every run: each model's res2..res5 on two inputs (attention in its linear and its quadratic form)
equal the outputs the release produced for the same seeded weights and inputs
(`efficientvit_release_outputs.json`, see `efficientvit_reference.py`). Where a checkout of the
release source is given (HPO_EFFICIENTVIT_REFERENCE=path), the release runs live as well: every
output element is compared, and the release's own state dicts (ImageNet models with their heads) must be
exactly the layout that test_efficientvit.py's loader tests write, and load into ours.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from mask2former.model.backbone.efficientvit import EFFICIENTVIT_PRESETS, EfficientViT
from mask2former.model.backbone.efficientvit_checkpoint import adapt_efficientvit_state_dict
from tests.model.efficientvit_reference import (
    RECORD,
    SIZES,
    deterministic_input,
    deterministic_state,
    load_release,
    our_features,
    release_features,
    summarise,
)
from tests.model.test_efficientvit import release_layout

NAMES = sorted(EFFICIENTVIT_PRESETS)


@pytest.fixture(scope="module")
def recorded() -> dict:
    report = json.loads(RECORD.read_text())
    assert [tuple(size) for size in report["sizes"]] == list(SIZES)
    assert set(report["outputs"]) == {f"{name}@{h}x{w}" for name in NAMES for h, w in SIZES}
    return report["outputs"]


def _assert_matches_record(features: dict[str, torch.Tensor], expected: dict[str, dict]) -> None:
    assert sorted(features) == sorted(expected)
    for key, feature in features.items():
        got, want = summarise(feature), expected[key]
        assert got["shape"] == want["shape"], key
        assert want["std"] > 1e-2, f"{key}: the recorded map is degenerate"
        scale = want["abs_mean"]
        for stat in ("mean", "std", "abs_mean"):
            assert got[stat] == pytest.approx(want[stat], rel=1e-4, abs=1e-5 * scale), (key, stat)
        torch.testing.assert_close(torch.tensor(got["samples"], dtype=torch.float64), torch.tensor(want["samples"], dtype=torch.float64),
                                   rtol=1e-4, atol=1e-5 * scale, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("name", NAMES)
def test_outputs_equal_the_recorded_release_outputs(name: str, recorded: dict) -> None:
    for height, width in SIZES:
        _assert_matches_record(our_features(name, deterministic_input(height, width)), recorded[f"{name}@{height}x{width}"])


def test_the_record_check_sees_a_small_change(recorded: dict) -> None:
    """One LiteMLA projection weight off by 1%: the check fails (it is not blind to small differences)."""
    model = EfficientViT(name="b0").eval()
    state = deterministic_state(model)
    key = "stages.3.op_list.1.context_module.main.proj.conv.weight"
    state[key] = state[key] * 1.01
    model.load_state_dict(state)
    with torch.no_grad():
        unchanged = our_features("b0", deterministic_input(*SIZES[0]))
    _assert_matches_record(unchanged, recorded[f"b0@{SIZES[0][0]}x{SIZES[0][1]}"])
    height, width = SIZES[0]
    with torch.no_grad():
        features = model(deterministic_input(height, width))
    with pytest.raises(AssertionError, match="res5"):
        _assert_matches_record(features, recorded[f"b0@{height}x{width}"])


def test_deterministic_weights_fill_every_key_and_keep_activations_in_range() -> None:
    model = EfficientViT(name="l0")
    state = deterministic_state(model)
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in deterministic_state(EfficientViT(name="l0")).items())
    assert (state["stages.1.op_list.0.main.spatial_conv.norm.running_var"] > 0).all()


@pytest.fixture(scope="module")
def release():
    """The live release's constructors; its modules leave sys.modules again afterwards."""
    root = os.environ.get("HPO_EFFICIENTVIT_REFERENCE")
    if not root:
        pytest.skip("HPO_EFFICIENTVIT_REFERENCE (a checkout of the EfficientViT release source) is not set")
    try:
        yield load_release(Path(root))
    finally:
        for module in [m for m in sys.modules if m == "efficientvit" or m.startswith("efficientvit.")]:
            del sys.modules[module]


@pytest.mark.parametrize("name", NAMES)
def test_live_release_source_gives_the_same_maps(name: str, release) -> None:
    for height, width in SIZES:
        x = deterministic_input(height, width)
        ours, theirs = our_features(name, x), release_features(release.backbones[name], x)
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5 * theirs[key].abs().mean().item())


@pytest.mark.parametrize("name", NAMES)
def test_live_release_state_dict_is_the_layout_the_loader_tests_use(name: str, release) -> None:
    """The release's own ImageNet model (its backbone where it has none, l0) has exactly the key -> shape map
    that tests/model/test_efficientvit.py writes from the release's construction, and loads into ours."""
    with torch.device("meta"):
        model = (release.classifiers.get(name) or release.backbones[name])()
    state = model.state_dict()
    if name in release.classifiers:
        assert {k: tuple(v.shape) for k, v in state.items()} == release_layout(name)
    else:
        assert {k: tuple(v.shape) for k, v in state.items()} == release_layout(name, prefix="", with_head=False)
    with torch.device("meta"):
        ours = EfficientViT(name=name)
    adapted, _ = adapt_efficientvit_state_dict(state, ours)
    assert set(adapted) == set(ours.state_dict())
