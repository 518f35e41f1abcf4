"""The sweep config and nothing else: `load_sweep_config` validates a sweep YAML (JSON Schema in
`sweep_schema.json`, then the rules a schema cannot say) into one frozen `SweepConfig`. The driver that runs a
sweep (run/plan/resume/status, live view, baseline, summary, workspace) is `hpo.driver`.
"""

from hpo.sweep.config import SweepConfig, load_sweep_config, sweep_config_from_dict

__all__ = ["SweepConfig", "load_sweep_config", "sweep_config_from_dict"]
