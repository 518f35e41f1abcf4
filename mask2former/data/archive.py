"""`.tar.gz` dataset inputs, extracted once into a content-keyed cache, safely.

Spec paths (`img_dir`, `panoptic_dir`, `root_dir`) may name a folder or a `.tar.gz`. `resolve_folder`
returns a folder either way. An archive is extracted at most once per content: the cache key is the
archive's sha256, and a small index remembers (path, size, mtime) → sha256 so an unchanged archive is not
re-hashed on every trial.

Safety: extraction uses the engine's `skillkit.archive.safe_extract` (one set of member rules for S3
staging and local caches): absolute paths, `..` components, symlinks, hard links, devices and FIFOs are
refused with a DataError naming the archive and the member, and a refused archive leaves nothing in the cache.

Concurrency: many trials may resolve the same archive at once. A per-key lock file serialises them, and
extraction goes to a temporary folder in the cache that is renamed into place only when complete, so a
reader never sees a half-extracted tree (even if a process dies mid-way).

Layout: if an archive holds exactly one top-level folder and nothing else (`tar czf images.tar.gz images/`),
the folder returned is that inner folder, so annotation file names stay relative to the image folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skillkit.archive import safe_extract
from skillkit.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
CACHE_ENV = "MASK2FORMER_CACHE"
_DONE_MARKER = ".mask2former_extracted"


def cache_root() -> Path:
    """`$MASK2FORMER_CACHE` if set, else `~/.cache/mask2former/extract`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mask2former" / "extract"


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def resolve_folder(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a folder for `path`: the folder itself, or the extracted contents of a `.tar.gz`.

    Raises DataError when the path does not exist, is neither a folder nor a `.tar.gz`, or the archive is
    unsafe or corrupt.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist (expected a folder or a .tar.gz archive)")
    if not is_archive(path):
        raise DataError(f"dataset path {path} is a file but not a .tar.gz archive; give a folder or a .tar.gz")
    return extract_archive(path, cache_dir=cache_dir)


def extract_archive(archive: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract `archive` into the cache (once per content) and return the folder to use."""
    archive = Path(archive).resolve()
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    root.mkdir(parents=True, exist_ok=True)
    digest = archive_digest(archive, cache_dir=root)
    target = root / digest[:32]
    if not (target / _DONE_MARKER).is_file():
        with _locked(root / f"{digest[:32]}.lock"):
            if not (target / _DONE_MARKER).is_file():
                _extract_atomically(archive, target, root)
    return _unwrap_single_folder(target)


def archive_digest(archive: Path, *, cache_dir: Path) -> str:
    """sha256 of the archive's bytes, memoised by (absolute path, size, mtime_ns)."""
    stat = archive.stat()
    index_dir = cache_dir / "index"
    index_dir.mkdir(parents=True, exist_ok=True)
    path_key = hashlib.sha256(str(archive).encode()).hexdigest()[:32]
    index_file = index_dir / f"{path_key}.json"
    stamp = {"path": str(archive), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        cached = json.loads(index_file.read_text())
        if {k: cached.get(k) for k in stamp} == stamp and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    except (OSError, ValueError):
        pass
    hasher = hashlib.sha256()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    digest = hasher.hexdigest()
    with tempfile.NamedTemporaryFile("w", dir=index_dir, suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps({**stamp, "sha256": digest}))
    os.replace(tmp.name, index_file)  # atomic: concurrent readers see the old or the new entry
    return digest


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _extract_atomically(archive: Path, target: Path, root: Path) -> None:
    """Extract into a temp folder with the engine's safe extractor (one set of member rules: no links,
    devices, absolute paths or '..'), then rename into place so concurrent readers never see a half."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        safe_extract(archive, staging)
        (staging / _DONE_MARKER).write_text(str(archive))
        if target.exists():  # a stale, unfinished extraction (no marker): replace it
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _unwrap_single_folder(target: Path) -> Path:
    entries = [p for p in target.iterdir() if p.name != _DONE_MARKER]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target
