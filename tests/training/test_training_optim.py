"""AdamW parameter groups (backbone multiplier, no decay on norms/embeddings/position tables) and schedules."""

from __future__ import annotations

import math

import pytest
from torch import nn

from mask2former.model.tiny import build_tiny_model
from mask2former.training.model_setup import apply_freeze
from mask2former.training.optim import (
    build_adamw,
    build_lr_lambda,
    build_scheduler,
    multistep_factor,
    plan_param_groups,
    warmup_poly_factor,
)
from skillkit.errors import SpecError


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return build_tiny_model(num_classes=8)


def _groups_by_param(model, **kwargs):
    plans = plan_param_groups(model, lr=1e-3, weight_decay=0.05, backbone_multiplier=0.1, **kwargs)
    return plans, {name: plan for plan in plans for name in plan.param_names}


def test_backbone_gets_the_multiplier_and_every_trainable_parameter_one_group(model):
    plans, by_param = _groups_by_param(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(by_param) == sorted(names)
    assert sum(len(p.param_names) for p in plans) == len(names)  # no parameter twice
    for name, plan in by_param.items():
        expected = 1e-3 * 0.1 if name.startswith("backbone.") else 1e-3
        assert plan.lr == pytest.approx(expected), name


def test_no_weight_decay_on_norms_embeddings_and_position_tables(model):
    _, by_param = _groups_by_param(model)
    norm_params = {f"{m_name}.{p_name}" for m_name, m in model.named_modules()
                   if isinstance(m, (nn.LayerNorm, nn.GroupNorm)) for p_name, _ in m.named_parameters(recurse=False)}
    embedding_params = {f"{m_name}.weight" for m_name, m in model.named_modules() if isinstance(m, nn.Embedding)}
    tables = {n for n in by_param if n.endswith("relative_position_bias_table")}
    assert norm_params and embedding_params and tables
    for name in norm_params | embedding_params | tables:
        assert by_param[name].weight_decay == 0.0, name
    # Linear/conv weights and biases keep weight decay, as in the original recipe.
    linear = next(n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.bias is not None)
    assert by_param[f"{linear}.weight"].weight_decay == 0.05
    assert by_param[f"{linear}.bias"].weight_decay == 0.05


def test_frozen_parameters_are_left_out_and_momentum_is_beta1():
    model = build_tiny_model(num_classes=8)
    frozen = apply_freeze(model, ["backbone"])
    assert frozen and all(n.startswith("backbone.") for n in frozen)
    optimizer = build_adamw(model, lr=1e-3, weight_decay=0.05, backbone_multiplier=0.1, momentum=0.8)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert not any(id(params[n]) in in_optimizer for n in frozen)
    assert all(g["betas"] == (0.8, 0.999) for g in optimizer.param_groups)
    assert {g["name"] for g in optimizer.param_groups} == {"head_decay", "head_no_decay"}
    with pytest.raises(SpecError, match="momentum"):
        build_adamw(model, lr=1e-3, weight_decay=0.05, backbone_multiplier=0.1, momentum=1.0)


def test_freeze_rejects_unknown_prefix():
    with pytest.raises(SpecError, match="train.freeze entry 'decoder'.*backbone"):
        apply_freeze(build_tiny_model(num_classes=8), ["decoder"])


def test_multistep_fires_after_each_milestone_epoch():
    fn = build_lr_lambda("MultiStep", milestones=[2, 4], gamma=0.1, steps_per_epoch=3, total_steps=18)
    factors = [fn(step) for step in range(18)]
    assert factors[:6] == [1.0] * 6  # epochs 1-2
    assert factors[6:12] == pytest.approx([0.1] * 6)  # epochs 3-4
    assert factors[12:] == pytest.approx([0.01] * 6)
    assert multistep_factor(5, [5], 0.5) == 0.5 and multistep_factor(4, [5], 0.5) == 1.0


def test_warmup_poly_warms_up_linearly_then_decays_to_zero():
    total, warmup = 200, 10
    values = [warmup_poly_factor(s, total, warmup_steps=warmup) for s in range(total + 1)]
    assert values[0] == pytest.approx(0.001)
    assert all(b > a for a, b in zip(values[:warmup], values[1:warmup]))  # rising during warm-up
    assert values[warmup] == pytest.approx((1 - warmup / total) ** 0.9)
    assert all(b < a for a, b in zip(values[warmup:total], values[warmup + 1:total + 1]))  # then falling
    assert values[total] == 0.0
    fn = build_lr_lambda("Warmuppoly", milestones=[], gamma=0.1, steps_per_epoch=10, total_steps=1000)
    assert fn(0) == pytest.approx(0.001) and fn(20) == pytest.approx((1 - 20 / 1000) ** 0.9)
    assert fn(10) < fn(20)


def test_scheduler_scales_every_group_and_rejects_unknown_names():
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    optimizer = build_adamw(model, lr=1.0, weight_decay=0.1, backbone_multiplier=0.5, momentum=0.9)
    scheduler = build_scheduler(optimizer, "MultiStep", milestones=[1], gamma=0.5, steps_per_epoch=2, total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert lrs == [[1.0, 1.0], [1.0, 1.0], [0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(SpecError, match="lr_scheduler"):
        build_lr_lambda("Cosine", milestones=[], gamma=0.1, steps_per_epoch=1, total_steps=1)
    assert math.isclose(warmup_poly_factor(0, 10, warmup_steps=0), 1.0)
