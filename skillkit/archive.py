"""Safe extraction of dataset archives (`.tar.gz`, `.tgz`, `.tar`) fetched from object storage.

An archive from a bucket is untrusted input: a member named `../../.bashrc`, `/etc/passwd`, a symlink to
`/` followed by a file "inside" it, or a device node would write outside the cache or plant something
there. We read the archive as a stream, check each member before writing it, and write regular files
and folders ourselves (no owners, no modes beyond the umask, no links, no devices). The first unsafe member
stops extraction with a `DataError` naming the archive and the member; callers extract into a temporary
folder they delete on failure, so nothing of a refused archive survives.

One decompression pass: big datasets are tens of GB, so we do not list members first and extract later.

This duplicates the member rules of `mask2former/data/archive.py` on purpose: the engine may not import
the trainer (DESIGN.md section 2). The rules are the same; keep them in step.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from skillkit.errors import DataError

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar")


def is_archive_name(name: str) -> bool:
    """Whether a file name is one of the archive kinds we extract (by suffix, case-insensitive)."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


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


def safe_extract(archive: Path, destination: Path, *, source: str | None = None) -> ExtractionResult:
    """Extract `archive` into the folder `destination` (created), refusing unsafe members.

    `source` is what messages call the archive (e.g. its `s3://` URI); defaults to the local path.
    Raises `DataError` for an unsafe member or a corrupt / non-tar file. On error the caller must remove
    `destination`, which may hold the members extracted before the problem was found.
    """
    label = source or str(archive)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    files = 0
    total = 0
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                problem = member_problem(member)
                if problem is not None:
                    raise DataError(f"archive {label}: member {member.name!r} {problem}.")
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
                    shutil.copyfileobj(stream, out, length=1 << 20)
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


def content_root(folder: Path) -> Path:
    """The folder a spec should point at: an archive made with `tar czf images.tar.gz images/` holds one
    top-level folder, and annotation file names are relative to that inner folder (same rule as the
    trainer's own archive cache)."""
    entries = list(folder.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder
