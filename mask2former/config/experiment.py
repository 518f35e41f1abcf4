"""The root of the experiment config: every section a TAO Mask2Former spec may carry."""

from __future__ import annotations

from dataclasses import dataclass

from mask2former.config.actions import (
    EvaluateConfig,
    ExportConfig,
    GenTrtEngineConfig,
    InferenceConfig,
    QuantizeConfig,
)
from mask2former.config.dataset import DatasetConfig
from mask2former.config.fields import bool_field, list_field, section, str_field
from mask2former.config.model import ModelConfig
from mask2former.config.train import TrainConfig


@dataclass
class WandBConfig:
    """Accepted so TAO specs load; this trainer does not log to W&B (the engine logs to MLflow)."""

    enable: bool = bool_field(True, title="enable W&B", description="Accepted for TAO compatibility; W&B logging is not performed (a notice is printed when true). Use the engine's MLflow tracking.")
    project: str = str_field("TAO Toolkit", title="project", description="W&B project (compatibility only).")
    entity: str = str_field("", title="entity", description="W&B entity (compatibility only).")
    group: str = str_field("", title="group", description="W&B group (compatibility only).")
    tags: list = list_field(["tao-toolkit"], title="tags", item_type="string", description="W&B tags (compatibility only).")
    reinit: bool = bool_field(False, title="reinit", description="Compatibility only.")
    sync_tensorboard: bool = bool_field(False, title="sync tensorboard", description="Compatibility only.")
    save_code: bool = bool_field(False, title="save code", description="Compatibility only.")
    name: str = str_field("TAO Toolkit Training", title="run name", description="Compatibility only.")
    run_id: str = str_field("", title="run id", description="Compatibility only.")


@dataclass
class ExperimentConfig:
    model_name: str = str_field("", title="model name", description="Name of the model family (informational).")
    encryption_key: str = str_field("", title="encryption key", secret=True, description="TAO model encryption key; never logged.")
    results_dir: str = str_field("", title="results directory", description="Root folder for everything an action writes.")
    wandb: WandBConfig = section(WandBConfig, title="Weights & Biases", description="Accepted for TAO compatibility.")
    model: ModelConfig = section(ModelConfig, title="model", description="Network architecture and losses.")
    dataset: DatasetConfig = section(DatasetConfig, title="dataset", description="Data sources and preprocessing.")
    train: TrainConfig = section(TrainConfig, title="train", description="Training settings.")
    evaluate: EvaluateConfig = section(EvaluateConfig, title="evaluate", description="Evaluation settings.")
    inference: InferenceConfig = section(InferenceConfig, title="inference", description="Inference settings.")
    export: ExportConfig = section(ExportConfig, title="export", description="ONNX export settings.")
    gen_trt_engine: GenTrtEngineConfig = section(GenTrtEngineConfig, title="gen_trt_engine", description="TensorRT engine settings.")
    quantize: QuantizeConfig = section(QuantizeConfig, title="quantize", description="Quantization settings.")
