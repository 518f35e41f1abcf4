"""Mask2Former trainer: config dataclasses, data, model and the train/evaluate/inference/export actions."""

__version__ = "0.1.0"
