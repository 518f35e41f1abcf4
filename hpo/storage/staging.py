"""Staging: make every `s3://` data source of a resolved spec local, once, before any trial starts.

The engine calls `stage_spec_sources` with the resolved spec and the dotted keys that hold data paths
(`data_paths_for(skill_info, action)` gives them from the skill's table). For each `s3://` value:

1. Every source is looked up first (HEAD, or a listing for a prefix). A missing object, a missing bucket,
   denied access or missing credentials stop staging here, naming each URI and its cause, before a
   single byte is downloaded and long before any trial starts; so does a cache disk too small to hold
   what is to be fetched.
2. Each distinct source is fetched into the shared cache (`hpo.storage.cache`) unless an entry for the
   same URI and ETag exists already: a single object is downloaded, an archive (`images.tar.gz`,
   `images_panoptic.tar.gz`) is downloaded and safely extracted (`skillkit.archive`), a prefix is
   mirrored. A per-entry file lock makes concurrent sweeps fetch each version once.
3. The returned spec has the local paths in place of the URIs (the extracted folder for an archive), and
   `<workspace>/data_staging.json` records, per source: URI, version, staged path, bytes, file count,
   seconds and whether the cache served it. Local values are left as they are.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hpo.storage.cache import CONTENT, StagingCache, default_cache_dir
from hpo.storage.router import Storage
from hpo.storage.sources import PREFIX, SourceInfo, describe_source
from hpo.storage.uri import is_s3_uri, parse_s3_uri
from skillkit.archive import content_root, safe_extract
from skillkit.errors import DataError, StorageError, UserError
from skillkit.files import STAGING_FILE, atomic_write_text
from skillkit.redaction import redact
from skillkit.spec.dotted import get_dotted, set_dotted

logger = logging.getLogger(__name__)

# How often a fill restarts when the object changed while we downloaded it.
_MAX_VERSION_RACES = 3
# Parallel downloads when a source is a prefix (a folder of objects).
_PREFIX_THREADS = 8


@dataclass(frozen=True)
class StagedSource:
    """One staged source, as recorded in `data_staging.json`."""

    uri: str
    spec_keys: tuple[str, ...]
    kind: str  # "archive", "file" or "prefix"
    version: str  # ETag of the object, or a digest of the prefix listing
    source_bytes: int  # bytes in object storage
    staged_path: str
    bytes: int  # bytes of the staged files on local disk
    files: int
    seconds: float
    cache_hit: bool


@dataclass(frozen=True)
class StagingReport:
    """The result of staging: the spec with local paths, and what was staged."""

    spec: dict[str, Any]
    sources: tuple[StagedSource, ...]
    cache_dir: str
    record_path: str | None
    seconds: float = 0.0
    local_keys: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "staged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cache_dir": self.cache_dir,
            "seconds": round(self.seconds, 3),
            "sources": [
                {**asdict(source), "spec_keys": list(source.spec_keys), "seconds": round(source.seconds, 3)}
                for source in self.sources
            ],
            "local_keys": list(self.local_keys),
        }

    @property
    def paths(self) -> dict[str, str]:
        """Dotted spec key -> staged local path, for every staged key."""
        return {key: source.staged_path for source in self.sources for key in source.spec_keys}


def data_paths_for(skill_info: Mapping[str, Any], action: str) -> list[str]:
    """The dotted spec keys that may hold data locations for `action`: the action's declared inputs and
    the `data_sources` table of `skill_info.yaml`, in a stable order."""
    keys: list[str] = []
    inputs = ((skill_info.get("actions") or {}).get(action) or {}).get("inputs") or {}
    table = (skill_info.get("data_sources") or {}).get(action) or {}
    for key in list(inputs) + list(table):
        if key not in keys:
            keys.append(key)
    return keys


def _uris_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if is_s3_uri(value) else []
    if isinstance(value, (list, tuple)):
        return [item for item in value if is_s3_uri(item)]
    return []


def collect_s3_sources(spec: Mapping[str, Any], data_paths: Iterable[str]) -> dict[str, list[str]]:
    """URI -> the dotted keys that name it, for every `s3://` value at `data_paths` (missing keys skipped)."""
    found: dict[str, list[str]] = {}
    for key in data_paths:
        value = get_dotted(spec, key, None)
        for uri in _uris_in(value):
            parse_s3_uri(uri)  # a malformed URI is reported now, with its key below
            found.setdefault(uri, []).append(key)
    return found


def _check_all(sources: Mapping[str, list[str]], storage: Storage) -> dict[str, SourceInfo]:
    """Look every source up; one error listing every unreadable source (and why) if any fails."""
    infos: dict[str, SourceInfo] = {}
    failed: list[tuple[str, str, StorageError]] = []
    for uri, keys in sources.items():
        try:
            infos[uri] = describe_source(uri, storage)
        except StorageError as error:
            failed.append((uri, ", ".join(keys), error))
    if failed:
        count = "a data source" if len(failed) == 1 else f"{len(failed)} data sources"
        raise StorageError(redact(f"cannot stage {count}, so no trial was started: " + _problems(failed)))
    return infos


def _problems(failed: list[tuple[str, str, StorageError]]) -> str:
    """Each failure once; a cause several sources share (no credentials, access denied) is said once, with
    the sources it stopped."""
    by_reason: dict[str, list[tuple[str, str, StorageError]]] = {}
    for item in failed:
        by_reason.setdefault(getattr(item[2], "reason", None) or str(item[2]), []).append(item)
    parts = []
    for reason, items in by_reason.items():
        if len(items) == 1:
            parts.append(f"{items[0][1]}: {items[0][2]}")
        else:
            which = "; ".join(f"{keys} ({uri})" for uri, keys, _ in items)
            parts.append(f"{reason[0].upper()}{reason[1:].rstrip('.')}, for {which}.")
    return " ".join(parts)


def _check_free_space(infos: Mapping[str, SourceInfo], cache: StagingCache) -> None:
    """Refuse to start when the cache's disk cannot even hold what is to be fetched.

    The estimate is a lower bound: an archive needs its own size and at least as much again extracted
    (dataset images are already compressed, so gzip gains little), a file or prefix its size.
    """
    needed = sum(
        info.size * (2 if info.is_archive else 1)
        for info in infos.values()
        if cache.lookup(cache.key(info.uri, info.version, info.size)) is None
    )
    cache.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache.root).free
    if needed > free:
        raise StorageError(
            f"cannot stage the data sources, so no trial was started: they need at least {needed} bytes in "
            f"the staging cache {cache.root}, but only {free} bytes are free there; free some space or point "
            "the cache elsewhere (cache_dir / $HPO_DATA_CACHE)."
        )


def _fill(uri: str, info: SourceInfo, folder: Path, storage: Storage) -> tuple[str, int, int, str]:
    """Fetch one source into `folder/content`; returns (kind, files, bytes, staged path relative to
    the entry folder)."""
    content = folder / CONTENT
    if info.kind == PREFIX:
        base = parse_s3_uri(uri)
        prefix_length = len(f"s3://{base.bucket}/{base.dir_prefix}")
        items = storage.s3.list(uri)
        for item in items:
            relative = item.uri[prefix_length:]
            if ".." in relative.split("/") or relative.startswith("/"):
                raise DataError(f"prefix {uri}: object {item.uri} has a key that points outside the prefix.")
        # Folders of many small images: fetch several at once (boto3 clients are thread-safe).
        with ThreadPoolExecutor(max_workers=_PREFIX_THREADS) as pool:
            for _done in pool.map(lambda item: storage.s3.download(item.uri, content / item.uri[prefix_length:]), items):
                pass
        return "prefix", len(items), sum(item.size for item in items), CONTENT
    name = parse_s3_uri(uri).name
    if info.is_archive:
        downloaded = folder / name
        storage.s3.download(uri, downloaded)
        result = safe_extract(downloaded, content, source=uri)
        downloaded.unlink()
        staged = content_root(content)
        return "archive", result.files, result.bytes, str(staged.relative_to(folder))
    storage.s3.download(uri, content / name)
    return "file", 1, info.size, f"{CONTENT}/{name}"


def _stage_one(
    uri: str, keys: list[str], info: SourceInfo, cache: StagingCache, storage: Storage
) -> StagedSource:
    started = time.monotonic()
    for _race in range(_MAX_VERSION_RACES):
        key = cache.key(uri, info.version, info.size)
        entry = cache.lookup(key)
        hit = entry is not None
        if entry is None:
            with cache.lock(key):
                entry = cache.lookup(key)  # another process may have filled it while we waited
                hit = entry is not None
                if entry is None:
                    folder = cache.new_fill(key)
                    try:
                        kind, files, total, relative = _fill(uri, info, folder, storage)
                        now = describe_source(uri, storage)
                        if now.version != info.version:  # rewritten while we read it: start over
                            logger.warning("%s changed while it was being staged; fetching it again", uri)
                            info = now
                            shutil.rmtree(folder, ignore_errors=True)
                            continue
                        entry = cache.publish(
                            key,
                            folder,
                            {
                                "uri": uri, "version": info.version, "source_bytes": info.size, "kind": kind,
                                "files": files, "bytes": total, "staged_relpath": relative,
                                "filled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            },
                        )
                    except BaseException:
                        shutil.rmtree(folder, ignore_errors=True)
                        raise
        manifest = entry.manifest
        staged_path = entry.path / manifest["staged_relpath"]
        logger.info(
            "staged %s -> %s (%s, %d files%s)", uri, staged_path, manifest["kind"], manifest["files"],
            ", cache hit" if hit else "",
        )
        return StagedSource(
            uri=uri, spec_keys=tuple(keys), kind=manifest["kind"], version=info.version,
            source_bytes=info.size, staged_path=str(staged_path), bytes=int(manifest["bytes"]),
            files=int(manifest["files"]), seconds=time.monotonic() - started, cache_hit=hit,
        )
    raise StorageError(f"cannot stage {uri}: the object kept changing while it was being downloaded.")


def _replace_uris(value: Any, staged: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return staged.get(value, value)
    if isinstance(value, list):
        return [staged.get(item, item) if isinstance(item, str) else item for item in value]
    return value


def write_record(report: StagingReport, workspace: str | os.PathLike) -> Path:
    """Write `<workspace>/data_staging.json` atomically (credentials scrubbed, though none belong there)."""
    return atomic_write_text(Path(workspace) / STAGING_FILE,
                             redact(json.dumps(report.to_dict(), indent=2, sort_keys=True)) + "\n")


def stage_spec_sources(
    spec: Mapping[str, Any],
    *,
    data_paths: Sequence[str],
    cache_dir: str | os.PathLike | None = None,
    workspace: str | os.PathLike | None = None,
    storage: Storage | None = None,
    lock_timeout: float | None = None,
) -> StagingReport:
    """Stage every `s3://` value at `data_paths` of `spec`; return a copy of the spec with local paths.

    `cache_dir` defaults to `default_cache_dir()`; `workspace` (a local folder) receives
    `data_staging.json` when given. Raises `StorageError` (unreadable sources, listed all at once,
    before any download) or `DataError` (unsafe or corrupt archive, naming the URI and member).
    """
    started = time.monotonic()
    storage = storage or Storage()
    cache = StagingCache(cache_dir if cache_dir is not None else default_cache_dir(), lock_timeout=lock_timeout)
    try:
        sources = collect_s3_sources(spec, data_paths)
    except StorageError as error:
        raise StorageError(f"a data path in the spec is not a valid S3 URI: {error}") from None
    local_keys = tuple(
        key for key in data_paths if key not in {k for keys in sources.values() for k in keys}
        and get_dotted(spec, key, None) not in (None, "", [])
    )
    infos = _check_all(sources, storage)
    _check_free_space(infos, cache)
    staged: list[StagedSource] = []
    for uri, keys in sources.items():
        try:
            staged.append(_stage_one(uri, keys, infos[uri], cache, storage))
        except UserError as error:
            kind = type(error)
            raise kind(redact(f"staging {', '.join(keys)} stopped before any trial started: {error}")) from None
    new_spec = copy.deepcopy(dict(spec))
    paths = {source.uri: source.staged_path for source in staged}
    for source in staged:
        for key in source.spec_keys:
            set_dotted(new_spec, key, _replace_uris(get_dotted(new_spec, key), paths))
    report = StagingReport(
        spec=new_spec, sources=tuple(staged), cache_dir=str(cache.root), record_path=None,
        seconds=time.monotonic() - started, local_keys=local_keys,
    )
    if workspace is not None:
        record = write_record(report, workspace)
        report = StagingReport(
            spec=new_spec, sources=report.sources, cache_dir=report.cache_dir, record_path=str(record),
            seconds=report.seconds, local_keys=local_keys,
        )
    return report
