"""Storage for the engine: local paths and `s3://` URIs behind one interface, data staging, S3 workspaces.

- `Storage` routes each location to the local or S3 backend (`exists`, `size`, `etag`, `stat`, `list`,
  `download`, `upload`, `delete`), with retries, multipart transfers and progress bars.
- `stage_spec_sources` makes a spec's `s3://` data local once per content version, before any trial.
- `WorkspaceMirror` keeps a local sweep workspace and an `s3://` prefix in step (push / pull for resume).
- `pyarrow_s3_filesystem` (Ray Tune storage) and `mlflow_s3_environment` (MLflow artifacts) point other
  libraries at the same endpoint.
- `run_preflight` checks credentials and every input before `hpo plan` / `hpo run`.
"""

from hpo.storage.base import ObjectInfo, StorageBackend
from hpo.storage.cache import StagingCache, default_cache_dir
from hpo.storage.external import mlflow_s3_environment, pyarrow_s3_filesystem, ray_storage_path
from hpo.storage.local import LocalBackend
from hpo.storage.preflight import PreflightReport, PreflightRow, render_preflight, run_preflight
from hpo.storage.progress import TransferProgress
from hpo.storage.retry import RetryPolicy
from hpo.storage.router import Storage
from hpo.storage.s3 import S3Backend, TransferSettings, resolve_endpoint
from hpo.storage.sources import SourceInfo, describe_source
from hpo.storage.staging import (
    StagedSource,
    StagingReport,
    collect_s3_sources,
    data_paths_for,
    stage_spec_sources,
)
from hpo.storage.sync import SyncReport, WorkspaceMirror, default_mirror_dir
from hpo.storage.uri import S3Location, is_s3_uri, join, parse_s3_uri

__all__ = [
    "LocalBackend", "ObjectInfo", "PreflightReport", "PreflightRow", "RetryPolicy",
    "S3Backend", "S3Location", "SourceInfo", "StagedSource", "StagingCache", "StagingReport", "Storage",
    "StorageBackend", "SyncReport", "TransferProgress", "TransferSettings", "WorkspaceMirror",
    "collect_s3_sources", "data_paths_for", "default_cache_dir", "default_mirror_dir", "describe_source",
    "is_s3_uri", "join", "mlflow_s3_environment", "parse_s3_uri", "pyarrow_s3_filesystem", "ray_storage_path",
    "render_preflight", "resolve_endpoint", "run_preflight", "stage_spec_sources",
]
