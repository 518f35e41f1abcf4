"""Archive extraction refuses decompression bombs (skillkit/archive.py `ExtractionLimits`): too many
members, too many bytes, a compression ratio no dataset has, or a disk that would fill up. Each refusal is
a DataError naming the archive, the limit and the variable that raises it, and leaves nothing behind in
the trainer's extraction cache."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from skillkit.archive import ExtractionLimits, safe_extract
from skillkit.errors import DataError


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zeros_bomb(path: Path, size: int) -> Path:
    """A .tar.gz holding one file of `size` zero bytes (about 1000:1 compressed)."""
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("images/zeros.bin")
        info.size = size

        class Zeros(io.RawIOBase):
            def __init__(self) -> None:
                self.left = size

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
                n = min(len(buffer), self.left)
                buffer[:n] = bytes(n)
                self.left -= n
                return n

        tar.addfile(info, io.BufferedReader(Zeros()))
    return path


def test_member_count_limit(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "many.tar.gz", {f"images/{i}.jpg": b"x" for i in range(30)})
    with pytest.raises(DataError, match=r"many.tar.gz refused as a possible decompression bomb: it holds more than "
                                        r"20 members.*HPO_ARCHIVE_MAX_MEMBERS"):
        safe_extract(archive, tmp_path / "out", limits=ExtractionLimits(max_members=20))
    assert safe_extract(archive, tmp_path / "ok", limits=ExtractionLimits(max_members=40)).files == 30


def test_total_size_limit_is_checked_before_writing(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "big.tar.gz", {"a.bin": b"1" * 600, "b.bin": b"2" * 600})
    with pytest.raises(DataError, match=r"add up to more than 1000 bytes uncompressed.*HPO_ARCHIVE_MAX_BYTES"):
        safe_extract(archive, tmp_path / "out", limits=ExtractionLimits(max_bytes=1000))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.bin"]  # b.bin was refused before a byte of it


def test_compression_ratio_limit_stops_a_zeros_bomb(tmp_path: Path) -> None:
    archive = _zeros_bomb(tmp_path / "bomb.tar.gz", 64 << 20)
    assert archive.stat().st_size < 200 << 10
    # The default limits, except that the ratio is checked from 8 MiB on instead of 256 MiB (test speed).
    limits = ExtractionLimits(ratio_checked_after_bytes=8 << 20)
    with pytest.raises(DataError, match=r"bomb.tar.gz refused.*a ratio above 200.*HPO_ARCHIVE_MAX_RATIO"):
        safe_extract(archive, tmp_path / "out", limits=limits)
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written <= (8 << 20) + (1 << 20)  # stopped right after the ratio check starts
    # Image-like (incompressible) content passes the same check.
    images = _tar(tmp_path / "images.tar.gz", {f"{i}.jpg": os.urandom(1 << 20) for i in range(3)})
    assert safe_extract(images, tmp_path / "images", limits=ExtractionLimits(ratio_checked_after_bytes=1 << 20)).files == 3


def test_free_disk_reserve(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "data.tar.gz", {"a.bin": b"1" * 10})
    with pytest.raises(DataError, match=r"would leave less than \d+ bytes free.*HPO_ARCHIVE_MIN_FREE_BYTES"):
        safe_extract(archive, tmp_path / "out", limits=ExtractionLimits(min_free_bytes=1 << 60))


def test_limits_come_from_the_environment_and_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_ARCHIVE_MAX_MEMBERS", "5")
    monkeypatch.setenv("HPO_ARCHIVE_MAX_RATIO", "1e3")
    limits = ExtractionLimits.from_env()
    assert limits.max_members == 5 and limits.max_ratio == 1000.0 and limits.max_bytes == 1 << 40
    monkeypatch.setenv("HPO_ARCHIVE_MAX_BYTES", "lots")
    with pytest.raises(DataError, match=r"HPO_ARCHIVE_MAX_BYTES must be a number, got 'lots'"):
        ExtractionLimits.from_env()


def test_the_trainer_cache_keeps_nothing_of_a_refused_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mask2former.data.archive import resolve_folder

    archive = _tar(tmp_path / "images.tar.gz", {f"images/{i}.jpg": b"x" for i in range(12)})
    monkeypatch.setenv("HPO_ARCHIVE_MAX_MEMBERS", "10")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="HPO_ARCHIVE_MAX_MEMBERS"):
        resolve_folder(archive, cache_dir=cache)
    leftovers = [p.name for p in cache.iterdir() if p.name != "index" and not p.name.endswith(".lock")]
    assert leftovers == []
    monkeypatch.setenv("HPO_ARCHIVE_MAX_MEMBERS", "13")
    assert len(list(resolve_folder(archive, cache_dir=cache).iterdir())) == 12
