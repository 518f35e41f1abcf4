"""Safe extraction of dataset archives (`.tar.gz`, `.tgz`, `.tar`) fetched from object storage.

An archive from a bucket is untrusted input: a member named `../../.bashrc`, `/etc/passwd`, a symlink to
`/` followed by a file "inside" it, or a device node would write outside the cache or plant something
there. We read the archive as a stream, check each member before writing it, and write regular files
and folders ourselves (no owners, no modes beyond the umask, no links, no devices). The first unsafe member
stops extraction with a `DataError` naming the archive and the member; callers extract into a temporary
folder they delete on failure, so nothing of a refused archive survives.

One decompression pass: big datasets are tens of GB, so we do not list members first and extract later.

Decompression bombs: a few kB of gzip can expand to terabytes or to millions of empty files. Extraction
stops with a `DataError` (naming the archive, the limit and how to raise it) before writing the member that
would cross any of these limits (`ExtractionLimits`; each can be changed with its environment variable):

* `HPO_ARCHIVE_MAX_MEMBERS` (default 10 million): files and folders in one archive (COCO train2017 has
  118k images);
* `HPO_ARCHIVE_MAX_BYTES` (default 1 TiB): total uncompressed size;
* `HPO_ARCHIVE_MAX_RATIO` (default 200): uncompressed bytes per compressed byte read, checked once more
  than 256 MiB came out (JPEG and PNG images barely compress; annotation JSON compresses about 10:1);
* `HPO_ARCHIVE_MIN_FREE_BYTES` (default 1 GiB): the free space the extraction must leave on the target disk.

This duplicates the member rules of `mask2former/data/archive.py` on purpose: the engine may not import
the trainer (DESIGN.md section 2). The rules are the same; keep them in step.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from skillkit.errors import DataError

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar")


def is_archive_name(name: str) -> bool:
    """Whether a file name is one of the archive kinds we extract (by suffix, case-insensitive)."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class ExtractionLimits:
    """Limits against decompression bombs (see the module docstring); `from_env()` reads the overrides."""

    max_members: int = 10_000_000
    max_bytes: int = 1 << 40
    max_ratio: float = 200.0
    min_free_bytes: int = 1 << 30
    ratio_checked_after_bytes: int = 256 << 20  # small outputs are never bombs, whatever their ratio

    ENV = {"max_members": "HPO_ARCHIVE_MAX_MEMBERS", "max_bytes": "HPO_ARCHIVE_MAX_BYTES",
           "max_ratio": "HPO_ARCHIVE_MAX_RATIO", "min_free_bytes": "HPO_ARCHIVE_MIN_FREE_BYTES"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExtractionLimits:
        env = os.environ if env is None else env
        values: dict[str, float | int] = {}
        for field_name, variable in cls.ENV.items():
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:
                value = float(raw) if field_name == "max_ratio" else int(float(raw))
            except ValueError:
                raise DataError(f"environment variable {variable} must be a number, got {raw!r}.") from None
            if value < 0:
                raise DataError(f"environment variable {variable} must be >= 0, got {raw!r}.")
            values[field_name] = value
        return cls(**values)  # type: ignore[arg-type]


def _limit_error(label: str, what: str, field_name: str) -> DataError:
    variable = ExtractionLimits.ENV[field_name]
    return DataError(f"archive {label} refused as a possible decompression bomb: {what}. If the archive is genuine, "
                     f"raise the limit with the environment variable {variable}.")


@dataclass(frozen=True)
class ExtractionResult:
    """What one extraction produced: `files` regular files totalling `bytes` bytes under the folder."""

    files: int
    bytes: int


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be extracted, or None when it is a plain file or folder with a safe name."""
    name = member.name
    if member.issym() or member.islnk():
        kind = "a symbolic link" if member.issym() else "a hard link"
        return f"is {kind} (to {member.linkname!r}); links are refused in dataset archives"
    if member.ischr() or member.isblk():
        return "is a device node; only files and folders are allowed"
    if member.isfifo():
        return "is a FIFO; only files and folders are allowed"
    if not (member.isfile() or member.isdir()):
        return f"has the unsupported type {member.type!r}; only files and folders are allowed"
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path; members must be relative to the archive root"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "contains '..'; members may not point outside the archive root"
    return None


def safe_extract(archive: Path, destination: Path, *, source: str | None = None,
                 limits: ExtractionLimits | None = None) -> ExtractionResult:
    """Extract `archive` into the folder `destination` (created), refusing unsafe members and bombs.

    `source` is what messages call the archive (e.g. its `s3://` URI); defaults to the local path. `limits`
    defaults to `ExtractionLimits.from_env()`. Raises `DataError` for an unsafe member, a limit crossed, or a
    corrupt / non-tar file. On error the caller must remove `destination`, which may hold the members
    extracted before the problem was found.
    """
    label = source or str(archive)
    limits = limits or ExtractionLimits.from_env()
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    files = 0
    members = 0
    total = 0
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                problem = member_problem(member)
                if problem is not None:
                    raise DataError(f"archive {label}: member {member.name!r} {problem}.")
                members += 1
                if members > limits.max_members:
                    raise _limit_error(label, f"it holds more than {limits.max_members} members", "max_members")
                if member.isfile():
                    _check_size(label, total + member.size, root, member.size, limits)
                relative = PurePosixPath(*[part for part in member.name.split("/") if part not in ("", ".")])
                if not relative.parts:  # the archive root itself ("." or "./")
                    continue
                target = root.joinpath(*relative.parts)
                if not target.resolve().is_relative_to(root):  # belt and braces after the name checks
                    raise DataError(f"archive {label}: member {member.name!r} resolves outside the target folder.")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                stream = tar.extractfile(member)
                if stream is None:  # cannot happen for a regular file; refuse rather than guess
                    raise DataError(f"archive {label}: member {member.name!r} has no readable content.")
                with stream, open(target, "wb") as out:
                    written = total
                    while block := stream.read(1 << 20):
                        out.write(block)
                        written += len(block)
                        _check_ratio(label, written, raw.tell(), limits)
                files += 1
                total += member.size
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as error:
        raise DataError(
            f"archive {label} is corrupt or not a tar archive ({type(error).__name__}: {error}); "
            "re-create it with `tar czf NAME.tar.gz FOLDER/`."
        ) from None
    except OSError as error:
        raise DataError(f"archive {label} cannot be extracted into {destination}: {error}.") from None
    return ExtractionResult(files=files, bytes=total)


def _check_size(label: str, total_after: int, root: Path, member_size: int, limits: ExtractionLimits) -> None:
    """Refuse the next member (from its declared size) when it would cross the size or free-space limit."""
    if total_after > limits.max_bytes:
        raise _limit_error(label, f"its members add up to more than {limits.max_bytes} bytes uncompressed", "max_bytes")
    free = shutil.disk_usage(root).free
    if free - member_size < limits.min_free_bytes:
        raise _limit_error(label, f"extracting its next member ({member_size} bytes) would leave less than "
                                  f"{limits.min_free_bytes} bytes free on the disk of {root}", "min_free_bytes")


def _check_ratio(label: str, written: int, compressed_read: int, limits: ExtractionLimits) -> None:
    """Refuse to go on once the bytes written exceed `max_ratio` times the compressed bytes read so far."""
    if written > limits.ratio_checked_after_bytes and written > limits.max_ratio * max(compressed_read, 1):
        raise _limit_error(label, f"{written} bytes came out of the first {compressed_read} compressed bytes, a "
                                  f"ratio above {limits.max_ratio:g}", "max_ratio")


def content_root(folder: Path) -> Path:
    """The folder a spec should point at: an archive made with `tar czf images.tar.gz images/` holds one
    top-level folder, and annotation file names are relative to that inner folder (same rule as the
    trainer's own archive cache)."""
    entries = list(folder.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder
