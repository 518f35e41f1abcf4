"""Which parameters the chosen algorithm can search, decided once before launch (`hpo plan` and `hpo run`
both go through `prepare_sweep`, so whatever cannot run is refused before any trial starts).

Every sampler gets the space's static form (`hpo.space.static`), so relations never force a parameter out of
a joint model. What remains is a short list of what an algorithm cannot do with a parameter:

- pbt cannot search cold parameters (no `x_pbt: hot`): PBT changes values mid-training, and a cold one
  changes the checkpoint's shapes or the data pipeline's meaning.
- cmaes cannot search parameters drawn from choices (categoricals, booleans, subsets, optional lists): CMA-ES
  models continuous and integer dimensions only; Optuna would draw them with its random fallback.

PBT therefore searches hot parameters only: every trial of the population shares the same cold values, so
an exploit always copies a checkpoint whose shapes and data fit the exploiting trial's spec, and the explore
step (`SearchSpace.perturb`) never sees a cold parameter.

A parameter of the DEFAULT selection that the algorithm cannot search is held at its base-spec value (the
schema default unless the base spec sets it); the plan lists it with the reason, and the sweep runs. A
parameter the user selected explicitly (`search_space.parameters`) is refused with one message: the sweep
would not search what was asked. A space left with nothing to search is refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpo.space import SearchSpace, static
from hpo.sweep.config import SweepConfig
from skillkit.errors import SweepConfigError
from skillkit.spec import get_dotted

COLD_REASON = ("cold: PBT changes values in the middle of training, and a cold parameter changes the checkpoint's "
               "shapes or the data pipeline's meaning (PBT searches parameters marked x_pbt: hot)")
CHOICE_REASON = ("drawn from choices: CMA-ES models continuous and integer dimensions only, so Optuna would draw it "
                 "with its random fallback instead of the joint model")


@dataclass(frozen=True)
class HeldParameter:
    """A default parameter the algorithm cannot search: it keeps `value` (from the base spec) in every trial."""

    name: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "reason": self.reason}


def unsearchable(config: SweepConfig, space: SearchSpace) -> dict[str, str]:
    """Parameter name → why `config`'s algorithm cannot search it (empty when it can search them all)."""
    algorithm = config.algorithm
    out: dict[str, str] = {}
    if algorithm.scheduler == "pbt":
        out.update({p.name: COLD_REASON for p in space.parameters if not p.hot})
    if algorithm.sampler == "cmaes":
        owners = {d.owner for d in space.static_dimensions() if d.kind == static.CATEGORICAL}
        out.update({name: CHOICE_REASON for name in space.names if name in owners and name not in out})
    return out


def fit_space(config: SweepConfig, space: SearchSpace, *, base_spec: Mapping[str, Any],
              recompile: Callable[[Sequence[str]], SearchSpace]) -> tuple[SearchSpace, list[HeldParameter]]:
    """The space the algorithm searches and the default parameters held out of it (see module docstring).

    `recompile(names)` compiles the schema again with exactly `names` selected (so relations to a held parent
    use its fixed value). Raises SweepConfigError for explicitly selected parameters that cannot be searched.
    """
    blocked = unsearchable(config, space)
    if not blocked:
        return space, []
    algorithm = f"algorithm '{config.algorithm.name}' on backend '{config.backend}'"
    if config.search_space.parameters is not None:
        listed = "; ".join(f"{name} ({reason})" for name, reason in blocked.items())
        raise SweepConfigError(
            f"{algorithm} cannot search {len(blocked)} of the parameters listed in search_space.parameters: {listed}. "
            "Remove them from search_space.parameters (they then keep their base-spec value), or choose another "
            "algorithm."
        )
    kept = [name for name in space.names if name not in blocked]
    if not kept:
        raise SweepConfigError(
            f"{algorithm} can search none of the default parameters ({'; '.join(sorted(set(blocked.values())))}); "
            "choose another algorithm or list searchable parameters in search_space.parameters."
        )
    held = [HeldParameter(name, get_dotted(dict(base_spec), name, space[name].default), reason)
            for name, reason in blocked.items()]
    return recompile(kept), held


def held_note(held: HeldParameter) -> str:
    return f"{held.name} stays at {held.value!r} in every trial: {held.reason}."
