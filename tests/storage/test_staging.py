"""Staging s3:// data sources of a resolved spec through the cache, against a real moto server."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path

import pytest

from hpo.spec import resolve_data_sources
from hpo.storage import Storage, data_paths_for, stage_spec_sources
from skillkit.errors import DataError, StorageError
from skillkit.skill_dir import SkillDir
from skillkit.spec import get_dotted, load_spec

PANOPTIC_KEYS = (
    "dataset.train.img_dir", "dataset.train.panoptic_dir", "dataset.train.panoptic_json",
    "dataset.label_map", "dataset.val.img_dir", "dataset.val.panoptic_dir", "dataset.test.img_dir",
)


def _spec(roots: dict[str, str]) -> dict:
    train, val = roots["train"], roots["val"]
    return {
        "dataset": {
            "label_map": f"{train}/label_map_panoptic.json",
            "train": {"img_dir": f"{train}/images.tar.gz", "panoptic_dir": f"{train}/images_panoptic.tar.gz",
                      "panoptic_json": f"{train}/annotations_panoptic.json", "batch_size": 2},
            "val": {"img_dir": f"{val}/images.tar.gz", "panoptic_dir": f"{val}/images_panoptic.tar.gz"},
            "test": {"img_dir": f"{val}/images.tar.gz"},
        },
        "train": {"num_epochs": 1},
    }


def test_stage_archives_and_files_then_cache_hit(dataset: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    spec = _spec(dataset)
    report = stage_spec_sources(spec, data_paths=PANOPTIC_KEYS, cache_dir=cache, workspace=tmp_path / "ws1")

    staged = report.spec
    assert spec["dataset"]["train"]["img_dir"].startswith("s3://")  # the input is not modified
    img_dir = Path(staged["dataset"]["train"]["img_dir"])
    assert img_dir.name == "images" and img_dir.is_relative_to(cache)  # the archive's single folder
    assert sorted(p.name for p in img_dir.iterdir()) == ["000.png", "001.png", "002.png"]
    assert (img_dir / "001.png").read_bytes() == b"train-img-1"
    assert sorted(p.name for p in Path(staged["dataset"]["val"]["panoptic_dir"]).iterdir()) == ["000.png", "001.png"]
    assert Path(staged["dataset"]["train"]["panoptic_json"]).read_bytes() == b'{"images": []}'
    assert Path(staged["dataset"]["label_map"]).name == "label_map_panoptic.json"
    assert staged["dataset"]["val"]["img_dir"] == staged["dataset"]["test"]["img_dir"]  # one source, staged once
    assert staged["dataset"]["train"]["batch_size"] == 2 and staged["train"] == {"num_epochs": 1}

    record = json.loads((tmp_path / "ws1" / "data_staging.json").read_text())
    by_uri = {entry["uri"]: entry for entry in record["sources"]}
    assert len(by_uri) == 6
    val_images = by_uri[f"{dataset['val']}/images.tar.gz"]
    assert val_images["spec_keys"] == ["dataset.val.img_dir", "dataset.test.img_dir"]
    assert val_images["kind"] == "archive" and val_images["files"] == 2 and val_images["bytes"] == 18
    assert val_images["staged_path"] == staged["dataset"]["val"]["img_dir"]
    assert val_images["source_bytes"] > 0 and val_images["version"] and val_images["seconds"] >= 0
    assert by_uri[f"{dataset['train']}/annotations_panoptic.json"]["kind"] == "file"
    assert not any(entry["cache_hit"] for entry in record["sources"])

    # A second sweep (new workspace, same cache) reuses every entry without fetching.
    marker = img_dir / "001.png"
    before = marker.stat().st_mtime_ns
    again = stage_spec_sources(spec, data_paths=PANOPTIC_KEYS, cache_dir=cache, workspace=tmp_path / "ws2")
    assert all(source.cache_hit for source in again.sources)
    assert again.spec == staged
    assert marker.stat().st_mtime_ns == before
    record2 = json.loads((tmp_path / "ws2" / "data_staging.json").read_text())
    assert all(entry["cache_hit"] for entry in record2["sources"])


def test_changed_object_is_fetched_again(dataset: dict[str, str], tmp_path: Path, s3_client, tar_factory) -> None:
    cache = tmp_path / "cache"
    spec = _spec(dataset)
    first = stage_spec_sources(spec, data_paths=PANOPTIC_KEYS, cache_dir=cache)
    bucket = dataset["train"].split("/")[2]
    new_images = tar_factory({"000.png": b"rewritten", "009.png": b"new"}, top="images")
    s3_client.upload_file(str(new_images), bucket, "data/train/images.tar.gz")

    second = stage_spec_sources(spec, data_paths=PANOPTIC_KEYS, cache_dir=cache)
    hits = {source.uri.rsplit("/", 2)[-2] + "/" + source.uri.rsplit("/", 1)[-1]: source.cache_hit
            for source in second.sources}
    assert hits.pop("train/images.tar.gz") is False
    assert all(hits.values())
    new_dir = Path(second.spec["dataset"]["train"]["img_dir"])
    assert new_dir != Path(first.spec["dataset"]["train"]["img_dir"])
    assert sorted(p.name for p in new_dir.iterdir()) == ["000.png", "009.png"]
    assert (new_dir / "000.png").read_bytes() == b"rewritten"


def test_real_spec_resolution_chain(dataset: dict[str, str], tmp_path: Path) -> None:
    """The lead's data-source resolution fills URIs from roots; staging makes all of them local."""
    skill = SkillDir()
    spec = load_spec(None, action="train")
    resolve_data_sources(spec, skill, "train", train_datasets=dataset["train"], eval_dataset=dataset["val"],
                         dataset_type="coco_panoptic")
    keys = data_paths_for(skill.info, "train")
    report = stage_spec_sources(spec, data_paths=keys, cache_dir=tmp_path / "cache", workspace=tmp_path / "ws")
    for key in keys:
        value = get_dotted(report.spec, key, None)
        assert not (isinstance(value, str) and value.startswith("s3://")), key
    assert Path(get_dotted(report.spec, "dataset.train.img_dir")).is_dir()
    assert Path(get_dotted(report.spec, "dataset.val.panoptic_json")).is_file()


