"""Trainer-specific rules come from the skill dir as data, never from the engine's or the kit's code: the
class-count check reads its keys from `x_class_count`, promotion's carried keys from `x_handoff_keys`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.promotion.specs import HandoffPaths, build_handoff_specs
from hpo.trials.candidates import PromotionError
from skillkit.errors import SchemaError, SpecError
from skillkit.skill_dir import SkillDir
from skillkit.spec import ClassCountRule, check_class_count

REPO = Path(__file__).resolve().parents[2]


def test_the_repository_skill_declares_its_rules() -> None:
    skill = SkillDir(REPO)
    rule = ClassCountRule.from_info(skill.info)
    assert rule == ClassCountRule("model.sem_seg_head.num_classes", "dataset.label_map", "dataset.contiguous_id",
                                  ("train", "evaluate", "inference", "quantize"))
    assert "model.sem_seg_head.num_classes" in skill.handoff_keys


def test_the_class_count_rule_uses_the_keys_the_skill_names(tmp_path: Path) -> None:
    label_map = tmp_path / "labels.json"
    label_map.write_text(json.dumps([{"id": 1}, {"id": 4}, {"id": 7}]))
    rule = ClassCountRule("head.classes", "data.labels", "data.dense_ids", ("train",))
    check_class_count({"head": {"classes": 8}, "data": {"labels": str(label_map), "dense_ids": False}}, rule)
    with pytest.raises(SpecError, match=r"'head.classes' = 4 but data.dense_ids is true .* has 3 categories: set classes=3"):
        check_class_count({"head": {"classes": 4}, "data": {"labels": str(label_map), "dense_ids": True}}, rule)
    assert ClassCountRule.from_info({}) is None  # a skill without the rule gets no check


@pytest.mark.parametrize("entry", [
    "model.num_classes",
    {"num_classes": "a", "label_map": "b", "contiguous_ids": "c"},
    {"num_classes": "a", "label_map": "b", "contiguous_ids": "", "actions": ["train"]},
    {"num_classes": "a", "label_map": "b", "contiguous_ids": "c", "actions": "train"},
])
def test_a_malformed_class_count_entry_is_named(entry: object) -> None:
    with pytest.raises(SchemaError, match="skill_info.yaml 'x_class_count' must be a mapping with exactly"):
        ClassCountRule.from_info({"x_class_count": entry})


def test_promotion_carries_the_keys_the_skill_names(tmp_path: Path) -> None:
    paths = HandoffPaths(best_dir=tmp_path / "best", checkpoint=tmp_path / "best" / "model.pth")
    spec = {"model": {"mode": "semantic"}, "results_dir": str(tmp_path)}
    built = build_handoff_specs(spec, paths, templates={}, actions=("export",), carried=("model.mode",))
    assert built.export is not None and built.export["model"]["mode"] == "semantic"
    with pytest.raises(PromotionError, match="the winning trial's spec has no 'model.depth'"):
        build_handoff_specs(spec, paths, templates={}, actions=("export",), carried=("model.depth",))
