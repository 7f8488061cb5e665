"""The one tar header reader: equal to tarfile on what tarfile reads, a typed error on everything else."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.tarfmt import BLOCK, TarMember, iter_tar, parse_pax, tar_number


def _tar_bytes(members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT, **kw) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1.5  # a float mtime makes tarfile write a PAX header, as WebDataset's writer does
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _bytes_reader(data: bytes):
    return lambda offset, n: data[offset:offset + n]


def _listing(data: bytes, **kw) -> list[tuple[str, int, int]]:
    return [(m.name, m.offset_data, m.size) for m in iter_tar(_bytes_reader(data), where="t.tar", **kw)]


def _tarfile_listing(data: bytes) -> list[tuple[str, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, m.offset_data, m.size) for m in tar.getmembers()]


MEMBERS = [("a.json", b"{}"), ("b" * 130 + ".npz", os.urandom(700)), ("c.wav", b""), ("ü.mp4", b"x" * 513)]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("size_known", [True, False])
def test_listing_equals_tarfile_with_and_without_the_total_size(fmt: int, size_known: bool) -> None:
    data = _tar_bytes(MEMBERS, fmt)
    kw = {"total_size": len(data)} if size_known else {}
    assert _listing(data, **kw) == _tarfile_listing(data)


def test_a_sequential_reader_may_read_bodies_between_steps() -> None:
    data = _tar_bytes(MEMBERS)
    stream = io.BytesIO(data)

    def read_at(offset: int, n: int) -> bytes:
        assert offset >= stream.tell(), "offsets only grow"
        stream.seek(offset)
        return stream.read(n)

    bodies = {}
    for m in iter_tar(read_at, where="s.tar"):
        bodies[m.name] = stream.read(m.size)  # the caller consumes the body, the reader skips the padding
    assert bodies == dict(MEMBERS)


def test_numbers_octal_and_base256() -> None:
    assert tar_number(tarfile.itn(9 * 1024**3, 12, tarfile.GNU_FORMAT)) == 9 * 1024**3
    assert tar_number(tarfile.itn(-5, 8, tarfile.GNU_FORMAT)) == -5
    assert tar_number(b"0000644\x00") == 0o644
    with pytest.raises(ValueError):
        tar_number(b"<!DOCTYP")


def _with_pax(records: bytes) -> bytes:
    """A tar whose only member carries the given raw PAX records (a hand-made header, checksummed)."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, len(records)
    body = tarfile.TarInfo("m.bin")
    body.size = 3
    out = pax.tobuf(tarfile.USTAR_FORMAT) + records.ljust(-(-len(records) // BLOCK) * BLOCK, b"\0")
    return out + body.tobuf(tarfile.USTAR_FORMAT) + b"abc".ljust(BLOCK, b"\0") + b"\0" * 1024


@pytest.mark.parametrize("records", [b"0 path=x\n", b"-3 path=x\n", b"2 \n", b"99 path=x\n", b"x path=x\n",
                                     b"10 pathx\n\n\n", b"nospace"])
def test_malformed_pax_records_raise_instead_of_looping(records: bytes) -> None:
    data = _with_pax(records)
    result: list[BaseException] = []

    def run() -> None:
        try:
            _listing(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)  # a reader that loops on a zero-length record never returns
    assert not t.is_alive(), f"looped on {records!r}"
    assert len(result) == 1 and isinstance(result[0], IntegrityError), result
    assert "t.tar" in str(result[0]) and "PAX" in str(result[0])


def test_good_pax_records() -> None:
    assert parse_pax(b"14 path=ab/cd\n11 size=42\n") == {"path": "ab/cd", "size": "42"}
    data = _with_pax(b"14 path=ab/cd\n")
    assert _listing(data) == _tarfile_listing(data) == [("ab/cd", 3 * BLOCK, 3)]


@pytest.mark.parametrize("data, match", [
    (b"<!DOCTYPE html><html><body>Rate limited</body></html>\n" * 20, "checksum"),
    (os.urandom(4096), "checksum"),
    (b"", "empty|too short"),
    (b"PK\x03\x04" + bytes(600), "checksum"),
])
@pytest.mark.parametrize("size_known", [True, False])
def test_not_a_tar_is_an_integrity_error(data: bytes, match: str, size_known: bool) -> None:
    kw = {"total_size": len(data)} if size_known else {}
    with pytest.raises(IntegrityError, match=match):
        _listing(data, **kw)


@pytest.mark.parametrize("cut", [100, BLOCK + 7, 4 * BLOCK + 100])
def test_truncated_headers_are_integrity_errors(cut: int) -> None:
    data = _tar_bytes(MEMBERS)[:cut]
    with pytest.raises(IntegrityError, match="truncated"):
        _listing(data)
    with pytest.raises(IntegrityError, match="truncated"):
        _listing(data, total_size=len(data))


def test_member_past_the_end_is_caught_when_the_size_is_known() -> None:
    data = _tar_bytes([("big.bin", b"z" * 5000)])[:3000]
    with pytest.raises(IntegrityError, match=r"big\.bin"):
        _listing(data, total_size=len(data))
    # Without a size the listing cannot know; the body reader sees the short read.
    assert _listing(data)[0][0] == "big.bin"


def test_member_record() -> None:
    m = TarMember("x.npz", 1024, 513, 0)
    assert (m.end, m.next_header, m.is_file) == (1537, 2048, True)
    assert TarMember("d", 512, 0, 0, "5").is_file is False


def test_local_file_through_a_seek_reader(tmp_path: Path) -> None:
    path = tmp_path / "f.tar"
    path.write_bytes(_tar_bytes(MEMBERS, tarfile.GNU_FORMAT))
    with open(path, "rb") as fh:
        def read_at(offset: int, n: int) -> bytes:
            fh.seek(offset)
            return fh.read(n)
        got = [(m.name, m.offset_data, m.size) for m in iter_tar(read_at, where=str(path),
                                                                   total_size=path.stat().st_size)]
    assert got == _tarfile_listing(path.read_bytes())
