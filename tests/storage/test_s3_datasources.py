"""Dataset roots on S3 behave like local folders: the format is detected by listing the prefix, needed files
are checked against that listing, and a failed detection says which formats were looked for and how to name
one. Against a real moto server; the slow test runs a real tiny sweep on an s3:// COCO-panoptic dataset
with no `datasets.type`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hpo.spec import resolve_data_sources
from hpo.spec.datasources import detect_dataset_type, root_entries
from hpo.storage import Storage
from skillkit.errors import DataError, StorageError
from skillkit.skill_dir import SkillDir
from skillkit.spec import merge_spec

REPO = Path(__file__).resolve().parents[2]


def _put(s3_client, bucket: str, prefix: str, names: dict[str, bytes]) -> str:
    for name, body in names.items():
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)
    return f"s3://{bucket}/{prefix}"


def _resolve(train: str, val: str | None = None, dataset_type: str | None = None) -> dict:
    skill = SkillDir(REPO)
    spec = merge_spec(None, "train", [], skill)
    return resolve_data_sources(spec, skill, "train", train_datasets=train, eval_dataset=val, dataset_type=dataset_type)


def test_entries_list_one_level_like_a_folder(bucket: str, s3_client, tmp_path: Path) -> None:
    root = _put(s3_client, bucket, "d", {"a.json": b"{}", "images/1.png": b"x", "images/sub/2.png": b"y"})
    assert Storage().entries(root) == ["a.json", "images/"]
    assert Storage().entries(root + "/") == ["a.json", "images/"]
    assert Storage().entries(f"s3://{bucket}/nothing-here") == []
    (tmp_path / "images").mkdir()
    (tmp_path / "a.json").write_text("{}")
    assert Storage().entries(str(tmp_path)) == ["a.json", "images/"]  # the local backend answers alike


def test_coco_panoptic_prefix_is_detected_and_resolved(bucket: str, s3_client, dataset: dict[str, str]) -> None:
    assert detect_dataset_type(dataset["train"]) == "coco_panoptic"
    spec = _resolve(dataset["train"], dataset["val"])  # no dataset type given
    data = spec["dataset"]
    assert data["train"]["type"] == data["val"]["type"] == "coco_panoptic"
    assert data["train"]["panoptic_json"] == f"{dataset['train']}/annotations_panoptic.json"
    assert data["val"]["panoptic_dir"] == f"{dataset['val']}/images_panoptic.tar.gz"
    assert data["label_map"] == f"{dataset['train']}/label_map_panoptic.json"


def test_ade_prefix_with_extracted_folders(bucket: str, s3_client) -> None:
    layout = {"annotations.jsonl": b"", "label_map.json": b"[]", "images/0.jpg": b"x", "annotations/0.png": b"y"}
    train = _put(s3_client, bucket, "ade/train", layout)
    val = _put(s3_client, bucket, "ade/val", layout)
    spec = _resolve(train, val)
    assert spec["dataset"]["train"]["type"] == "ade"
    assert spec["dataset"]["train"]["annot_file"] == f"{train}/annotations.jsonl"
    assert spec["dataset"]["train"]["root_dir"] == train  # images/ + annotations/ at the root's level
    assert spec["dataset"]["label_map"] == f"{train}/label_map.json"


def test_coco_prefix_with_an_extracted_images_folder(bucket: str, s3_client) -> None:
    root = _put(s3_client, bucket, "coco", {"annotations.json": b"{}", "label_map.json": b"[]", "images/0.jpg": b"x"})
    spec = _resolve(root, root)
    assert spec["dataset"]["train"]["type"] == "coco"
    assert spec["dataset"]["train"]["img_dir"] == f"{root}/images"


def test_undetectable_prefix_names_the_formats_and_datasets_type_once(bucket: str, s3_client) -> None:
    root = _put(s3_client, bucket, "odd", {"labels.csv": b"", "pictures/0.jpg": b"x"})
    with pytest.raises(DataError) as raised:
        _resolve(root, root)
    message = str(raised.value)
    for text in ("annotations_panoptic.json (coco_panoptic)", "annotations.jsonl (ade)", "annotations.json (coco)",
                 "labels.csv, pictures/", "`datasets.type`", "`--dataset-type`", root):
        assert text in message, text
    assert message.count("datasets.type") == 1 and message.count("annotations_panoptic.json") == 1


def test_missing_file_of_a_detected_format_is_named_like_for_a_folder(bucket: str, s3_client) -> None:
    root = _put(s3_client, bucket, "pan", {"annotations_panoptic.json": b"{}", "images.tar.gz": b"x",
                                           "label_map_panoptic.json": b"[]"})
    with pytest.raises(DataError, match=r"has no 'images_panoptic.tar.gz', needed for 'dataset.train.panoptic_dir' "
                                        r"of a coco_panoptic dataset; the root holds: annotations_panoptic.json, "
                                        r"images.tar.gz, label_map_panoptic.json"):
        _resolve(root)


def test_a_given_type_wins_and_an_unknown_one_is_refused(bucket: str, s3_client, dataset: dict[str, str]) -> None:
    with pytest.raises(DataError, match=r"has no 'label_map.json'"):
        _resolve(dataset["train"], dataset_type="coco")  # given: no detection, coco's label map is looked for
    with pytest.raises(DataError, match=r"dataset type 'voc' .* use one of: coco_panoptic, ade, coco"):
        _resolve(dataset["train"], dataset_type="voc")


def test_listing_without_credentials_says_it_once(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError) as raised:
        root_entries(f"s3://{bucket}/data/train")
    assert str(raised.value).count("no AWS credentials were found") == 1


@pytest.mark.slow
def test_coco_panoptic_s3_sweep_without_a_dataset_type(bucket: str, s3_client, moto_env: str, tmp_path: Path) -> None:
    """A real tiny sweep (`mask2former train` trials) whose datasets are s3:// prefixes in COCO-panoptic
    layout, with no `datasets.type`: detected, staged, trained."""
    from hpo.driver.runner import run_sweep
    from mask2former.data.synth import write_synthetic_splits

    local = tmp_path / "synth"
    write_synthetic_splits(local, fmt="coco_panoptic", num_train=4, num_val=2, seed=0, size=64)
    for split in ("train", "val"):
        for path in (local / split).iterdir():
            s3_client.upload_file(str(path), bucket, f"panoptic/{split}/{path.name}")
    config = {
        "name": "s3pan", "skill_dir": str(REPO), "base_spec": str(REPO / "configs" / "quickstart_spec.yaml"),
        "datasets": {"train": f"s3://{bucket}/panoptic/train", "eval": f"s3://{bucket}/panoptic/val"},
        "workspace": str(tmp_path / "ws"), "backend": "optuna",
        "algorithm": {"name": "random", "max_trials": 1, "max_epochs": 1},
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1},
        "search_space": {"parameters": ["train.optim.lr"]},
        "spec_overrides": {"train.iters_per_epoch": 1},
        "trial": {"timeout_s": 600, "stop_grace_s": 60}, "tracking": {"enabled": False},
        "promotion": {"enabled": False}, "baseline": {"enabled": False}, "seed": 0,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    summary = run_sweep(path, use_default_observers=False)
    trial = summary["trials"][0]
    assert trial["state"] == "COMPLETED", (trial["failure_class"], trial["failure_reason"])
    assert summary["best"] is not None
    spec = yaml.safe_load((tmp_path / "ws" / "s3pan" / "trials" / trial["trial_id"] / "spec.yaml").read_text())
    assert spec["dataset"]["train"]["type"] == spec["dataset"]["val"]["type"] == "coco_panoptic"
    assert not spec["dataset"]["train"]["panoptic_json"].startswith("s3://")  # staged: the trainer reads local files
    staging = json.loads((tmp_path / "ws" / "s3pan" / "data_staging.json").read_text())
    assert staging