def test_prefix_source_is_mirrored(bucket: str, s3_client, tmp_path: Path) -> None:
    for name in ("a.png", "sub/b.png"):
        s3_client.put_object(Bucket=bucket, Key=f"folder/images/{name}", Body=name.encode())
    spec = {"dataset": {"train": {"img_dir": f"s3://{bucket}/folder/images/"}}}
    report = stage_spec_sources(spec, data_paths=["dataset.train.img_dir"], cache_dir=tmp_path / "c")
    staged = Path(report.spec["dataset"]["train"]["img_dir"])
    assert (staged / "sub" / "b.png").read_bytes() == b"sub/b.png"
    assert report.sources[0].kind == "prefix" and report.sources[0].files == 2


def test_local_values_are_left_alone(tmp_path: Path) -> None:
    spec = {"dataset": {"train": {"img_dir": str(tmp_path), "panoptic_dir": ""}}}
    report = stage_spec_sources(
        spec, data_paths=["dataset.train.img_dir", "dataset.train.panoptic_dir", "dataset.absent"],
        cache_dir=tmp_path / "c", workspace=tmp_path / "ws",
    )
    assert report.spec == spec and report.sources == ()
    assert report.local_keys == ("dataset.train.img_dir",)


def _entries(cache: Path) -> list[Path]:
    return list((cache / "entries").glob("*")) if (cache / "entries").exists() else []


def test_missing_object_stops_before_any_download(dataset: dict[str, str], tmp_path: Path) -> None:
    spec = _spec(dataset)
    spec["dataset"]["val"]["panoptic_dir"] = f"{dataset['val']}/missing_panoptic.tar.gz"
    bucket = dataset["train"].split("/")[2]
    spec["dataset"]["label_map"] = "s3://no-such-bucket-hpo/label_map.json"
    cache = tmp_path / "cache"
    with pytest.raises(StorageError) as caught:
        stage_spec_sources(spec, data_paths=PANOPTIC_KEYS, cache_dir=cache, workspace=tmp_path / "ws")
    message = str(caught.value)
    assert "cannot stage 2 data sources, so no trial was started" in message
    assert f"dataset.val.panoptic_dir: cannot read s3://{bucket}/data/val/missing_panoptic.tar.gz: " \
           "the object does not exist" in message
    assert "dataset.label_map: cannot read s3://no-such-bucket-hpo/label_map.json: the bucket" in message
    assert _entries(cache) == []  # nothing was fetched
    assert not (tmp_path / "ws" / "data_staging.json").exists()


