"""The specs in best/: each loads and validates for its action and points at the promoted files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo.promotion import promote
from hpo.promotion.specs import HandoffPaths, build_handoff_specs
from skillkit.skill_dir import SkillDir
from skillkit.spec import get_dotted, load_spec
from tests.tracking.synthetic_sweep import REPO_ROOT, default_trials, train_template, write_sweep


def _flat_keys(data, prefix=""):
    keys = set()
    for key, value in data.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _flat_keys(value, prefix + key + ".")
    return keys


@pytest.fixture(scope="module")
def promoted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("handoff")
    sweep_dir = write_sweep(root, default_trials(), tracking={"enabled": False}, num_classes=7)
    promote(sweep_dir, evaluate=False)
    return sweep_dir / "best"


@pytest.mark.parametrize("name, action", [
    ("export_spec.yaml", "export"), ("evaluate_spec.yaml", "evaluate"),
    ("deploy_gen_trt_engine_spec.yaml", "gen_trt_engine"), ("deploy_evaluate_spec.yaml", "evaluate"),
    ("deploy_inference_spec.yaml", "inference"), ("train_spec.yaml", "train"),
])
def test_every_handoff_spec_loads_and_validates(promoted, name, action):
    spec = load_spec(promoted / name, action=action, skill_dir=REPO_ROOT)
    assert get_dotted(spec, "model.mode") == "panoptic"
    assert get_dotted(spec, "model.sem_seg_head.num_classes") == 7
    assert get_dotted(spec, "dataset.contiguous_id") is True


def test_export_spec_points_at_the_promoted_checkpoint_with_the_export_shape(promoted):
    spec = yaml.safe_load((promoted / "export_spec.yaml").read_text())
    checkpoint = promoted / "model_epoch_001_step_00020.pth"
    assert spec["export"]["checkpoint"] == str(checkpoint) and checkpoint.is_file()
    assert spec["export"]["onnx_file"] == str(promoted / "mask2former.onnx")
    # The template's test resize (shortest edge 640) with no annotation file to tell the image sizes: square.
    assert (spec["export"]["input_width"], spec["export"]["input_height"], spec["export"]["input_channel"]) == (640, 640, 3)
    assert spec["results_dir"] == spec["export"]["results_dir"] == str(promoted / "export")
    train = yaml.safe_load((promoted / "train_spec.yaml").read_text())
    assert spec["model"] == train["model"] and spec["dataset"] == train["dataset"]  # the winner's full structure
    assert train["train"]["optim"]["lr"] == 3e-4 and train["model"]["mask_former"]["dec_layers"] == 6


def test_evaluate_and_deploy_specs_chain_from_the_export_outputs(promoted):
    export = yaml.safe_load((promoted / "export_spec.yaml").read_text())["export"]
    evaluate = yaml.safe_load((promoted / "evaluate_spec.yaml").read_text())
    assert evaluate["evaluate"]["checkpoint"] == export["checkpoint"]
    assert evaluate["results_dir"] == str(promoted / "evaluate") and evaluate["evaluate"]["trt_engine"] == ""
    engine = yaml.safe_load((promoted / "deploy_gen_trt_engine_spec.yaml").read_text())
    assert engine["gen_trt_engine"]["onnx_file"] == export["onnx_file"]
    trt_engine = engine["gen_trt_engine"]["trt_engine"]
    assert trt_engine == str(promoted / "deploy" / "mask2former.engine")
    for name, action in (("deploy_evaluate_tensorrt_spec.yaml", "evaluate"),
                         ("deploy_inference_tensorrt_spec.yaml", "inference")):
        spec = yaml.safe_load((promoted / name).read_text())
        assert spec["evaluate"]["trt_engine"] == spec["inference"]["trt_engine"] == trt_engine
        assert spec["results_dir"] == str(promoted / "deploy" / action)
        assert spec["dataset"]["val"]["batch_size"] == 1 and spec["model"]["sem_seg_head"]["num_classes"] == 7


def test_without_skill_deploy_templates_the_specs_take_taos_deploy_shape(tao_reference, tmp_path):
    spec = train_template()
    spec["model"]["sem_seg_head"]["num_classes"] = 5
    paths = HandoffPaths(best_dir=tmp_path / "best", checkpoint=tmp_path / "best" / "model_epoch_000_step_00010.pth")
    specs = build_handoff_specs(spec, paths, templates={})
    references = tao_reference / "references"
    for produced, template in ((specs.deploy_gen_trt_engine, "spec_template_deploy_gen_trt_engine.yaml"),
                               (specs.deploy_evaluate, "spec_template_deploy_evaluate.yaml"),
                               (specs.deploy_inference, "spec_template_deploy_inference.yaml")):
        tao = yaml.safe_load((references / template).read_text())
        assert _flat_keys(tao) <= _flat_keys(produced), template
    assert specs.deploy_evaluate["model"]["sem_seg_head"]["num_classes"] == 5
    assert specs.export["export"]["input_width"] == 960 and specs.export["export"]["input_height"] == 544


def test_a_spec_missing_the_structural_keys_is_refused(tmp_path):
    from hpo.promotion import PromotionError

    spec = train_template()
    del spec["model"]["mode"]
    paths = HandoffPaths(best_dir=tmp_path, checkpoint=tmp_path / "x.pth")
    carried = SkillDir(REPO_ROOT).handoff_keys  # the skill names them (x_handoff_keys), not the engine
    with pytest.raises(PromotionError, match="'model.mode'"):
        build_handoff_specs(spec, paths, templates={}, carried=carried)
    only_evaluate = build_handoff_specs(spec, paths, templates={}, actions=("evaluate",))
    assert only_evaluate.export is None and set(only_evaluate.files()) == {"train_spec.yaml", "evaluate_spec.yaml"}


def _spec(**dataset) -> dict:
    return {"dataset": {"augmentation": {"test_min_size": 512, "test_max_size": 1024}, **dataset}}


def test_export_size_is_the_tuned_test_size_unless_the_sweep_names_a_deploy_size(tmp_path):
    import json

    from hpo.promotion.export_size import choose_export_size
    from skillkit.errors import SweepConfigError

    fallback = (960, 544)
    size = choose_export_size(_spec(val={"target_size": [320, 480]}), {}, fallback)
    assert (size.width, size.height, size.source, size.differs) == (480, 320, "tuned test size", False)
    # Shortest edge 512 of the most common 640x480 (w x h) image: 683x512.
    annotations = tmp_path / "val.json"
    annotations.write_text(json.dumps({"images": [{"id": 1, "height": 480, "width": 640},
                                                  {"id": 2, "height": 480, "width": 640},
                                                  {"id": 3, "height": 100, "width": 100}]}))
    size = choose_export_size(_spec(val={"panoptic_json": str(annotations)}), {}, fallback)
    assert (size.width, size.height) == (683, 512) and "640x480" in size.tuned_rule
    # The test split is scored when it names annotations.
    size = choose_export_size(_spec(val={"target_size": [64, 64]}, test={"instance_json": str(annotations)}), {}, fallback)
    assert (size.width, size.height) == (683, 512)
    size = choose_export_size(_spec(), {"deploy": {"input_size": "960x544"}}, fallback)
    assert (size.width, size.height, size.source, size.tuned, size.differs) == (960, 544, "deploy.input_size", (512, 512), True)
    assert size.to_dict()["differs_from_tuned"] is True
    assert choose_export_size(_spec(), {"deploy": {"input_size": [512, 512]}}, fallback).differs is False
    for bad in ("960*544", [960], [16, 16], ["a", "b"]):
        with pytest.raises(SweepConfigError, match=r"deploy\.input_size"):
            choose_export_size(_spec(), {"deploy": {"input_size": bad}}, fallback)
    assert choose_export_size({}, {}, fallback).source.startswith("template default")
