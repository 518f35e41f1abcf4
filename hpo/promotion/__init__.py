"""Promotion of a sweep's best trial: the exact best-epoch checkpoint, its spec, ready-to-run export and
deploy specs in `best/`, a Model Registry version under an alias, a final evaluation, and checkpoint retention.

    from hpo.promotion import promote
    result = promote(sweep_dir)                 # what the engine calls at sweep end
    result.record                               # == best/best.json
"""

from hpo.promotion.evaluation import EvaluationResult, EvaluationRunner, SkillEvaluator
from hpo.promotion.promote import PromotionResult, promote
from hpo.promotion.retention import RetentionReport, apply_retention
from hpo.trials.candidates import Candidate, PromotionError, best_epoch, select

__all__ = [
    "Candidate", "EvaluationResult", "EvaluationRunner", "PromotionError", "PromotionResult", "RetentionReport",
    "SkillEvaluator", "apply_retention", "best_epoch", "promote", "select",
]
