"""Where and how a training run executes: seed, cuDNN flags, precision, devices, nodes and strategy.

Everything here turns `train.*` settings into Lightning `Trainer` arguments in one tested place, so the
rules are written down once:

Precision (`train.precision`): fp32 -> "32-true", fp16 -> "16-mixed", bf16 -> "bf16-mixed".
  * fsdp forces fp16 (as TAO does): a notice is emitted when the spec asked for something else.
  * CPU has no fp16 autocast: fp16 on CPU runs as "bf16-mixed" (a notice says so); fp32 and bf16 run as asked.

Devices (`train.num_gpus`, `train.gpu_ids`, `train.num_nodes`):
  * no CUDA device visible -> one CPU process; GPU/node settings above 1 are reported in a notice.
    With `MASK2FORMER_DDP_ON_CPU=1` in the environment, a CPU machine runs `num_gpus` processes per node
    under DDP over gloo instead, one per requested GPU: the same multi-process code paths (rank-0-only
    status lines and checkpoints, synchronised stops, resume) run and are tested without a GPU.
  * `gpu_ids` must list `num_gpus` ids; the default `[0]` with `num_gpus > 1` means "the first num_gpus".
  * multi-node (Lightning-managed, one process launched per node; Lightning starts one process per GPU):
    the launcher sets `WORLD_SIZE` = number of NODES, `NODE_RANK`, `MASTER_ADDR`, `MASTER_PORT` and
    optionally `NUM_GPU_PER_NODE` (GPUs per node, overriding `num_gpus`). `WORLD_SIZE` overrides
    `train.num_nodes`. Because Lightning rewrites `WORLD_SIZE` (to the process count) for the per-GPU
    children it starts, the resolved layout is exported as `MASK2FORMER_NUM_NODES` /
    `MASK2FORMER_DEVICES`, which children (recognised by `LOCAL_RANK`) read instead.

Strategy (`train.distributed_strategy`): single process -> "auto"; several -> DDP (unused-parameter
detection on, except with activation checkpointing, which is incompatible with it) or FSDP.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mask2former.config import TrainConfig
from skillkit.errors import SpecError

PRECISION_MAP = {"fp32": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}
ENV_NUM_NODES = "MASK2FORMER_NUM_NODES"
ENV_DEVICES = "MASK2FORMER_DEVICES"
ENV_DDP_ON_CPU = "MASK2FORMER_DDP_ON_CPU"


@dataclass(frozen=True)
class Topology:
    """Resolved Lightning Trainer arguments for devices, nodes, strategy and precision."""

    accelerator: str
    devices: Any  # list[int] of GPU ids, or 1 for CPU
    num_nodes: int
    strategy: Any  # "auto" or a Lightning Strategy instance
    precision: str
    notices: tuple[str, ...] = ()

    @property
    def world_size(self) -> int:
        per_node = len(self.devices) if isinstance(self.devices, (list, tuple)) else int(self.devices)
        return per_node * self.num_nodes


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch (and dataloader workers); `seed < 0` draws a random seed. Returns it."""
    import lightning as L

    if seed is None or seed < 0:
        seed = random.SystemRandom().randrange(0, 2**31 - 1)
    L.seed_everything(seed, workers=True, verbose=False)
    return seed


def apply_cudnn_flags(*, benchmark: bool, deterministic: bool) -> None:
    """`train.cudnn.*`: cuDNN autotuning and deterministic kernels (no effect without CUDA)."""
    torch.backends.cudnn.benchmark = bool(benchmark)
    torch.backends.cudnn.deterministic = bool(deterministic)


def resolve_precision(precision: str, *, on_gpu: bool, strategy: str, world_size: int) -> tuple[str, list[str]]:
    """Lightning precision string for `train.precision`, plus notices for any forced change."""
    if precision not in PRECISION_MAP:
        raise SpecError(f"train.precision must be one of {', '.join(PRECISION_MAP)}, got {precision!r}.")
    notices: list[str] = []
    if strategy == "fsdp" and world_size > 1 and precision != "fp16":
        notices.append(f"train.distributed_strategy fsdp forces fp16 mixed precision (spec asked for {precision}).")
        precision = "fp16"
    if precision == "fp16" and not on_gpu:
        notices.append("train.precision fp16 has no CPU autocast: running bf16 mixed precision on CPU instead.")
        return "bf16-mixed", notices
    return PRECISION_MAP[precision], notices


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SpecError(f"environment variable {name} must be a positive integer, got {raw!r}.") from None
    if value < 1:
        raise SpecError(f"environment variable {name} must be a positive integer, got {raw!r}.")
    return value


