"""The input size the promoted model is exported and deployed at: the size its test-time resize was tuned at.

A deployed graph takes one fixed H x W. Exporting at a template size (TAO's 960 x 544) whatever the sweep
tuned silently changes what the model sees: a model whose score was measured at 64 px and deployed at
960 x 544 scores something else. So the export size is, in order:

1. `deploy.input_size` of the sweep config (`[width, height]` or `"960x544"`), when the deployment needs a
   given size; promotion then also evaluates the exported graph at that size and reports both scores;
2. the tuned evaluation size of the winning spec, as the trainer's evaluation resizes (the evaluation split
   is `dataset.test` when it names annotations, else `dataset.val`):
   - its `target_size` ([h, w], or [s] for s x s) when set: every image is resized to exactly that;
   - else the shortest edge is resized to `dataset.augmentation.test_min_size` with the longest edge capped
     at `test_max_size`: the size this gives the split's most common image size, read from its COCO
     annotation file (`images[].width/height`); when no annotation file tells the sizes, the square
     test_min_size x test_min_size, said so in the reason.

The choice and its reason are stated in best.json (`export`), so a deployed score can be traced to its size.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skillkit.errors import SweepConfigError
from skillkit.spec import get_dotted
from skillkit.spec.dotted import section

_SIZE_TEXT = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class ExportSize:
    """The export input size and the size the sweep tuned, both (width, height)."""

    width: int
    height: int
    source: str                     # "deploy.input_size" or "tuned test size"
    tuned: tuple[int, int] | None   # None when the tuned size cannot be told
    tuned_rule: str                 # how the tuned size was derived, in words

    @property
    def differs(self) -> bool:
        """True when the graph sees another size than the one the promoted metric was measured at."""
        return self.tuned is not None and self.tuned != (self.width, self.height)

    def to_dict(self) -> dict[str, Any]:
        return {"input_width": self.width, "input_height": self.height, "source": self.source,
                "tuned_width": self.tuned[0] if self.tuned else None,
                "tuned_height": self.tuned[1] if self.tuned else None,
                "tuned_rule": self.tuned_rule, "differs_from_tuned": self.differs}


def parse_input_size(value: Any) -> tuple[int, int]:
    """`[width, height]` or `"WIDTHxHEIGHT"` -> (width, height); both at least 32."""
    if isinstance(value, str) and _SIZE_TEXT.match(value):
        width, height = (int(v) for v in _SIZE_TEXT.match(value).groups())  # type: ignore[union-attr]
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                      for v in value):
        width, height = int(value[0]), int(value[1])
    else:
        raise SweepConfigError(f"sweep config 'deploy.input_size' must be [width, height] or 'WIDTHxHEIGHT' "
                               f"(e.g. [960, 544] or '960x544'), got {value!r}.")
    if width < 32 or height < 32:
        raise SweepConfigError(f"sweep config 'deploy.input_size' = {width}x{height}: width and height must be >= 32.")
    return width, height


def shortest_edge_size(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """(h, w) after the evaluation resize: shorter side to `short_edge`, longer side capped at `max_size`
    (rounded as the trainer rounds)."""
    scale = short_edge / min(height, width)
    new_h, new_w = height * scale, width * scale
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return max(1, int(new_h + 0.5)), max(1, int(new_w + 0.5))


def evaluation_split(spec: Mapping[str, Any]) -> str:
    """The split the trainer's evaluate scores: test when it names annotations, else val."""
    test = get_dotted(spec, "dataset.test", None) or {}
    named = any(test.get(key) for key in ("panoptic_json", "instance_json", "annot_file")) if isinstance(test, Mapping) else False
    return "test" if named else "val"


def _common_image_size(split: Mapping[str, Any]) -> tuple[int, int] | None:
    """The most common (h, w) of the split's COCO annotation file (None when no local file tells it)."""
    for key in ("panoptic_json", "instance_json"):
        path = split.get(key)
        if not path or "://" in str(path) or not Path(str(path)).is_file():
            continue
        try:
            images = json.loads(Path(str(path)).read_text()).get("images") or []
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        sizes = collections.Counter((int(i["height"]), int(i["width"])) for i in images
                                    if isinstance(i, Mapping) and "height" in i and "width" in i)
        if sizes:
            return sizes.most_common(1)[0][0]
    return None


def tuned_size(spec: Mapping[str, Any]) -> tuple[tuple[int, int] | None, str]:
    """((width, height) the winning spec evaluates at, the rule in words)."""
    split_name = evaluation_split(spec)
    split = get_dotted(spec, f"dataset.{split_name}", None) or {}
    target = list(split.get("target_size") or []) if isinstance(split, Mapping) else []
    if target:
        height, width = int(target[0]), int(target[-1])
        return (width, height), f"dataset.{split_name}.target_size {target}: every image resized to {width}x{height}"
    short = get_dotted(spec, "dataset.augmentation.test_min_size", None)
    longest = get_dotted(spec, "dataset.augmentation.test_max_size", None)
    if short is None:
        return None, "the spec names no test size (dataset.augmentation.test_min_size)"
    short, longest = int(short), int(longest if longest is not None else short)
    common = _common_image_size(split) if isinstance(split, Mapping) else None
    rule = f"shortest edge {short}, longest edge at most {longest} (dataset.augmentation.test_min_size/test_max_size)"
    if common is None:
        return (short, short), f"{rule}; the dataset.{split_name} image sizes are unknown, so square"
    height, width = shortest_edge_size(common[0], common[1], short, longest)
    return (width, height), f"{rule} applied to the most common dataset.{split_name} image size {common[1]}x{common[0]}"


def choose_export_size(train_spec: Mapping[str, Any], sweep_config: Mapping[str, Any],
                       fallback: tuple[int, int]) -> ExportSize:
    """The export size for the winning `train_spec` (see the module docstring); `fallback` (width, height) is
    used only when neither the sweep config nor the spec tells a size."""
    tuned, rule = tuned_size(train_spec)
    deploy = section(sweep_config, "deploy")
    if deploy.get("input_size") is not None:
        width, height = parse_input_size(deploy["input_size"])
        return ExportSize(width, height, "deploy.input_size", tuned, rule)
    if tuned is not None:
        return ExportSize(tuned[0], tuned[1], "tuned test size", tuned, rule)
    return ExportSize(fallback[0], fallback[1], "template default (no tuned size known)", None, rule)
