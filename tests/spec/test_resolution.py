"""Data-source resolution from dataset roots and job-chain inference from a parent job's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.cli import main
from hpo.spec import resolve_data_sources, resolve_job_chain
from skillkit.errors import DataError, SpecError
from skillkit.skill_dir import SkillDir
from skillkit.spec import merge_spec
from skillkit.spec.yaml_io import parse_yaml

PANOPTIC_FILES = ("images.tar.gz", "annotations.json", "annotations_panoptic.json", "images_panoptic.tar.gz",
                  "label_map_panoptic.json")


def _panoptic_root(folder: Path, num_classes: int = 3) -> Path:
    folder.mkdir(parents=True)
    for name in PANOPTIC_FILES:
        (folder / name).write_text("{}")
    (folder / "label_map_panoptic.json").write_text(json.dumps(
        [{"id": i + 1, "name": f"c{i}", "color": [1, 2, 3], "isthing": 1} for i in range(num_classes)]))
    return folder


def test_coco_panoptic_sources_follow_the_seed_table(tmp_path: Path, repo_root: Path) -> None:
    train, val = _panoptic_root(tmp_path / "train"), _panoptic_root(tmp_path / "val")
    skill = SkillDir(repo_root)
    spec = resolve_data_sources(merge_spec(None, "train", [], skill), skill, "train",
                                train_datasets=str(train), eval_dataset=str(val))
    data = spec["dataset"]
    assert data["train"]["type"] == data["val"]["type"] == "coco_panoptic"
    assert data["train"]["img_dir"] == str(train / "images.tar.gz")
    assert data["train"]["panoptic_json"] == str(train / "annotations_panoptic.json")
    assert data["train"]["panoptic_dir"] == str(train / "images_panoptic.tar.gz")
    assert data["train"]["instance_json"] == str(train / "annotations.json")
    assert data["val"]["img_dir"] == str(val / "images.tar.gz")
    assert data["test"]["img_dir"] == str(val / "images.tar.gz")
    assert data["label_map"] == str(train / "label_map_panoptic.json")


def test_other_formats_use_label_map_json(tmp_path: Path, repo_root: Path) -> None:
    root = tmp_path / "coco"
    root.mkdir()
    for name in ("images.tar.gz", "annotations.json", "label_map.json"):
        (root / name).write_text("{}")
    skill = SkillDir(repo_root)
    spec = resolve_data_sources(merge_spec(None, "train", [], skill), skill, "train", train_datasets=str(root))
    assert spec["dataset"]["train"]["type"] == "coco"
    assert spec["dataset"]["label_map"] == str(root / "label_map.json")
    assert spec["dataset"]["train"]["panoptic_json"] == ""


def test_quantize_calibration_images(tmp_path: Path, repo_root: Path) -> None:
    train = _panoptic_root(tmp_path / "train")
    skill = SkillDir(repo_root)
    spec = resolve_data_sources(merge_spec(None, "quantize", [], skill), skill, "quantize", train_datasets=str(train))
    assert spec["dataset"]["quant_calibration_dataset"]["images_dir"] == str(train / "images.tar.gz")


def test_extracted_folder_accepted_instead_of_archive(tmp_path: Path, repo_root: Path) -> None:
    train = _panoptic_root(tmp_path / "train")
    (train / "images.tar.gz").unlink()
    (train / "images").mkdir()
    skill = SkillDir(repo_root)
    spec = resolve_data_sources(merge_spec(None, "train", [], skill), skill, "train", train_datasets=str(train))
    assert spec["dataset"]["train"]["img_dir"] == str(train / "images")


def test_missing_file_names_root_and_file(tmp_path: Path, repo_root: Path) -> None:
    train = _panoptic_root(tmp_path / "train")
    (train / "images_panoptic.tar.gz").unlink()
    skill = SkillDir(repo_root)
    with pytest.raises(DataError, match=r"has no 'images_panoptic.tar.gz', needed for 'dataset.train.panoptic_dir'"):
        resolve_data_sources(merge_spec(None, "train", [], skill), skill, "train", train_datasets=str(train))


def test_resolve_cli_prints_a_valid_spec(tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, val = _panoptic_root(tmp_path / "train"), _panoptic_root(tmp_path / "val")
    code = main(["spec", "resolve", "--skill-dir", str(repo_root), "--action", "train", "--train-dataset", str(train),
                 "--eval-dataset", str(val), "model.sem_seg_head.num_classes=4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    spec = parse_yaml(out, source="stdout")
    assert spec["dataset"]["train"]["panoptic_json"].endswith("annotations_panoptic.json")


def test_resolve_cli_catches_class_count(tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _panoptic_root(tmp_path / "train", num_classes=3)
    code = main(["spec", "resolve", "--skill-dir", str(repo_root), "--train-dataset", str(train),
                 "dataset.contiguous_id=true"])
    assert code == 3
    assert "has 3 categories: set num_classes=3" in capsys.readouterr().err


def _parent(folder: Path, checkpoints: list[tuple[int, int]], metrics: dict[int, float] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for epoch, step in checkpoints:
        (folder / f"model_epoch_{epoch:03d}_step_{step:05d}.pth").write_bytes(b"x")
    lines = [{"status": "STARTED"}]  # TAO writes no epoch on STARTED (an old run of ours wrote one)
    for epoch, value in (metrics or {}).items():
        step = next(s for e, s in checkpoints if e == epoch)
        lines.append({"status": "RUNNING", "epoch": epoch, "step": step, "kpi": {"mIoU": value, "val_loss": 1.0}})
    (folder / "status.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder


def test_chain_picks_the_best_epoch_not_the_last(tmp_path: Path, repo_root: Path) -> None:
    parent = _parent(tmp_path / "train", [(1, 10), (2, 20), (3, 30)], {1: 0.2, 2: 0.5, 3: 0.4})
    skill = SkillDir(repo_root)
    spec = resolve_job_chain(merge_spec(None, "evaluate", [], skill), skill, "evaluate", parent_dir=parent,
                             output_dir=tmp_path / "eval")
    assert spec["evaluate"]["checkpoint"] == str(parent / "model_epoch_002_step_00020.pth")
    assert spec["results_dir"] == str(tmp_path / "eval")


def test_chain_latest_and_exact_choices(tmp_path: Path, repo_root: Path) -> None:
    parent = _parent(tmp_path / "train", [(1, 10), (2, 20)], {1: 0.9, 2: 0.1})
    skill = SkillDir(repo_root)
    latest = resolve_job_chain(merge_spec(None, "export", [], skill), skill, "export", parent_dir=parent,
                               output_dir=tmp_path / "export", checkpoint="latest")
    assert latest["export"]["checkpoint"].endswith("model_epoch_002_step_00020.pth")
    assert latest["export"]["onnx_file"] == str(tmp_path / "export" / "mask2former.onnx")
    exact = resolve_job_chain(merge_spec(None, "export", [], skill), skill, "export", parent_dir=parent,
                              checkpoint="model_epoch_001_step_00010.pth")
    assert exact["export"]["checkpoint"].endswith("model_epoch_001_step_00010.pth")
    by_epoch = resolve_job_chain(merge_spec(None, "export", [], skill), skill, "export", parent_dir=parent,
                                 checkpoint="epoch=2")
    assert by_epoch["export"]["checkpoint"].endswith("model_epoch_002_step_00020.pth")


@pytest.mark.parametrize("checkpoints, metrics, choice, message", [
    ([], None, None, "holds no checkpoint"),
    ([(1, 10)], None, None, "records no 'mIoU' validation result"),
    ([(1, 10), (1, 15)], None, "epoch=1", "is ambiguous"),
    ([(1, 10)], None, "epoch=4", "no checkpoint of epoch 4"),
    ([(1, 10)], None, "model_epoch_009_step_00001.pth", "is not in"),
])
def test_chain_errors(checkpoints, metrics, choice, message, tmp_path: Path, repo_root: Path) -> None:
    parent = _parent(tmp_path / "train", checkpoints, metrics)
    skill = SkillDir(repo_root)
    with pytest.raises(SpecError, match=message):
        resolve_job_chain(merge_spec(None, "evaluate", [], skill), skill, "evaluate", parent_dir=parent, checkpoint=choice)


def test_chain_epoch_n_is_the_checkpoint_that_closed_that_epoch(tmp_path: Path, repo_root: Path) -> None:
    """A SIGTERM (or a step interval) can leave a mid-epoch checkpoint named like the epoch's last one, as
    TAO names them; `epoch=N` means the one at the step status.json reached in epoch N."""
    parent = _parent(tmp_path / "train", [(0, 10), (1, 20), (1, 15)], {0: 0.2, 1: 0.5})  # line of epoch 1: step 20
    skill = SkillDir(repo_root)
    spec = resolve_job_chain(merge_spec(None, "export", [], skill), skill, "export", parent_dir=parent,
                             checkpoint="epoch=1")
    assert spec["export"]["checkpoint"] == str(parent / "model_epoch_001_step_00020.pth")
    best = resolve_job_chain(merge_spec(None, "export", [], skill), skill, "export", parent_dir=parent)
    assert best["export"]["checkpoint"] == str(parent / "model_epoch_001_step_00020.pth")


def test_chain_reads_a_job_written_before_tao_numbering(tmp_path: Path, repo_root: Path) -> None:
    """The compatibility reader: an old train job counted completed epochs in its status lines (its STARTED
    line carried an epoch) and in its checkpoint names. Its best validation (the 2nd epoch, TAO epoch 1)
    still resolves to the file it wrote, model_epoch_002_step_00020.pth."""
    parent = tmp_path / "old"
    parent.mkdir()
    for epoch in (1, 2, 3):
        (parent / f"model_epoch_{epoch:03d}_step_{10 * epoch:05d}.pth").write_bytes(b"x")
    lines = [{"status": "STARTED", "epoch": 0, "step": 0}] + [
        {"status": "RUNNING", "epoch": epoch, "step": 10 * epoch, "kpi": {"mIoU": value}}
        for epoch, value in ((1, 0.2), (2, 0.5), (3, 0.4))]
    (parent / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    skill = SkillDir(repo_root)
    best = resolve_job_chain(merge_spec(None, "export", [], skill), skill, "export", parent_dir=parent)
    assert best["export"]["checkpoint"] == str(parent / "model_epoch_002_step_00020.pth")


def test_chain_gen_trt_engine_and_deploy_evaluate(tmp_path: Path, repo_root: Path) -> None:
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "mask2former.onnx").write_bytes(b"onnx")
    skill = SkillDir(repo_root)
    spec = resolve_job_chain(merge_spec(None, "gen_trt_engine", [], skill), skill, "gen_trt_engine",
                             parent_dir=export_dir, output_dir=tmp_path / "trt")
    assert spec["gen_trt_engine"]["onnx_file"] == str(export_dir / "mask2former.onnx")
    assert spec["gen_trt_engine"]["trt_engine"] == str(tmp_path / "trt" / "mask2former.engine")
    deploy = resolve_job_chain(merge_spec(None, "evaluate", [], skill), skill, "evaluate", parent_dir=export_dir)
    assert deploy["evaluate"]["trt_engine"] == str(export_dir / "mask2former.onnx")


def test_chain_resume_from_own_folder(tmp_path: Path, repo_root: Path) -> None:
    own = _parent(tmp_path / "job", [(1, 10), (2, 20)])
    skill = SkillDir(repo_root)
    spec = resolve_job_chain(merge_spec(None, "train", [], skill), skill, "train", output_dir=own)
    assert spec["train"]["resume_training_checkpoint_path"] == str(own / "model_epoch_002_step_00020.pth")


def test_chain_pretrained_from_parent_when_not_resuming(tmp_path: Path, repo_root: Path) -> None:
    parent = _parent(tmp_path / "parent", [(3, 30)], {3: 0.5})
    skill = SkillDir(repo_root)
    spec = resolve_job_chain(merge_spec(None, "train", [], skill), skill, "train", parent_dir=parent,
                             output_dir=tmp_path / "new")
    assert spec["train"]["pretrained_model_path"] == str(parent / "model_epoch_003_step_00030.pth")


def test_ade_root_resolution_archive_and_extracted(tmp_path: Path, repo_root: Path) -> None:
    root = tmp_path / "ade"
    root.mkdir()
    for name in ("images.tar.gz", "annotations.jsonl", "label_map.json"):
        (root / name).write_text("{}")
    skill = SkillDir(repo_root)
    spec = resolve_data_sources(merge_spec(None, "train", [], skill), skill, "train", train_datasets=str(root))
    assert spec["dataset"]["train"]["type"] == "ade"
    assert spec["dataset"]["train"]["root_dir"] == str(root / "images.tar.gz")
    assert spec["dataset"]["train"]["annot_file"] == str(root / "annotations.jsonl")
    (root / "images.tar.gz").unlink()
    (root / "images").mkdir()  # extracted in place: ADE's members sit at the root's level
    spec = resolve_data_sources(merge_spec(None, "train", [], skill), skill, "train", train_datasets=str(root))
    assert spec["dataset"]["train"]["root_dir"] == str(root)


# -- the skill card's data_sources table, action by action ---------------------------------------------------
def _card(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_our_table_sources_every_key_of_taos_table_the_same_way(repo_root: Path, tao_reference: Path) -> None:
    ours = _card(repo_root / "references" / "skill_info.yaml")["data_sources"]
    theirs = _card(tao_reference / "references" / "skill_info.yaml")["data_sources"]
    for action, table in theirs.items():
        for dotted, entry in table.items():
            mine = ours[action][dotted]
            assert (mine["source"], mine["path"]) == (entry["source"], entry["path"]), (action, dotted)
            assert mine.get("runtime") == entry.get("runtime"), (action, dotted)


def _roots(tmp_path: Path) -> dict[str, Path]:
    return {source: _panoptic_root(tmp_path / source) for source in ("train_datasets", "eval_dataset",
                                                                      "inference_dataset")}


@pytest.mark.parametrize("action", ["train", "evaluate", "inference", "quantize"])
def test_every_entry_of_the_table_is_filled_from_its_own_source(tmp_path: Path, repo_root: Path, action: str) -> None:
    skill = SkillDir(repo_root)
    roots = _roots(tmp_path)
    spec = resolve_data_sources(merge_spec(None, action, [], skill), skill, action,
                                **{source: str(root) for source, root in roots.items()})
    checked = 0
    for dotted, entry in skill.data_sources(action).items():
        if "coco_panoptic" not in entry.get("x_dataset_types", ["coco_panoptic"]):
            continue  # an ADE-only entry (root_dir, annot_file)
        value = spec
        for part in dotted.split("."):
            value = value[part]
        assert value == str(roots[entry["source"]] / entry["path"]), (action, dotted)
        checked += 1
    assert checked >= 5


def test_inference_predicts_the_eval_dataset_when_no_inference_dataset_is_given(tmp_path: Path, repo_root: Path,
                                                                                 capsys) -> None:
    val = _panoptic_root(tmp_path / "val")
    assert main(["spec", "resolve", "--action", "inference", "--eval-dataset", str(val), "--allow-missing",
                 "--skill-dir", str(repo_root)]) == 0
    spec = parse_yaml(capsys.readouterr().out, source="stdout")
    assert spec["dataset"]["test"]["img_dir"] == str(val / "images.tar.gz")
    assert spec["dataset"]["val"]["panoptic_json"] == str(val / "annotations_panoptic.json")
    # Given both, the inference dataset is what inference predicts.
    other = _panoptic_root(tmp_path / "other")
    assert main(["spec", "resolve", "--action", "inference", "--eval-dataset", str(val), "--inference-dataset",
                 str(other), "--allow-missing", "--skill-dir", str(repo_root)]) == 0
    spec = parse_yaml(capsys.readouterr().out, source="stdout")
    assert spec["dataset"]["test"]["img_dir"] == str(other / "images.tar.gz")
    assert spec["dataset"]["val"]["img_dir"] == str(val / "images.tar.gz")
