"""An unbiased final score: the top-k candidates of a sweep evaluated once on a held-out test dataset.

Why: the validation split ranks the trials, so the winner's validation score is optimistic (it was picked for
being high). A split no trial and no selection step has seen estimates how the model does on new data. The
sweep config names it (`datasets.test`: a folder or an `s3://` root in the same formats as `datasets.eval`);
after the sweep:

1. the top-k candidates (`promotion.test_top_k`, default 3) are taken by the one selection rule, applied k
   times (`selection.select`: the best eligible trial's best epoch, then the best of the rest, ...);
2. each is evaluated ONCE with the skill's evaluate command on a spec whose evaluation data is the test root
   (the evaluate action's `data_sources` table fills it, as `--eval-dataset` does); a candidate already
   scored for the same checkpoint (`test_scores.json`) is not evaluated again, so promoting twice never
   spends the test split twice;
3. the champion is picked by `promotion.champion`: `selection` (default: the validation ranking; the test
   split stays untouched by selection and its score stays an unbiased estimate) or `test` (the best test
   score among the top-k; then that score is no longer unbiased, which the record says).

`<sweep>/test_scores.json` holds both scores side by side for every candidate; summary.json, best.json, the
MLflow parent run and `hpo status`/`hpo compare` read it. Without a test dataset the outputs say plainly that
the final score is the selection score.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo.promotion.evaluation import EvaluationResult, EvaluationRunner
from hpo.promotion.specs import HandoffPaths, build_handoff_specs
from hpo.trials.candidates import Candidate, PromotionError, select
from skillkit.files import SPEC_FILE, TEST_SCORES_FILE, TRIALS_DIR
from skillkit.spec import dump_spec, get_dotted, read_spec_file, set_dotted

TEST_EVAL_DIR = "test_eval"
DEFAULT_TOP_K = 3
CHAMPION_RULES = ("selection", "test")
NO_TEST_NOTE = ("no held-out test dataset (datasets.test): the final score is the selection score, measured on "
                "the validation split that picked this trial, so it is optimistic")


@dataclasses.dataclass(frozen=True)
class TestScore:
    """One candidate: its selection (validation) score and its score on the test dataset."""

    rank: int  # by selection score, 1 = best
    trial_id: str
    epoch: int
    checkpoint: str
    selection: float | None
    test: float | None
    test_kpi: Mapping[str, Any]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "trial_id": self.trial_id, "epoch": self.epoch, "checkpoint": self.checkpoint,
                "selection": self.selection, "test": self.test, "test_kpi": dict(self.test_kpi), "error": self.error}


@dataclasses.dataclass(frozen=True)
class TestReport:
    dataset: str
    metric: str
    champion_rule: str
    scores: tuple[TestScore, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "metric": self.metric, "champion_rule": self.champion_rule,
                "top_k": [score.to_dict() for score in self.scores]}


def test_settings(config: Mapping[str, Any]) -> tuple[str | None, int, str, str | None]:
    """(test root, k, champion rule, dataset type) from a sweep config (sweep.yaml)."""
    datasets = config.get("datasets") or {}
    promotion = config.get("promotion") or {}
    rule = str(promotion.get("champion", "selection"))
    if rule not in CHAMPION_RULES:
        raise PromotionError(f"promotion.champion = {rule!r}; allowed: {', '.join(CHAMPION_RULES)}.")
    return datasets.get("test"), int(promotion.get("test_top_k", DEFAULT_TOP_K)), rule, datasets.get("type")


def top_candidates(trials: Sequence[Mapping[str, Any]], sweep_dir: Path, metric: str, direction: str,
                   k: int) -> list[Candidate]:
    """The k best candidates by the one selection rule (applied to what remains, k times)."""
    remaining = list(trials)
    picked: list[Candidate] = []
    while remaining and len(picked) < k:
        try:
            candidate = select(remaining, sweep_dir, metric, direction)
        except PromotionError:
            break
        picked.append(candidate)
        remaining = [t for t in remaining if str(t.get("trial_id")) != candidate.trial_id]
    return picked


def load_report(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / TEST_SCORES_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def evaluate_top_k(sweep_dir: Path, config: Mapping[str, Any], candidates: Sequence[Candidate], *,
                   metric: str, runner: EvaluationRunner, skill: Any) -> TestReport | None:
    """Evaluate `candidates` (the top-k, `top_candidates`) on `datasets.test`; None without a test dataset."""
    root, _, rule, dataset_type = test_settings(config)
    if not root:
        return None
    sweep_dir = Path(sweep_dir)
    earlier = {(s["trial_id"], s["checkpoint"]): s for s in (load_report(sweep_dir) or {}).get("top_k", [])
               if s.get("test") is not None}
    scores = []
    for rank, candidate in enumerate(candidates, start=1):
        checkpoint = str(candidate.checkpoint.relative_to(sweep_dir))
        done = earlier.get((candidate.trial_id, checkpoint))
        if done is not None:
            scores.append(TestScore(rank, candidate.trial_id, candidate.epoch, checkpoint, candidate.metric,
                                    done["test"], done.get("test_kpi") or {}))
            continue
        result = _evaluate(sweep_dir, candidate, root, dataset_type, metric, runner, skill)
        scores.append(TestScore(rank, candidate.trial_id, candidate.epoch, checkpoint, candidate.metric, result.value,
                                dict(result.kpi), result.error))
    report = TestReport(dataset=str(root), metric=metric, champion_rule=rule, scores=tuple(scores))
    _write_json(sweep_dir / TEST_SCORES_FILE, report.to_dict())
    return report


def recorded_report(sweep_dir: Path) -> TestReport | None:
    """The report `evaluate_top_k` wrote (None when there is none)."""
    data = load_report(sweep_dir)
    if not data:
        return None
    return TestReport(dataset=str(data.get("dataset")), metric=str(data.get("metric")),
                      champion_rule=str(data.get("champion_rule", "selection")),
                      scores=tuple(TestScore(**{k: s.get(k) for k in ("rank", "trial_id", "epoch", "checkpoint",
                                                                        "selection", "test", "error")},
                                             test_kpi=s.get("test_kpi") or {}) for s in data.get("top_k", [])))


def champion(report: TestReport | None, candidates: Sequence[Candidate], direction: str) -> Candidate | None:
    """The candidate to promote under the report's rule (None: keep the selection winner)."""
    if report is None or report.champion_rule == "selection" or not report.scores:
        return None
    from hpo.selection import better

    best: TestScore | None = None
    for score in report.scores:  # selection order: ties keep the better-selected candidate
        if score.test is not None and (best is None or better(score.test, best.test, direction)):
            best = score
    if best is None:
        return None
    return next(c for c in candidates if c.trial_id == best.trial_id)


