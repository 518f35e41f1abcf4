"""The MLflow model `mask2former mlflow_model` packages, in every mode: loaded with `mlflow.pyfunc.load_model`, it
returns the mode's outputs (semantic map; panoptic segments; instance masks) equal to what `mask2former
inference` writes for the same image, and its signature names every key a record holds.

The served/registered path (a real sweep, `models:/mask2former@champion`, `mlflow models serve`) is the slow
test in tests/promotion/test_promoted_mlflow_model.py; this one covers the modes that test does not run."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.cli import main
from tests.training.training_support import write_spec_file


def _one_image(panoptic_data: Path, folder: Path) -> Path:
    with tarfile.open(panoptic_data / "val" / "images.tar.gz") as archive:
        member = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)[0]
        data = archive.extractfile(member)
        assert data is not None
        folder.mkdir(parents=True)
        target = folder / Path(member.name).name
        target.write_bytes(data.read())
    return target


def _confident_checkpoint(trained_run: Path, target: Path) -> Path:
    """The shared run's last checkpoint, nudged so panoptic inference finds segments: a 2-step model calls
    every query "no object" and has no mask logit above 0 on the image, and an empty segment list would make
    the comparison prove nothing. The "no object" logit is pushed down, and a fixed random vector added to the
    mask embedding's bias gives every query the same spatially varying mask offset (3 segments here)."""
    import torch

    from mask2former.training import read_checkpoint

    checkpoint = read_checkpoint(trained_run / "mask2former_model_latest.pth")
    state = checkpoint["state_dict"]
    classes = [key for key in state if key.endswith("class_embed.bias")]
    masks = sorted(key for key in state if ".mask_embed." in key and key.endswith(".bias"))
    assert classes and masks
    for key in classes:
        state[key][-1] = -20.0
    state[masks[-1]] += torch.randn(state[masks[-1]].shape, generator=torch.Generator().manual_seed(0))
    torch.save(checkpoint, target)
    return target


def _as_list(value) -> list:
    return np.asarray(value).tolist()


def _rounded(value):
    """JSON-like data with floats rounded (scores pass through float32 and JSON on one side only)."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item) for item in value]
    return value


@pytest.mark.parametrize("mode", ["semantic", "panoptic", "instance"])
def test_the_packaged_model_predicts_what_inference_writes(panoptic_data, trained_run, tmp_path, mode, capsys) -> None:
    import mlflow.pyfunc
    import pandas as pd

    from mask2former.serving.pyfunc import OUTPUT_KEYS

    image = _one_image(panoptic_data, tmp_path / "images")
    checkpoint = _confident_checkpoint(trained_run, tmp_path / "model_epoch_001_step_00004.pth")
    out = tmp_path / "cli"
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, out, **{
        "model.mode": mode, "model.object_mask_threshold": 0.0, "model.overlap_threshold": 0.0, "model.test_topk_per_image": 40,
        "inference.checkpoint": str(checkpoint),
        "inference.batch_size": 1, "dataset.test.img_dir": str(image.parent),
        "dataset.test.panoptic_json": "", "dataset.test.instance_json": "",
    })
    assert main(["mlflow_model", "-e", str(spec), "--output", str(tmp_path / "model")]) == 0
    assert main(["inference", "-e", str(spec)]) == 0
    capsys.readouterr()

    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    assert model.metadata.get_input_schema().input_names() == ["image", "file_name"]
    assert tuple(model.metadata.get_output_schema().input_names()) == OUTPUT_KEYS
    (record,) = model.predict(pd.DataFrame({"image": [image.read_bytes()], "file_name": [image.name]}))
    expected_keys = {"image_id", "file_name", "height", "width", "semantic"} | {
        "semantic": set(), "panoptic": {"panoptic", "segments_info"}, "instance": {"instances"}}[mode]
    assert set(record) == expected_keys

    semantic = np.asarray(Image.open(out / "semantic" / f"{image.stem}.png")).astype(np.int64)
    assert (record["height"], record["width"]) == semantic.shape
    assert _as_list(record["semantic"]) == semantic.tolist()
    if mode == "panoptic":
        rgb = np.asarray(Image.open(out / "panoptic" / f"{image.stem}.png")).astype(np.int64)
        assert _as_list(record["panoptic"]) == (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).tolist()
        (annotation,) = json.loads((out / "panoptic.json").read_text())["annotations"]
        assert annotation["segments_info"], "no segment to compare: the test would prove nothing"
        assert _rounded(record["segments_info"]) == _rounded(annotation["segments_info"])
    if mode == "instance":
        written = json.loads((out / "instances.json").read_text())
        assert written, "no instance to compare: the test would prove nothing"
        assert _rounded(record["instances"]) == _rounded(written)


def test_packaging_a_missing_checkpoint_is_one_error_line(panoptic_data, tmp_path) -> None:
    """Exit code 3 and the error alone on stderr: no traceback, and no MLflow request for type hints."""
    import subprocess
    import sys

    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "out",
                           **{"inference.checkpoint": str(tmp_path / "missing.pth")})
    done = subprocess.run([sys.executable, "-m", "mask2former.cli", "mlflow_model", "-e", str(spec), "--output",
                           str(tmp_path / "model")], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: inference.checkpoint '{tmp_path / 'missing.pth'}' is not a file: the MLflow model packages that "
        "checkpoint."]
    assert not (tmp_path / "model").exists()
