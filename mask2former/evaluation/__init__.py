"""Segmentation metrics: mIoU / pixel accuracy (every mode), PQ / SQ / RQ (panoptic), mask AP (instance)."""

from mask2former.evaluation.instance import InstanceEvaluator, InstanceMetrics, encode_masks
from mask2former.evaluation.panoptic import PanopticEvaluator, PanopticMetrics
from mask2former.evaluation.semantic import SemanticEvaluator, SemanticMetrics

__all__ = [
    "InstanceEvaluator",
    "InstanceMetrics",
    "PanopticEvaluator",
    "PanopticMetrics",
    "SemanticEvaluator",
    "SemanticMetrics",
    "encode_masks",
]