def scores_record(report: TestReport | None, promoted: Candidate, metric: str) -> dict[str, Any]:
    """best.json's `scores`: selection and test score side by side, and which one is the final score."""
    if report is None:
        return {"metric": metric, "selection": promoted.metric, "test": None, "final": promoted.metric,
                "final_source": "selection", "champion_rule": "selection", "test_dataset": None, "note": NO_TEST_NOTE,
                "top_k": []}
    own = next((s for s in report.scores if s.trial_id == promoted.trial_id), None)
    test = own.test if own else None
    note = ("final score measured once on the held-out test dataset, which no trial and no selection step saw"
            if report.champion_rule == "selection" else
            "the champion was picked by its test score among the top-k, so the test score is no longer an unbiased "
            "estimate of performance on new data")
    if test is None:
        why = f"its test evaluation failed ({own.error})" if own else "it was not among the top-k evaluated on the test dataset"
        note = f"{why}; the final score is the selection score"
    return {"metric": metric, "selection": promoted.metric, "test": test,
            "final": test if test is not None else promoted.metric,
            "final_source": "test" if test is not None else "selection", "champion_rule": report.champion_rule,
            "test_dataset": report.dataset, "note": note, "top_k": [s.to_dict() for s in report.scores]}


# ------------------------------------------------------------------------------------------------ internals
def _evaluate(sweep_dir: Path, candidate: Candidate, root: str, dataset_type: str | None, metric: str,
              runner: EvaluationRunner, skill: Any) -> EvaluationResult:
    folder = sweep_dir / TEST_EVAL_DIR / candidate.trial_id
    train_spec = read_spec_file(sweep_dir / TRIALS_DIR / candidate.trial_id / SPEC_FILE)
    templates = {"evaluate": skill.template("evaluate")} if skill.has_template("evaluate") else {}
    spec = build_handoff_specs(train_spec, HandoffPaths(best_dir=folder, checkpoint=candidate.checkpoint),
                               templates=templates, actions=("evaluate",)).evaluate
    assert spec is not None  # the evaluate action was asked for
    _point_at_test_data(spec, skill, root, dataset_type)
    return runner(dump_spec(spec, folder / "evaluate_spec.yaml"), folder / "evaluate", metric)


def _point_at_test_data(spec: dict[str, Any], skill: Any, root: str, dataset_type: str | None) -> None:
    """Every evaluation split of `spec` reads the test root (so whichever split the skill's evaluate action
    scores, it is the test data), staged locally first when it is an s3:// root."""
    from hpo.spec import resolve_data_sources

    table = skill.data_sources("evaluate")
    for dotted in table:
        parts = dotted.split(".")
        if len(parts) > 2 and parts[0] == "dataset" and parts[1] in ("val", "test"):
            for split in ("val", "test"):
                key = ".".join(["dataset", split, *parts[2:]])
                if get_dotted(spec, key, None) not in (None, ""):
                    set_dotted(spec, key, "")
    resolve_data_sources(spec, skill, "evaluate", eval_dataset=root, dataset_type=dataset_type)
    if "://" in root:
        from hpo.storage.staging import data_paths_for, stage_spec_sources

        staged = stage_spec_sources(spec, data_paths=data_paths_for(skill.info, "evaluate"))
        spec.clear()
        spec.update(staged.spec)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(temporary, path)