def resolve_topology(
    train_cfg: TrainConfig,
    *,
    cuda_available: bool | None = None,
    cuda_device_count: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Topology:
    """Resolve devices/nodes/strategy/precision from `train_cfg` (`cfg.train`) and the environment.

    Pure except for reading `env` (defaults to `os.environ`) and CUDA availability, so tests can pass both.
    """
    env = os.environ if env is None else env
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_device_count is None:
        cuda_device_count = torch.cuda.device_count() if cuda_available else 0
    strategy_name = train_cfg.distributed_strategy
    if strategy_name not in ("ddp", "fsdp"):
        raise SpecError(f"train.distributed_strategy must be ddp or fsdp, got {strategy_name!r}.")

    if not cuda_available and env.get(ENV_DDP_ON_CPU, "").strip() not in ("", "0"):
        return _cpu_ddp_topology(train_cfg, env, strategy_name)
    if not cuda_available:
        notices = []
        if train_cfg.num_gpus > 1 or train_cfg.num_nodes > 1 or _int_env(env, "WORLD_SIZE") not in (None, 1):
            notices.append(
                f"no CUDA device is visible: training runs in one CPU process "
                f"(train.num_gpus={train_cfg.num_gpus}, train.num_nodes={train_cfg.num_nodes} apply on GPU machines)."
            )
        precision, precision_notices = resolve_precision(train_cfg.precision, on_gpu=False, strategy=strategy_name,
                                                         world_size=1)
        return Topology("cpu", 1, 1, "auto", precision, tuple(notices + precision_notices))

    is_child = "LOCAL_RANK" in env and ENV_NUM_NODES in env
    if is_child:
        num_nodes = int(env[ENV_NUM_NODES])
        devices = [int(x) for x in env[ENV_DEVICES].split(",")]
    else:
        num_nodes = _int_env(env, "WORLD_SIZE") or train_cfg.num_nodes
        per_node = _int_env(env, "NUM_GPU_PER_NODE") or train_cfg.num_gpus
        gpu_ids = [int(g) for g in train_cfg.gpu_ids]
        if len(gpu_ids) != per_node:
            if gpu_ids == [0]:
                gpu_ids = list(range(per_node))
            else:
                raise SpecError(
                    f"train.gpu_ids lists {len(gpu_ids)} GPU(s) {gpu_ids} but {per_node} GPU(s) per node are "
                    f"requested (train.num_gpus or NUM_GPU_PER_NODE); list exactly one id per GPU."
                )
        missing = [g for g in gpu_ids if g >= cuda_device_count]
        if missing:
            raise SpecError(
                f"train.gpu_ids {gpu_ids} names GPU(s) {missing} but only {cuda_device_count} CUDA device(s) are visible."
            )
        devices = gpu_ids

    world_size = len(devices) * num_nodes
    precision, notices = resolve_precision(train_cfg.precision, on_gpu=True, strategy=strategy_name,
                                           world_size=world_size)
    if world_size == 1:
        strategy: Any = "auto"
    elif strategy_name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        strategy = FSDPStrategy(activation_checkpointing_policy=None)
    else:
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(find_unused_parameters=not train_cfg.activation_checkpoint)
    return Topology("gpu", devices, num_nodes, strategy, precision, tuple(notices))


def _cpu_ddp_topology(train_cfg: TrainConfig, env: Mapping[str, str], strategy_name: str) -> Topology:
    """`MASK2FORMER_DDP_ON_CPU`: one CPU process per requested GPU, DDP over gloo (see the module docstring)."""
    if "LOCAL_RANK" in env and ENV_NUM_NODES in env:
        num_nodes = int(env[ENV_NUM_NODES])
        per_node = len(env[ENV_DEVICES].split(","))
    else:
        num_nodes = _int_env(env, "WORLD_SIZE") or train_cfg.num_nodes
        per_node = _int_env(env, "NUM_GPU_PER_NODE") or train_cfg.num_gpus
    precision, notices = resolve_precision(train_cfg.precision, on_gpu=False, strategy="ddp",
                                           world_size=per_node * num_nodes)
    if per_node * num_nodes == 1:
        return Topology("cpu", 1, 1, "auto", precision, tuple(notices))
    if strategy_name == "fsdp":
        notices.append("train.distributed_strategy fsdp needs CUDA: the CPU processes run DDP over gloo instead.")
    notices.append(f"no CUDA device is visible and {ENV_DDP_ON_CPU} is set: {per_node * num_nodes} CPU processes "
                   "run under DDP (gloo), one per requested GPU.")
    from lightning.pytorch.strategies import DDPStrategy

    strategy = DDPStrategy(process_group_backend="gloo", find_unused_parameters=not train_cfg.activation_checkpoint)
    return Topology("cpu", per_node, num_nodes, strategy, precision, tuple(notices))


def export_topology_for_children(topology: Topology) -> None:
    """Record the resolved layout so the per-device child processes Lightning launches rebuild the same
    Trainer (Lightning rewrites WORLD_SIZE for them)."""
    if "LOCAL_RANK" in os.environ or topology.world_size == 1:
        return
    os.environ[ENV_NUM_NODES] = str(topology.num_nodes)
    devices = topology.devices if isinstance(topology.devices, (list, tuple)) else range(int(topology.devices))
    os.environ[ENV_DEVICES] = ",".join(str(d) for d in devices)
