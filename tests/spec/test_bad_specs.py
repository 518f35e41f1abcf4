"""Each bad spec gets its own specific message and exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.cli import main

SPEC_ERROR = 3
DATA_ERROR = 6

# (id, action, spec YAML text, overrides, expected fragments of the message)
CASES = [
    ("unknown-top-key", "train", "modle: {}\n", [], ["'modle': unknown key; did you mean 'model'?"]),
    ("unknown-nested-key", "train", "model:\n  mask_former:\n    hiden_dim: 128\n", [], ["'model.mask_former.hiden_dim'", "did you mean 'hidden_dim'"]),
    ("unknown-key-override", "train", "", ["train.optim.lrr=0.1"], ["'train.optim.lrr'", "did you mean 'lr'"]),
    ("shorthand-key-hint", "train", "train:\n  optim:\n    learning_rate: 0.1\n", [], ["'train.optim.learning_rate': unknown key", "shorthand for 'train.optim.lr'"]),
    ("unknown-key-no-close-match", "train", "train:\n  zzz: 1\n", [], ["'train.zzz': unknown key; allowed keys here"]),
    ("int-wrong-type", "train", "train:\n  num_epochs: ten\n", [], ["'train.num_epochs' = 'ten'", "must be of type int"]),
    ("int-given-float", "train", "train:\n  num_epochs: 2.5\n", [], ["'train.num_epochs' = 2.5", "type int"]),
    ("float-wrong-type", "train", "train:\n  optim:\n    lr: fast\n", [], ["'train.optim.lr' = 'fast'", "type float"]),
    ("bool-wrong-type", "train", "model:\n  mask_former:\n    pre_norm: maybe\n", [], ["'model.mask_former.pre_norm' = 'maybe'", "type bool"]),
    ("list-wrong-type", "train", "train:\n  gpu_ids: 0\n", [], ["'train.gpu_ids' = 0", "type list"]),
    ("section-not-mapping", "train", "train: 5\n", [], ["'train' = 5", "type collection"]),
    ("below-minimum", "train", "train:\n  num_epochs: 0\n", [], ["'train.num_epochs' = 0", "must be >= 1"]),
    ("above-maximum", "train", "model:\n  mask_former:\n    dec_layers: 51\n", [], ["'model.mask_former.dec_layers' = 51", "must be <= 50"]),
    ("lr-above-one", "train", "", ["train.optim.lr=3.0"], ["'train.optim.lr' = 3.0", "must be <= 1.0"]),
    ("negative-workers", "train", "dataset:\n  train:\n    num_workers: -1\n", [], ["'dataset.train.num_workers' = -1", ">= 0"]),
    ("export-width-too-small", "export", "export:\n  checkpoint: a.pth\n  onnx_file: a.onnx\n  input_width: 16\n", [], ["'export.input_width' = 16", ">= 32"]),
    ("math-cond-positive", "train", "train:\n  optim:\n    lr: 0.0\n", [], ["'train.optim.lr' = 0.0", "must be > 0", "math_cond '> 0.0'"]),
    ("math-cond-multiple", "train", "model:\n  mask_former:\n    hidden_dim: 100\n", [], ["'model.mask_former.hidden_dim' = 100", "multiple of 8"]),
    ("math-cond-compound", "train", "train:\n  optim:\n    momentum: 1.0\n", [], ["'train.optim.momentum' = 1.0", "must be < 1"]),
    ("math-cond-depends-on", "train", "dataset:\n  augmentation:\n    test_min_size: 800\n    test_max_size: 640\n", [],
     ["'dataset.augmentation.test_max_size' = 640", ">= its parent's value 800"]),
    ("math-cond-power", "train", "model:\n  sem_seg_head:\n    common_stride: 6\n", [], ["'model.sem_seg_head.common_stride' = 6", "power of 2"]),
    ("bad-enum-mode", "train", "model:\n  mode: detection\n", [], ["'model.mode' = 'detection'", "must be one of ['panoptic', 'instance', 'semantic']"]),
    ("bad-enum-dataset-type", "train", "dataset:\n  train:\n    type: voc\n", [], ["'dataset.train.type' = 'voc'", "one of"]),
    ("bad-enum-precision", "train", "", ["train.precision=fp8"], ["'train.precision' = 'fp8'", "one of ['fp32', 'fp16', 'bf16']"]),
    ("bad-pattern", "quantize", "quantize:\n  device: tpu:0\n", [], ["'quantize.device' = 'tpu:0'", "must match"]),
    ("list-item-type", "train", "model:\n  backbone:\n    swin:\n      depths: [2, two, 6, 2]\n", [], ["'model.backbone.swin.depths'", "item 1 ('two') must be of type int"]),
    ("list-length", "train", "model:\n  backbone:\n    swin:\n      depths: [2, 2, 6]\n", [], ["'model.backbone.swin.depths'", "needs at least 4 item(s)"]),
    ("missing-evaluate-checkpoint", "evaluate", "", [], ["'evaluate.checkpoint' = '???': action 'evaluate' needs a value here"]),
    ("missing-export-onnx", "export", "export:\n  checkpoint: m.pth\n", [], ["'export.onnx_file' = '???'"]),
    ("missing-gen-trt-paths", "gen_trt_engine", "", [], ["'gen_trt_engine.onnx_file' = '???'", "'gen_trt_engine.trt_engine' = '???'"]),
    ("malformed-yaml", "train", "model:\n  mode: [panoptic\n", [], ["is not valid YAML", "line"]),
    ("malformed-yaml-tabs", "train", "model:\n\tmode: panoptic\n", [], ["is not valid YAML"]),
    ("not-a-mapping", "train", "- a\n- b\n", [], ["must hold a mapping of sections, got list"]),
    ("bad-override-syntax", "train", "", ["train.num_epochs"], ["override 'train.num_epochs' must look like dotted.key=value"]),
    ("override-into-leaf", "train", "", ["train.num_epochs.x=1"], ["cannot set 'train.num_epochs.x'", "not a section"]),
    ("several-problems-at-once", "train", "train:\n  num_epochs: 0\n  precision: fp64\n", [], ["2 problem(s)", "'train.num_epochs'", "'train.precision'"]),
]


@pytest.mark.parametrize("case_id, action, text, overrides, fragments", CASES, ids=[case[0] for case in CASES])
def test_bad_spec_message(case_id: str, action: str, text: str, overrides: list[str], fragments: list[str],
                          tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    code = main(["spec", "validate", "--skill-dir", str(repo_root), "--action", action, "-e", str(spec), *overrides])
    error = capsys.readouterr().err
    assert code == SPEC_ERROR, error
    assert "Traceback" not in error
    for fragment in fragments:
        assert fragment in error, f"{fragment!r} not in {error!r}"


def _label_map(path: Path, ids: list[int]) -> Path:
    path.write_text(json.dumps([{"id": i, "name": f"c{i}", "color": [i, i, i], "isthing": 1} for i in ids]))
    return path


@pytest.mark.parametrize("contiguous, num_classes, fragment", [
    (True, 5, "has 3 categories: set num_classes=3"),
    (False, 7, "ids up to 7: set num_classes=8"),
])
def test_class_count_mismatch(contiguous: bool, num_classes: int, fragment: str, tmp_path: Path, repo_root: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    label_map = _label_map(tmp_path / "label_map.json", [1, 4, 7])
    code = main(["spec", "validate", "--skill-dir", str(repo_root), f"dataset.label_map={label_map}",
                 f"dataset.contiguous_id={str(contiguous).lower()}", f"model.sem_seg_head.num_classes={num_classes}"])
    error = capsys.readouterr().err
    assert code == SPEC_ERROR and fragment in error and "Traceback" not in error


@pytest.mark.parametrize("contiguous, num_classes", [(True, 3), (False, 8), (False, 201)])
def test_class_count_ok(contiguous: bool, num_classes: int, tmp_path: Path, repo_root: Path) -> None:
    label_map = _label_map(tmp_path / "label_map.json", [1, 4, 7])
    assert main(["spec", "validate", "--skill-dir", str(repo_root), f"dataset.label_map={label_map}",
                 f"dataset.contiguous_id={str(contiguous).lower()}", f"model.sem_seg_head.num_classes={num_classes}"]) == 0


def test_broken_label_map_is_a_data_error(tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "label_map.json"
    bad.write_text("[{\"id\": 1,}")
    assert main(["spec", "validate", "--skill-dir", str(repo_root), f"dataset.label_map={bad}"]) == DATA_ERROR
    assert "is not valid JSON" in capsys.readouterr().err


def test_missing_spec_file(tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "validate", "--skill-dir", str(repo_root), "-e", str(tmp_path / "nope.yaml")]) == SPEC_ERROR
    assert "does not exist" in capsys.readouterr().err
