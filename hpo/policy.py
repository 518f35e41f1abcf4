"""automl_policy routing: should a train request run as a sweep or as one plain training?

Resolution order (the result applies to this run only; nothing is persisted):
1. an explicit `--automl-policy on|off`;
2. else the request text: phrases such as "turn off AutoML", "disable AutoML", "no HPO", "plain training"
   mean off;
3. else on.
Then: on + the skill's `automl_enabled` + a packaged train schema and template → sweep; off → plain
training; on but the skill has AutoML disabled → plain training (said so); on + enabled but the schema or
template is missing → plain training, with the message that AutoML is enabled but not runnable until the
schemas are generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skillkit.errors import UserError
from skillkit.skill_dir import SkillDir

SWEEP = "sweep"
PLAIN = "plain"
POLICIES = ("on", "off")

_AUTOML = r"(?:auto[\s_-]?ml|hpo|hyper[\s-]?parameter (?:search|tuning|optimi[sz]ation)|tuning|sweeps?)"
OFF_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    rf"\b(?:turn|switch|shut)(?:ing)?\s+(?:the\s+)?{_AUTOML}\s+off\b",
    rf"\b(?:turn|switch|shut)(?:ing)?\s+off\s+(?:the\s+)?{_AUTOML}",
    rf"\b(?:disable|disabling|deactivate|skip|skipping|bypass|avoid)\s+(?:the\s+)?{_AUTOML}",
    rf"\b{_AUTOML}\s*(?:=|:)?\s*(?:off|disabled|false)\b",
    rf"\b(?:no|without|w/o)\s+(?:any\s+)?{_AUTOML}",
    r"\bplain\s+training\b",
    r"\b(?:a\s+)?single\s+training\s+run\b",
    rf"\bdon'?t\s+(?:use|run|do)\s+{_AUTOML}",
))


@dataclass(frozen=True)
class PolicyDecision:
    """How a train request runs, and why."""

    route: str                 # SWEEP or PLAIN
    policy: str                # the resolved automl_policy: on/off
    policy_source: str         # "explicit", "request: '<phrase>'", or "default"
    message: str               # one sentence for the user


def resolve_policy(explicit: str | None = None, request: str | None = None) -> tuple[str, str]:
    """(policy, where it came from)."""
    if explicit is not None:
        value = str(explicit).strip().lower()
        if value not in POLICIES:
            raise UserError(f"--automl-policy {explicit!r} is not allowed; allowed: on, off.")
        return value, "explicit"
    if request:
        for pattern in OFF_PATTERNS:
            match = pattern.search(request)
            if match:
                return "off", f"request: '{match.group(0).strip()}'"
    return "on", "default"


def route_train(skill: SkillDir, *, explicit: str | None = None, request: str | None = None) -> PolicyDecision:
    policy, source = resolve_policy(explicit, request)
    if policy == "off":
        return PolicyDecision(PLAIN, policy, source, f"automl_policy off ({source}): running one plain training.")
    if not skill.automl_enabled:
        return PolicyDecision(PLAIN, policy, source,
                              f"AutoML is disabled for skill '{skill.info.get('name', skill.path)}' "
                              "(automl_enabled is not true in skill_info.yaml): running one plain training.")
    missing = [str(path) for path, present in ((skill.schema_path("train"), skill.has_schema("train")),
                                               (skill.template_path("train"), skill.has_template("train"))) if not present]
    if missing:
        return PolicyDecision(PLAIN, policy, source,
                              "AutoML is enabled for this skill but not runnable until schemas are generated "
                              f"(missing: {', '.join(missing)}; run `hpo schemas generate`): running one plain training.")
    return PolicyDecision(SWEEP, policy, source, f"automl_policy on ({source}): running a hyperparameter sweep.")