def test_a_cause_shared_by_every_source_is_said_once(dataset: dict[str, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError) as caught:
        stage_spec_sources(_spec(dataset), data_paths=PANOPTIC_KEYS, cache_dir=tmp_path / "cache",
                           workspace=tmp_path / "ws")
    message = str(caught.value)
    assert message.startswith("cannot stage 6 data sources, so no trial was started: No AWS credentials were found")
    assert message.count("no AWS credentials") + message.count("No AWS credentials") == 1
    assert f"dataset.train.panoptic_json ({dataset['train']}/annotations_panoptic.json)" in message


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "corrupt"])
def test_unsafe_or_corrupt_archive_on_s3_is_refused(
    kind: str, bucket: str, s3_client, tmp_path: Path, tar_factory
) -> None:
    import io
    import tarfile

    path = tmp_path / "bad.tar.gz"
    if kind == "corrupt":
        path.write_bytes(b"\x1f\x8b\x08\x00garbage-after-a-gzip-magic")
    else:
        with tarfile.open(path, "w:gz") as tar:
            ok = tarfile.TarInfo("images/ok.png")
            ok.size = 2
            tar.addfile(ok, io.BytesIO(b"ok"))
            bad = tarfile.TarInfo({"dotdot": "../../evil.sh", "absolute": "/tmp/evil.sh", "symlink": "images/evil"}[kind])
            if kind == "symlink":
                bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(bad)
            else:
                bad.size = 4
                tar.addfile(bad, io.BytesIO(b"evil"))
    s3_client.upload_file(str(path), bucket, "data/train/images.tar.gz")
    uri = f"s3://{bucket}/data/train/images.tar.gz"
    cache = tmp_path / "cache"
    expected = {
        "dotdot": r"member '\.\./\.\./evil\.sh' contains '\.\.'",
        "absolute": r"member '/tmp/evil\.sh' has an absolute path",
        "symlink": r"member 'images/evil' is a symbolic link",
        "corrupt": "is corrupt or not a tar archive",
    }[kind]
    with pytest.raises(DataError, match=rf"staging dataset.train.img_dir stopped before any trial started: "
                                        rf"archive {uri}:? {expected}"):
        stage_spec_sources({"dataset": {"train": {"img_dir": uri}}}, data_paths=["dataset.train.img_dir"],
                           cache_dir=cache)
    assert _entries(cache) == []
    assert list((cache / "tmp").iterdir()) == []  # the partial extraction was removed
    assert not Path("/tmp/evil.sh").exists() or Path("/tmp/evil.sh").read_bytes() != b"evil"


def _stage_in_child(spec: dict, cache: str, queue) -> None:
    report = stage_spec_sources(spec, data_paths=PANOPTIC_KEYS, cache_dir=cache)
    queue.put([(source.uri, source.cache_hit, source.staged_path) for source in report.sources])


def test_concurrent_processes_fill_each_entry_once(dataset: dict[str, str], tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate sweeps would be
    queue = context.Queue()
    spec = _spec(dataset)
    children = [context.Process(target=_stage_in_child, args=(spec, str(tmp_path / "cache"), queue)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    first, second = (dict(((uri, (hit, path)) for uri, hit, path in result)) for result in results)
    assert first.keys() == second.keys()
    for uri in first:
        assert first[uri][1] == second[uri][1]  # same staged path
        assert [first[uri][0], second[uri][0]].count(False) == 1  # exactly one process fetched it


def test_credentials_never_leak(
    dataset: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture,
    credential_scan, fake_secret: str,
) -> None:
    """Logs (ours at DEBUG, all libraries' at DEBUG for the secret), messages and the record are clean."""
    caplog.set_level(logging.DEBUG)
    report = stage_spec_sources(_spec(dataset), data_paths=PANOPTIC_KEYS, cache_dir=tmp_path / "c",
                                workspace=tmp_path / "ws", storage=Storage(progress=True))
    broken = _spec(dataset)
    broken["dataset"]["train"]["img_dir"] = f"{dataset['train']}/nope.tar.gz"
    with pytest.raises(StorageError) as caught:
        stage_spec_sources(broken, data_paths=PANOPTIC_KEYS, cache_dir=tmp_path / "c")
    captured = capsys.readouterr()
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("hpo"))
    everything = "\n".join(record.getMessage() for record in caplog.records)
    record_text = (tmp_path / "ws" / "data_staging.json").read_text()
    assert "staged s3://" in ours  # the scan looked at real log lines
    assert credential_scan(ours, str(caught.value), captured.out, captured.err, record_text,
                           json.dumps(report.to_dict())) == []
    assert fake_secret not in everything
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == fake_secret  # the scan had a secret to look for


def test_not_enough_disk_space_stops_before_download(
    dataset: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(StorageError, match=r"they need at least \d+ bytes in the staging cache .* only 100 bytes are free"):
        stage_spec_sources(_spec(dataset), data_paths=PANOPTIC_KEYS, cache_dir=tmp_path / "cache")
    assert _entries(tmp_path / "cache") == []
