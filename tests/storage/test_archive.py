"""Safe extraction: unsafe members are refused by name, corrupt archives are reported, nothing escapes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from skillkit.archive import content_root, safe_extract
from skillkit.errors import DataError


def _archive(path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> Path:
    payloads = payloads or {}
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = payloads.get(member.name)
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _typed(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def test_good_archive_extracts_files_and_counts(tmp_path: Path) -> None:
    top = _typed("images", tarfile.DIRTYPE)
    archive = _archive(
        tmp_path / "images.tar.gz",
        [top, _file("images/a.png"), _file("images/sub/b.png"), _file("./images/c.png")],
        {"images/a.png": b"aaa", "images/sub/b.png": b"bb", "./images/c.png": b"c"},
    )
    result = safe_extract(archive, tmp_path / "out")
    assert (result.files, result.bytes) == (3, 6)
    assert (tmp_path / "out" / "images" / "sub" / "b.png").read_bytes() == b"bb"
    assert content_root(tmp_path / "out") == tmp_path / "out" / "images"


@pytest.mark.parametrize(
    ("member", "payload", "match"),
    [
        (_file("../escape.txt"), b"x", r"member '\.\./escape\.txt' contains '\.\.'"),
        (_file("images/../../escape.txt"), b"x", r"member 'images/\.\./\.\./escape\.txt' contains '\.\.'"),
        (_file("/etc/evil.txt"), b"x", r"member '/etc/evil\.txt' has an absolute path"),
        (_typed("images/link", tarfile.SYMTYPE, "/etc/passwd"), None,
         r"member 'images/link' is a symbolic link \(to '/etc/passwd'\)"),
        (_typed("images/hard", tarfile.LNKTYPE, "images/a.png"), None, r"member 'images/hard' is a hard link"),
        (_typed("images/dev", tarfile.CHRTYPE), None, r"member 'images/dev' is a device node"),
        (_typed("images/blk", tarfile.BLKTYPE), None, r"member 'images/blk' is a device node"),
        (_typed("images/fifo", tarfile.FIFOTYPE), None, r"member 'images/fifo' is a FIFO"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "chardev", "blockdev", "fifo"],
)
def test_unsafe_member_is_refused(tmp_path: Path, member: tarfile.TarInfo, payload: bytes | None, match: str) -> None:
    members = [_file("images/a.png"), member]
    payloads = {"images/a.png": b"ok"}
    if payload is not None:
        payloads[member.name] = payload
    archive = _archive(tmp_path / "bad.tar.gz", members, payloads)
    with pytest.raises(DataError, match=rf"archive s3://b/data/bad\.tar\.gz: {match}"):
        safe_extract(archive, tmp_path / "out" / "x", source="s3://b/data/bad.tar.gz")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out" / "escape.txt").exists()


def test_symlink_then_file_through_it_never_writes_outside(tmp_path: Path) -> None:
    """The classic attack: a link to a folder outside, then a file 'inside' the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _archive(
        tmp_path / "attack.tar.gz",
        [_typed("images", tarfile.SYMTYPE, str(outside)), _file("images/planted.txt")],
        {"images/planted.txt": b"gotcha"},
    )
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [b"", b"definitely not a tarball", None],
    ids=["empty", "garbage", "truncated"],
)
def test_corrupt_archive_is_a_data_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "images.tar.gz"
    if content is None:  # a real archive cut in half
        good = _archive(tmp_path / "good.tar.gz", [_file("a.bin")], {"a.bin": bytes(range(256)) * 400})
        data = good.read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"archive s3://b/images\.tar\.gz is corrupt or not a tar archive"):
        safe_extract(path, tmp_path / "out", source="s3://b/images.tar.gz")
