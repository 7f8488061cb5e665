"""The one file hash: read back in blocks, through a caller's buffer or its own, equal to hashlib's."""

from __future__ import annotations

import hashlib
import os

import pytest

from seamless_interaction.base.digest import HASH_CHUNK, sha256_fd, sha256_file, update_from_fd


@pytest.mark.parametrize("buf_size", [None, 4097, 1 << 20])
def test_ranges_read_through_any_buffer_hash_as_hashlib(tmp_path, buf_size):
    data = os.urandom(HASH_CHUNK + 3 * 4096 + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for start, end in [(0, len(data)), (5, 5), (4095, HASH_CHUNK + 1), (len(data) - 3, len(data) + 100)]:
            h = hashlib.sha256()
            buf = bytearray(buf_size) if buf_size else None
            reached = update_from_fd(h, fd, start, end, buf=buf)
            assert reached == min(max(start, end), len(data))  # past the end of the file: stops there
            assert h.hexdigest() == hashlib.sha256(data[start:end]).hexdigest(), (start, end)
        stop_after_one = iter([False, True]).__next__
        h = hashlib.sha256()
        assert update_from_fd(h, fd, 0, len(data), stop_after_one, bytearray(4096)) == 4096
    finally:
        os.close(fd)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as fh:
        assert sha256_fd(fh.fileno(), 100) == hashlib.sha256(data[:100]).hexdigest()
