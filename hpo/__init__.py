"""HPO engine for Mask2Former: talks to the trainer only through the skill dir and the trainer contract."""

__version__ = "0.1.0"
