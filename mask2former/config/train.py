"""`train` section: hardware, schedule, checkpoints and the optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from mask2former.config.fields import (
    INF,
    bool_field,
    enum_field,
    float_field,
    int_field,
    list_field,
    section,
    str_field,
)


@dataclass
class CudnnConfig:
    benchmark: bool = bool_field(False, title="cudnn benchmark", description="Let cuDNN pick the fastest kernels (non-deterministic).")
    deterministic: bool = bool_field(True, title="cudnn deterministic", description="Force deterministic cuDNN kernels.")


@dataclass
class OptimConfig:
    type: str = enum_field("AdamW", ("AdamW",), title="optimizer", description="Optimizer type.")
    monitor_name: str = enum_field("train_loss", ("val_loss", "train_loss"), title="monitored loss",
                                   description="Loss reported as the run's monitored value in logs and checkpoints' metadata.")
    lr: float = float_field(
        0.0002, title="learning rate", minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
        x_search_range=(1e-5, 1e-3), pbt="hot", description="Base learning rate of AdamW.",
    )
    backbone_multiplier: float = float_field(
        0.1, title="backbone lr multiplier", minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True, popular=True,
        x_search_range=(0.01, 1.0), pbt="hot", description="Backbone learning rate = lr * backbone_multiplier.",
    )
    momentum: float = float_field(
        0.9, title="momentum (AdamW beta1)", minimum=0.0, maximum=1.0, math_cond="> 0.0 < 1.0", automl_enabled=True, popular=True,
        x_search_range=(0.8, 0.99), pbt="hot", description="First-moment decay (beta1) of AdamW.",
    )
    weight_decay: float = float_field(
        0.05, title="weight decay", minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True, popular=True,
        x_search_range=(1e-4, 0.3), pbt="hot", description="Decoupled weight decay (not applied to norms, biases and embeddings).",
    )
    lr_scheduler: str = enum_field("MultiStep", ("MultiStep", "WarmupPoly", "Warmuppoly"), title="learning rate schedule",
                                   description="MultiStep: multiply lr by gamma at each milestone epoch. WarmupPoly (TAO spells it Warmuppoly; both accepted): linear warm-up then polynomial decay to zero.")
    milestones: list = list_field([88, 96], title="decay epochs", item_type="int", minimum=1, kind="list",
                                  description="Epochs after which MultiStep multiplies the lr by gamma.")
    gamma: float = float_field(0.1, title="decay factor", minimum=0.0, math_cond="> 0.0", description="MultiStep lr multiplier at each milestone.")


@dataclass
class TrainConfig:
    num_gpus: int = int_field(1, title="GPUs", minimum=1, popular=True, description="GPUs per node.")
    gpu_ids: list = list_field([0], title="GPU ids", item_type="int", minimum=0, popular=True, description="Indices of the GPUs to use.")
    num_nodes: int = int_field(1, title="nodes", minimum=1, popular=True, description="Machines in a multi-node run.")
    seed: int = int_field(1234, title="seed", minimum=-1, maximum=INF, description="Random seed; -1 draws one.")
    cudnn: CudnnConfig = section(CudnnConfig, title="cudnn", description="cuDNN flags.")
    num_epochs: int = int_field(10, title="epochs", minimum=1, maximum=INF, popular=True, description="Training epochs.")
    checkpoint_interval: int = int_field(1, title="checkpoint interval", minimum=1, popular=True, description="Save a checkpoint every this many units.")
    checkpoint_interval_unit: str = enum_field("epoch", ("epoch", "step"), title="checkpoint interval unit", description="Unit of checkpoint_interval.")
    validation_interval: int = int_field(1, title="validation interval", minimum=1, popular=True, description="Validate every this many epochs.")
    resume_training_checkpoint_path: str = str_field("", title="resume checkpoint", description="Checkpoint to continue training from (epoch, optimizer and scheduler restored).")
    results_dir: str = str_field("", title="results directory", description="Where training writes; defaults to the top-level results_dir.")
    freeze: list = list_field([], title="frozen modules", item_type="string", description="Module name prefixes whose parameters are not trained (e.g. backbone).")
    pretrained_model_path: str = str_field("", title="pretrained model", description="Checkpoint whose weights initialise the model (a class-count change re-initialises the class head).")
    clip_grad_norm: float = float_field(0.1, title="gradient clipping norm", minimum=0.0, math_cond="> 0.0", description="Maximum gradient norm.")
    clip_grad_type: str = enum_field("full", ("full", "value", "norm"), title="gradient clipping type", description="full: clip the norm over all parameters together; norm: the same per parameter group; value: clip each gradient value.")
    clip_grad_norm_type: float = float_field(2.0, title="clipping norm type", minimum=0.0, math_cond="> 0.0", description="p of the p-norm used for norm clipping.")
    is_dry_run: bool = bool_field(False, title="dry run", description="Run one batch of train and validation, then stop.")
    optim: OptimConfig = section(OptimConfig, title="optimizer", description="Optimizer and learning-rate schedule.")
    precision: str = enum_field("fp32", ("fp32", "fp16", "bf16"), title="precision", description="Numeric precision of training.")
    distributed_strategy: str = enum_field("ddp", ("ddp", "fsdp"), title="distributed strategy", description="Multi-GPU strategy; fsdp forces fp16 as TAO does.")
    activation_checkpoint: bool = bool_field(False, title="activation checkpointing", description="Recompute backbone activations in backward to save memory.")
    use_distributed_sampler: bool = bool_field(False, title="distributed sampler", description="Shard data across processes with a distributed sampler.")
    iters_per_epoch: int = int_field(None, title="iterations per epoch", minimum=1, description="Cap on training steps per epoch; empty uses the whole dataset.")
