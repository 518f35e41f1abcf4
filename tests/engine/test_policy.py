"""automl_policy routing (`hpo train`): explicit value, request phrases, skill flags, missing schemas."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.policy import PLAIN, SWEEP, resolve_policy, route_train
from skillkit.errors import UserError
from skillkit.skill_dir import SkillDir
from tests.engine.fixture_skill import make_fixture_skill

# Requests that turn AutoML off, each with the phrase that must be reported as the reason.
OFF_REQUESTS = [
    ("Train Mask2Former on my data but turn off AutoML please", "turn off AutoML"),
    ("disable automl for this one", "disable automl"),
    ("Disable Auto-ML", "Disable Auto-ML"),
    ("no HPO, I know my learning rate", "no HPO"),
    ("just plain training", "plain training"),
    ("turn AutoML off", "turn AutoML off"),
    ("run without hyperparameter search", "without hyperparameter search"),
    ("switch off the HPO", "switch off the HPO"),
    ("automl: off", "automl: off"),
    ("skip tuning this time", "skip tuning"),
    ("don't use AutoML", "don't use AutoML"),
    ("Don’t run a sweep, just train", "Don't run a sweep"),
    ("train it without AutoML", "without AutoML"),
    ("w/o hpo please", "w/o hpo"),
    ("no tuning", "no tuning"),
    ("no tuning at all, thanks", "no tuning"),
    ("Train, skip the tuning step", "skip the tuning"),
    ("please do not tune", "do not tune"),
    ("don't tune anything, use my spec as is", "don't tune anything"),
    ("AutoML=false", "AutoML=false"),
    ("hpo disabled for this job", "hpo disabled"),
    ("I'd like a single training run", "single training run"),
    ("one training run with the template defaults", "one training run"),
    ("vanilla training on coco", "vanilla training"),
    ("no need for hyperparameter optimization", "no need for hyperparameter optimization"),
    ("bypass the tuner", "bypass the tuner"),
    ("deactivate hyper-parameter tuning", "deactivate hyper-parameter tuning"),
    ("train once with lr 1e-4", "train once"),
    ("just a regular training please", "just a regular training"),
    ("Train the model. No sweeps.", "No sweeps"),
    ("opt out of AutoML", "opt out of AutoML"),
    ("without any tuning", "without any tuning"),
    ("train with automl turned off", "automl turned off"),
]

# Requests that keep AutoML on: no off-intent, or one that is negated or aimed at something else.
ON_REQUESTS = [
    None, "", "train mask2former on coco", "find the best learning rate", "use AutoML with 20 trials",
    "plain old dataset, please tune it", "turn on automl",
    "train without tuning the backbone",
    "skip tuning the learning rate, it is fixed",
    "no tuning of the decoder layers",
    "don't tune the backbone multiplier",
    "disable tuning of dropout",
    "train with AutoML, but without tuning the backbone",
    "don't disable AutoML",
    "do not turn off HPO",
    "never skip the sweep",
    "keep the HPO on",
    "enable hyperparameter search",
    "search over lr and weight decay",
    "tune the learning rate and the number of queries",
    "train with a search over the loss weights",
    "no augmentation, tune everything else",
    "without pretrained weights, with AutoML",
    "I don't want to tune the batch size",
    "skip the validation step and tune the rest",
    "the plain dataset is in s3",
    "single GPU please",
    "run the sweep on 4 GPUs",
    "training once converged should be exported",
    "avoid tuning the optimizer momentum",
    "no search over the backbone",
    "AutoML on, 10 trials",
]


@pytest.mark.parametrize(("request_text", "phrase"), OFF_REQUESTS)
def test_off_phrases(request_text: str, phrase: str) -> None:
    policy, source = resolve_policy(None, request_text)
    assert (policy, source) == ("off", f"request: '{phrase}'")


@pytest.mark.parametrize("request_text", ON_REQUESTS)
def test_on_by_default(request_text: str | None) -> None:
    assert resolve_policy(None, request_text) == ("on", "default")


def test_the_tables_are_large_enough() -> None:
    assert len(OFF_REQUESTS) >= 30 and len(ON_REQUESTS) >= 30


def test_explicit_wins_over_the_request() -> None:
    assert resolve_policy("on", "turn off AutoML") == ("on", "explicit")
    assert resolve_policy("OFF", "use AutoML") == ("off", "explicit")
    with pytest.raises(UserError, match=r"--automl-policy 'maybe' is not allowed; allowed: on, off"):
        resolve_policy("maybe", None)


def test_routes(tmp_path: Path) -> None:
    enabled = SkillDir(make_fixture_skill(tmp_path / "enabled"))
    assert route_train(enabled).route == SWEEP
    assert route_train(enabled, request="please turn off AutoML").route == PLAIN
    assert route_train(enabled, explicit="off").route == PLAIN
    # The override lasts for that run only: the next request routes by the defaults again.
    assert route_train(enabled).route == SWEEP

    disabled = SkillDir(make_fixture_skill(tmp_path / "disabled", automl_enabled=False))
    decision = route_train(disabled)
    assert decision.route == PLAIN and "AutoML is disabled for skill" in decision.message

    unpackaged = SkillDir(make_fixture_skill(tmp_path / "unpackaged", with_schema=False))
    decision = route_train(unpackaged)
    assert decision.route == PLAIN
    assert "AutoML is enabled for this skill but not runnable until schemas are generated" in decision.message
    assert "train.schema.json" in decision.message


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("schemas/train.schema.json", '{"type": "object", "properties": {', r"train\.schema\.json does not parse: .*not valid JSON"),
    ("schemas/train.schema.json", '["not", "a", "schema"]', r"train\.schema\.json does not parse: .*must be an object"),
    ("references/spec_template_train.yaml", "train: [unclosed\n", r"spec_template_train\.yaml does not parse: .*not valid YAML"),
    ("references/spec_template_train.yaml", "- a list\n", r"spec_template_train\.yaml does not parse: .*must be a mapping"),
])
def test_a_schema_or_template_that_does_not_parse_is_not_runnable(tmp_path: Path, name: str, content: str,
                                                                  expected: str) -> None:
    folder = make_fixture_skill(tmp_path / "skill")
    (folder / name).write_text(content)
    decision = route_train(SkillDir(folder))
    assert decision.route == PLAIN
    assert decision.message.startswith("AutoML is enabled for this skill but not runnable until schemas are generated")
    assert re.search(expected, decision.message), decision.message


def hpo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpo.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CI": "1"})


def test_hpo_train_plain_runs_one_training(tmp_path: Path) -> None:
    skill = make_fixture_skill(tmp_path / "skill")
    done = hpo("train", "--skill-dir", str(skill), "--request", "no HPO please", "--results-dir", str(tmp_path / "out"),
               "train.num_epochs=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "automl_policy off (request: 'no HPO')" in done.stdout
    lines = [json.loads(line) for line in (tmp_path / "out" / "status.json").read_text().splitlines()]
    assert lines[-1]["status"] == "SUCCESS" and lines[-1]["epoch"] == 1  # the last of two epochs, TAO-numbered
    assert not (tmp_path / "hpo_workspace").exists()


def test_hpo_train_sweeps_by_default(tmp_path: Path) -> None:
    skill = make_fixture_skill(tmp_path / "skill")
    done = hpo("train", "--skill-dir", str(skill), "--backend", "optuna", "--algorithm", "random", "--max-trials", "2",
               "--yes", "train.num_epochs=2", "fixture.sleep_s=0.01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "automl_policy on (default): running a hyperparameter sweep" in done.stdout
    (sweep_dir,) = list((tmp_path / "hpo_workspace").iterdir())
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["counts"] == {"COMPLETED": 2} and summary["max_epochs"] == 2


def test_hpo_train_without_schemas_trains_plainly_and_says_why(tmp_path: Path) -> None:
    skill = make_fixture_skill(tmp_path / "skill", with_schema=False)
    done = hpo("train", "--skill-dir", str(skill), "--results-dir", str(tmp_path / "out"), "train.num_epochs=1",
               cwd=tmp_path)
    assert "not runnable until schemas are generated" in done.stdout
    assert done.returncode == 0, done.stderr
