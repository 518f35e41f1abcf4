"""Archive inputs: extracted once per content, atomically, and never outside the cache."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from mask2former.data import archive
from mask2former.data.archive import cache_root, extract_archive, resolve_folder
from skillkit.errors import DataError


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("member,message", [
    (("../escape.txt", b"x"), r"member '\.\./escape\.txt' contains '\.\.'"),
    (("images/../../escape.txt", b"x"), r"member 'images/\.\./\.\./escape\.txt' contains '\.\.'"),
    (("/tmp/absolute.txt", b"x"), r"member '/tmp/absolute\.txt' has an absolute path"),
    (_special("images/link.jpg", tarfile.SYMTYPE, "/etc/passwd"), r"member 'images/link\.jpg' is a symbolic link "
                                                                  r"\(to '/etc/passwd'\)"),
    (_special("images/hard.jpg", tarfile.LNKTYPE, "images/a.jpg"), r"member 'images/hard\.jpg' is a hard link"),
    (_special("images/fifo", tarfile.FIFOTYPE), r"member 'images/fifo' is a FIFO"),
    (_special("images/dev", tarfile.CHRTYPE), r"member 'images/dev' is a device node"),
])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, member, message):
    cache = tmp_path / "cache"
    bad = _tar(tmp_path / "bad.tar.gz", [("images/a.jpg", b"fine"), member])
    with pytest.raises(DataError, match=rf"archive .*bad\.tar\.gz: {message}"):
        resolve_folder(bad, cache_dir=cache)
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/absolute.txt").exists()
    leftovers = [p for p in cache.iterdir() if p.name not in ("index",) and not p.name.endswith(".lock")]
    assert leftovers == []  # no extracted or half-extracted folder remains


def test_extracted_once_and_keyed_by_content(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    members = [("images/a.jpg", b"A"), ("images/b.jpg", b"B")]
    first = _tar(tmp_path / "one.tar.gz", members)
    folder = extract_archive(first, cache_dir=cache)
    assert folder.name == "images" and sorted(p.name for p in folder.iterdir()) == ["a.jpg", "b.jpg"]

    calls = []
    real_extract = archive.safe_extract
    monkeypatch.setattr(archive, "safe_extract", lambda *a, **k: calls.append(a) or real_extract(*a, **k))
    assert extract_archive(first, cache_dir=cache) == folder
    copy = tmp_path / "elsewhere" / "same.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    assert extract_archive(copy, cache_dir=cache) == folder  # same bytes → same extraction
    assert calls == []  # nothing was extracted again

    changed = _tar(tmp_path / "two.tar.gz", [("images/a.jpg", b"changed")])
    other = extract_archive(changed, cache_dir=cache)
    assert other != folder and (other / "a.jpg").read_bytes() == b"changed"


def test_digest_fast_path_rehashes_when_the_archive_changes(tmp_path):
    cache = tmp_path / "cache"
    path = _tar(tmp_path / "data.tar.gz", [("x.txt", b"1")])
    first = extract_archive(path, cache_dir=cache)
    _tar(path, [("x.txt", b"2")])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    second = extract_archive(path, cache_dir=cache)
    assert (first / "x.txt").read_bytes() == b"1" and (second / "x.txt").read_bytes() == b"2"


def test_archive_with_several_top_level_entries_resolves_to_its_root(tmp_path):
    path = _tar(tmp_path / "ade.tar.gz", [("images/a.jpg", b"A"), ("annotations/a.png", b"P")])
    folder = resolve_folder(path, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["annotations", "images"]


def test_concurrent_resolution_extracts_once(tmp_path):
    cache = tmp_path / "cache"
    path = _tar(tmp_path / "data.tar.gz", [(f"images/{i}.jpg", bytes(1000)) for i in range(50)])
    results, errors = [], []

    def worker():
        try:
            results.append(extract_archive(path, cache_dir=cache))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(results)) == 1
    extracted = [p for p in cache.iterdir() if p.is_dir() and p.name != "index"]
    assert len(extracted) == 1 and len(list(results[0].iterdir())) == 50


def test_resolve_folder_paths(tmp_path, monkeypatch):
    assert resolve_folder(tmp_path) == tmp_path
    with pytest.raises(DataError, match=r"dataset path .*nope does not exist"):
        resolve_folder(tmp_path / "nope")
    text = tmp_path / "file.txt"
    text.write_text("x")
    with pytest.raises(DataError, match=r"dataset path .*file\.txt is a file but not a \.tar\.gz archive"):
        resolve_folder(text)
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"archive .*corrupt\.tar\.gz is corrupt or not a tar archive"):
        resolve_folder(corrupt, cache_dir=tmp_path / "cache")
    monkeypatch.setenv("MASK2FORMER_CACHE", str(tmp_path / "env-cache"))
    assert cache_root() == tmp_path / "env-cache"
    good = _tar(tmp_path / "good.tar.gz", [("a.txt", b"a")])
    assert str(resolve_folder(good)).startswith(str(tmp_path / "env-cache"))
    monkeypatch.delenv("MASK2FORMER_CACHE")
    assert cache_root() == Path.home() / ".cache" / "mask2former" / "extract"
