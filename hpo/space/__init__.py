"""Search-space compiler: TAO-format action schemas → a backend-neutral description → Optuna / Ray Tune.

    from hpo.space import compile_space
    space = compile_space(schema, selection=None, custom_param_ranges=None, pinned=None)
    space.sample(numpy.random.default_rng(0))     # random draw, option weights honoured
    space.suggest(optuna_trial)                   # define-by-run
    space.optuna_distributions() / space.ray_param_space()   # unconditional spaces only
    space.to_yaml() / SearchSpace.from_yaml(text)

The rules (bounds, scales, conditions, weights, list kinds) are documented in `hpo/space/README.md`.
"""

from hpo.space.compile import compile_space
from hpo.space.ir import KINDS, Parameter
from hpo.space.reader import SchemaInfo, load_schema_file, read_schema
from hpo.space.space import SearchSpace, format_override_value

__all__ = [
    "KINDS",
    "Parameter",
    "SchemaInfo",
    "SearchSpace",
    "compile_space",
    "format_override_value",
    "load_schema_file",
    "read_schema",
]
