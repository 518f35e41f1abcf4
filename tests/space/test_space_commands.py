"""`hpo space show|compile|check|sample` and the benchmark's tiny form."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from hpo.cli import main
from hpo.space import SearchSpace
from skillkit.spec import load_spec


@pytest.fixture()
def tao_schema_file(tao_reference):
    return str(tao_reference / "schemas" / "train.schema.json")


def test_show_formats(tao_schema_file, capsys):
    assert main(["space", "show", "--schema", tao_schema_file, "--width", "250"]) == 0
    table = capsys.readouterr().out
    for text in ("train.optim.lr", "model.mask_former.hidden_dim", "log", "step 8", "why", "4x default"):
        assert text in table
    assert main(["space", "show", "--schema", tao_schema_file, "--format", "yaml"]) == 0
    space = SearchSpace.from_yaml(capsys.readouterr().out)
    assert space["train.optim.lr"].scale == "log"
    assert main(["space", "show", "--schema", tao_schema_file, "--format", "json", "--param", "train.optim.lr"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in data["parameters"]] == ["train.optim.lr"]


def test_show_is_readable_at_80_columns(repo_root, capsys):
    """One block per parameter: every name whole on one line, nothing past column 80, no table folding."""
    assert main(["space", "show", "--skill-dir", str(repo_root), "--width", "80"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    space = SearchSpace.from_yaml((repo_root / "search_spaces" / "mask2former_train.yaml").read_text())
    for param in space.parameters:
        assert any(line.split() and line.split()[0] == param.name for line in lines), param.name
    assert len(lines) < 6 * len(space.parameters)


def test_show_with_custom_ranges_file(tao_schema_file, tmp_path, capsys):
    ranges = tmp_path / "ranges.yaml"
    ranges.write_text(yaml.safe_dump({"train.optim.lr": {"min": 1e-5, "max": 1e-3}}))
    assert main(["space", "show", "--schema", tao_schema_file, "--format", "json", "--ranges", str(ranges)]) == 0
    lr = next(p for p in json.loads(capsys.readouterr().out)["parameters"] if p["name"] == "train.optim.lr")
    assert (lr["low"], lr["high"]) == (1e-5, 1e-3)
    ranges.write_text(yaml.safe_dump({"train.optim.lr": {"max": 3.0}}))
    assert main(["space", "show", "--schema", tao_schema_file, "--ranges", str(ranges)]) == 5
    assert "custom_param_ranges max = 3.0 lies outside the schema's limits" in capsys.readouterr().err


def test_compile_then_check_detects_staleness(tao_schema_file, tmp_path, capsys):
    out = tmp_path / "search_spaces" / "tao_train.yaml"
    assert main(["space", "compile", "--schema", tao_schema_file, "--out", str(out)]) == 0
    assert main(["space", "check", "--schema", tao_schema_file, "--file", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out
    out.write_text(out.read_text().replace("high: 50", "high: 60"))
    assert main(["space", "check", "--schema", tao_schema_file, "--file", str(out)]) == 4
    assert "is stale" in capsys.readouterr().err
    assert main(["space", "check", "--schema", tao_schema_file, "--file", str(tmp_path / "none.yaml")]) == 4
    assert "does not exist" in capsys.readouterr().err


def test_check_of_the_committed_file_passes(repo_root, capsys):
    assert (repo_root / "schemas" / "train.schema.json").is_file(), "run 'hpo schemas generate' and commit schemas/"
    assert main(["space", "check", "--skill-dir", str(repo_root)]) == 0


def test_sample_prints_validated_override_sets(repo_root, capsys):
    assert (repo_root / "schemas" / "train.schema.json").is_file(), "run 'hpo schemas generate' and commit schemas/"
    assert main(["space", "sample", "-n", "4", "--seed", "3", "--skill-dir", str(repo_root)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if not line.startswith("#")]
    assert len(lines) == 4 and "spec validation" in captured.err
    for line in lines:
        load_spec(None, "train", line.split(" "), repo_root, check_mandatory=False, check_classes=False)
    assert main(["space", "sample", "-n", "4", "--seed", "3", "--skill-dir", str(repo_root)]) == 0
    assert capsys.readouterr().out == captured.out  # same seed, same samples
    assert main(["space", "sample", "-n", "2", "--seed", "3", "--skill-dir", str(repo_root), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_sample_with_epoch_budget_and_schema_only(tao_schema_file, capsys):
    args = ["space", "sample", "-n", "5", "--seed", "0", "--schema", tao_schema_file, "--override-disabled",
            "--param", "train.optim.milestones", "--epoch-budget", "4", "--format", "yaml"]
    assert main(args) == 0
    for values in yaml.safe_load(capsys.readouterr().out):
        assert all(1 <= m <= 3 for m in values["train.optim.milestones"])


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--param", "train.optim.lrr"], 5, "does not exist in the schema"),
        (["--param", "train.optim.milestones"], 5, "automl_disabled_parameters"),
        (["-n", "0"], 5, "-n must be at least 1"),
    ],
)
def test_errors_are_one_line_with_exit_codes(tao_schema_file, capsys, args, code, message):
    assert main(["space", "sample", "--schema", tao_schema_file, *args]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_benchmark_quick_form(repo_root, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("space_bench", repo_root / "benchmarks" / "space_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    paths = {(row["schema"], row["path"]) for row in result["rows"]}
    assert ("synthetic-200", "compile") in paths and ("synthetic-200", "optuna define-by-run") in paths
    assert ("synthetic-200", "ray OptunaSearch define-by-run") in paths
    assert all(row["samples_per_second"] > 0 for row in result["rows"])
    assert "search-space benchmark" in capsys.readouterr().out
