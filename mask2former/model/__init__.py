"""Mask2Former network, loss and post-processing.

Build everything from an `ExperimentConfig` with `build_model`, `build_criterion` and
`build_postprocessor`; `model_constructor_args(cfg)` gives the resolved arguments to log.
`mask2former.model.tiny` holds a tiny model for tests.
"""

from mask2former.model.build import build_criterion, build_model, build_postprocessor, model_constructor_args
from mask2former.model.criterion import SetCriterion
from mask2former.model.errors import PretrainedWeightsError
from mask2former.model.mask2former import Mask2FormerModel
from mask2former.model.matcher import HungarianMatcher
from mask2former.model.postprocessing import (
    InstancePrediction,
    PanopticPrediction,
    Postprocessor,
    instance_inference,
    panoptic_inference,
    resize_mask_logits,
    semantic_inference,
)

__all__ = [
    "HungarianMatcher", "InstancePrediction", "Mask2FormerModel", "PanopticPrediction", "Postprocessor",
    "PretrainedWeightsError", "SetCriterion", "build_criterion", "build_model", "build_postprocessor",
    "instance_inference", "model_constructor_args", "panoptic_inference", "resize_mask_logits",
    "semantic_inference",
]
