"""Engine-side spec work: job chains (which parent file a job inherits) and data sources per action.

Loading and validating a spec is shared with the trainer and lives in `skillkit.spec`.
"""

from hpo.spec.chain import choose_checkpoint, resolve_job_chain
from hpo.spec.datasources import resolve_data_sources

__all__ = ["choose_checkpoint", "resolve_data_sources", "resolve_job_chain"]
