"""Devices, nodes, strategy and precision resolution; gradient clipping kinds; failure classification."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from mask2former.config import TrainConfig
from mask2former.training.failures import classify, exit_code_for, is_out_of_memory
from mask2former.training.runtime import ENV_DEVICES, ENV_NUM_NODES, resolve_precision, resolve_topology
from mask2former.training.system import ClipSettings, Mask2FormerSystem, OptimSettings
from skillkit.errors import DataError, SpecError


def _train(**kw) -> TrainConfig:
    base = dict(num_gpus=1, gpu_ids=[0], num_nodes=1, precision="fp32", distributed_strategy="ddp",
                activation_checkpoint=False)
    base.update(kw)
    return dataclasses.replace(TrainConfig(), **base)


def test_cpu_runs_one_process_and_says_why_gpu_settings_do_not_apply():
    topo = resolve_topology(_train(num_gpus=4, gpu_ids=[0, 1, 2, 3], precision="fp16"), cuda_available=False, env={})
    assert (topo.accelerator, topo.devices, topo.num_nodes, topo.strategy) == ("cpu", 1, 1, "auto")
    assert topo.precision == "bf16-mixed"
    assert any("CPU" in n and "num_gpus=4" in n for n in topo.notices)
    assert any("fp16" in n and "bf16" in n for n in topo.notices)
    assert resolve_topology(_train(), cuda_available=False, env={}).notices == ()


def test_gpu_ids_default_expands_and_mismatch_is_an_error():
    topo = resolve_topology(_train(num_gpus=2), cuda_available=True, cuda_device_count=4, env={})
    assert topo.devices == [0, 1] and topo.world_size == 2
    assert type(topo.strategy).__name__ == "DDPStrategy"
    with pytest.raises(SpecError, match="train.gpu_ids lists 1 GPU"):
        resolve_topology(_train(num_gpus=2, gpu_ids=[3]), cuda_available=True, cuda_device_count=4, env={})
    with pytest.raises(SpecError, match="only 2 CUDA device"):
        resolve_topology(_train(num_gpus=1, gpu_ids=[5]), cuda_available=True, cuda_device_count=2, env={})
    single = resolve_topology(_train(precision="bf16"), cuda_available=True, cuda_device_count=1, env={})
    assert single.strategy == "auto" and single.precision == "bf16-mixed" and single.devices == [0]


def test_multi_node_environment_and_children():
    env = {"WORLD_SIZE": "3", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500",
           "NUM_GPU_PER_NODE": "2"}
    topo = resolve_topology(_train(), cuda_available=True, cuda_device_count=2, env=env)
    assert topo.num_nodes == 3 and topo.devices == [0, 1] and topo.world_size == 6
    # A per-GPU child Lightning started sees WORLD_SIZE = processes; it reads the exported layout instead.
    child = {"WORLD_SIZE": "6", "LOCAL_RANK": "1", ENV_NUM_NODES: "3", ENV_DEVICES: "0,1"}
    assert resolve_topology(_train(), cuda_available=True, cuda_device_count=2, env=child).num_nodes == 3
    with pytest.raises(SpecError, match="WORLD_SIZE"):
        resolve_topology(_train(), cuda_available=True, cuda_device_count=2, env={"WORLD_SIZE": "two"})


def test_fsdp_forces_fp16_and_precision_names():
    assert resolve_precision("fp32", on_gpu=True, strategy="fsdp", world_size=2)[0] == "16-mixed"
    assert resolve_precision("fp32", on_gpu=True, strategy="fsdp", world_size=1) == ("32-true", [])
    assert resolve_precision("fp16", on_gpu=True, strategy="ddp", world_size=1) == ("16-mixed", [])
    with pytest.raises(SpecError, match="train.precision"):
        resolve_precision("int8", on_gpu=True, strategy="ddp", world_size=1)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, 4)


def _clip(kind: str, max_norm: float, norm_type: float = 2.0) -> list[torch.Tensor]:
    model = _Toy()
    system = Mask2FormerSystem(model, nn.Identity(), spec={}, optim=OptimSettings(
        lr=1.0, weight_decay=0.0, backbone_multiplier=1.0, momentum=0.9, scheduler="MultiStep", milestones=(),
        gamma=0.1), clip=ClipSettings(max_norm=max_norm, kind=kind, norm_type=norm_type))
    from mask2former.training.optim import build_adamw

    optimizer = build_adamw(model, lr=1.0, weight_decay=0.0, backbone_multiplier=0.5, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    if kind == "full" and norm_type == 2.0:
        system.clip_gradients = lambda opt, gradient_clip_val, gradient_clip_algorithm: torch.nn.utils.clip_grad_norm_(
            [p for g in opt.param_groups for p in g["params"]], gradient_clip_val)
    if kind == "value":
        system.clip_gradients = lambda opt, gradient_clip_val, gradient_clip_algorithm: torch.nn.utils.clip_grad_value_(
            [p for g in opt.param_groups for p in g["params"]], gradient_clip_val)
    system.configure_gradient_clipping(optimizer)
    return [p.grad for p in model.parameters()]


def test_gradient_clipping_kinds():
    full = _clip("full", 1.0)
    assert torch.linalg.vector_norm(torch.cat([g.flatten() for g in full])).item() == pytest.approx(1.0, rel=1e-4)
    per_group = _clip("norm", 1.0)
    backbone = torch.cat([g.flatten() for g in per_group[:2]])
    assert torch.linalg.vector_norm(backbone).item() == pytest.approx(1.0, rel=1e-4)  # each group to 1
    l1 = _clip("full", 1.0, norm_type=1.0)
    assert torch.cat([g.flatten() for g in l1]).abs().sum().item() == pytest.approx(1.0, rel=1e-4)
    assert all(torch.all(g == 0.5) for g in _clip("value", 0.5))
    assert all(torch.all(g == 3.0) for g in _clip("full", 0.0))  # 0 disables clipping


def test_failure_classes_and_exit_codes():
    oom = RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
    assert is_out_of_memory(oom) and classify(oom) == "oom" and exit_code_for(oom) == 10
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = torch.cuda.OutOfMemoryError("boom")
    assert classify(wrapped) == "oom"
    assert classify(DataError("x")) == "data" and exit_code_for(DataError("x")) == 6
    assert classify(SpecError("x")) == "spec" and exit_code_for(SpecError("x")) == 3
    assert classify(ValueError("x")) == "internal" and exit_code_for(ValueError("x")) == 1
