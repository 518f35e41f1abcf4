"""automl_policy routing: should a train request run as a sweep or as one plain training?

Resolution order (the result applies to this run only; nothing is persisted):
1. an explicit `--automl-policy on|off`;
2. else the request text: an off-intent such as "turn off AutoML", "disable AutoML", "no HPO", "plain
   training", "without AutoML", "skip tuning" means off;
3. else on.
Then: on + the skill's `automl_enabled` + a packaged train schema and template that exist AND parse → sweep;
off → plain training; on but the skill has AutoML disabled → plain training (said so); on + enabled but the
schema or template is missing or does not parse → plain training, with the message that AutoML is enabled but
not runnable until the schemas are generated, naming the missing file or the parse error.
Request phrases are matched as intents (`policy_phrases.py`): "train without tuning the backbone" keeps
AutoML on.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpo.policy_phrases import find_off_intent
from skillkit.errors import SchemaError, UserError
from skillkit.skill_dir import SkillDir

SWEEP = "sweep"
PLAIN = "plain"
POLICIES = ("on", "off")


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
    phrase = find_off_intent(request)
    if phrase:
        return "off", f"request: '{phrase}'"
    return "on", "default"


def route_train(skill: SkillDir, *, explicit: str | None = None, request: str | None = None) -> PolicyDecision:
    policy, source = resolve_policy(explicit, request)
    if policy == "off":
        return PolicyDecision(PLAIN, policy, source, f"automl_policy off ({source}): running one plain training.")
    if not skill.automl_enabled:
        return PolicyDecision(PLAIN, policy, source,
                              f"AutoML is disabled for skill '{skill.info.get('name', skill.path)}' "
                              "(automl_enabled is not true in skill_info.yaml): running one plain training.")
    problems = packaging_problems(skill)
    if problems:
        return PolicyDecision(PLAIN, policy, source,
                              "AutoML is enabled for this skill but not runnable until schemas are generated "
                              f"({'; '.join(problems)}; run `hpo schemas generate`): running one plain training.")
    return PolicyDecision(SWEEP, policy, source, f"automl_policy on ({source}): running a hyperparameter sweep.")


def packaging_problems(skill: SkillDir) -> list[str]:
    """Why the packaged train schema and template cannot drive a sweep (empty when both exist and parse).

    Existence is not enough: a half-written or hand-edited file that does not parse would fail the sweep
    after launch, so it is read here, the way the sweep will read it.
    """
    problems = []
    for path, present, read in ((skill.schema_path("train"), skill.has_schema("train"), skill.schema),
                                (skill.template_path("train"), skill.has_template("train"), skill.template)):
        if not present:
            problems.append(f"missing: {path}")
            continue
        try:
            read("train")
        except SchemaError as error:
            problems.append(f"{path} does not parse: {error}")
    return problems
