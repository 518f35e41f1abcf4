"""The on-disk cache of staged data: one entry per (URI, content version), published atomically.

Layout under the cache root:

    entries/<key>/manifest.json   what the entry holds (URI, version, kind, files, bytes, when)
    entries/<key>/content/...     the file, the extracted archive or the mirrored prefix
    locks/<key>.lock              held while one process fills the entry
    tmp/<key>.<random>/           an entry being filled; renamed to entries/<key> when complete

`<key>` hashes the URI and the version (ETag or listing digest) together with the size, so a rewritten
object gets a new entry and is fetched again, while an unchanged one is a cache hit for every later sweep.
An entry exists under `entries/` only once complete (rename is atomic on one filesystem), so readers never
see partial data, and a process killed mid-download leaves only a `tmp/` folder that the next fill of the
same key removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from hpo.storage.locking import FileLock

MANIFEST = "manifest.json"
CONTENT = "content"
CACHE_ENV = "HPO_DATA_CACHE"


def default_cache_dir() -> Path:
    """`$HPO_DATA_CACHE` if set, else `~/.cache/hpo/data`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hpo" / "data"


@dataclass(frozen=True)
class CacheEntry:
    """A complete entry: its folder and the manifest written when it was filled."""

    path: Path
    manifest: dict

    @property
    def content(self) -> Path:
        return self.path / CONTENT


class StagingCache:
    """Entries keyed by (uri, version, size); see the module docstring for the layout and guarantees."""

    def __init__(self, root: str | os.PathLike, *, lock_timeout: float | None = None) -> None:
        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout

    @staticmethod
    def key(uri: str, version: str, size: int) -> str:
        return hashlib.sha256(f"{uri}\n{version}\n{size}".encode()).hexdigest()[:32]

    def entry_path(self, key: str) -> Path:
        return self.root / "entries" / key

    def lookup(self, key: str) -> CacheEntry | None:
        """The complete entry for `key`, or None."""
        path = self.entry_path(key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return CacheEntry(path=path, manifest=manifest)

    def lock(self, key: str) -> FileLock:
        return FileLock(self.root / "locks" / f"{key}.lock", timeout=self.lock_timeout)

    def new_fill(self, key: str) -> Path:
        """A fresh temporary entry folder (with an empty `content/`); removes leftovers of dead fills.

        Call with the key's lock held, so no live process owns the leftovers.
        """
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        for stale in tmp_root.glob(f"{key}.*"):
            shutil.rmtree(stale, ignore_errors=True)
        folder = tmp_root / f"{key}.{uuid.uuid4().hex[:8]}"
        (folder / CONTENT).mkdir(parents=True)
        return folder

    def publish(self, key: str, folder: Path, manifest: dict) -> CacheEntry:
        """Write the manifest into a filled temporary folder and rename it into place."""
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        target = self.entry_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an incomplete entry cannot exist (rename is atomic); a complete one wins
            shutil.rmtree(folder, ignore_errors=True)
        else:
            os.rename(folder, target)
        entry = self.lookup(key)
        assert entry is not None  # internal invariant: we just published it
        return entry
