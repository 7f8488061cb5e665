"""Tar-writing helpers shared by the tar index tests (tests/remote) and the member route tests (tests/routes).

Importable from any test module: ``tests/`` is on the path (pytest puts the rootdir conftest's folder there).
"""

from __future__ import annotations

import io
import random
import tarfile
import time
from pathlib import Path

from seamless_interaction.mirror import MirrorServer


def hub_dir(server: MirrorServer) -> Path:
    return Path(server.root) / "hub"


def body_bytes(server: MirrorServer) -> int:
    return sum(r.body_bytes for r in server.requests)


def write_tar(path: Path, members: list[tuple[str, int]], *, fmt: int = tarfile.PAX_FORMAT,
              seed: int = 0) -> dict[str, bytes]:
    """Write a tar like WebDataset does (float mtime -> PAX header per member); returns name -> bytes."""
    rng = random.Random(seed)
    contents: dict[str, bytes] = {}
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, size in members:
            info = tarfile.TarInfo(name)
            info.mtime = time.time() if fmt == tarfile.PAX_FORMAT else int(time.time())
            info.mode, info.uname, info.gname = 0o444, "bigdata", "bigdata"
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            data = rng.randbytes(size)
            info.size = size
            tar.addfile(info, io.BytesIO(data))
            contents[name] = data
    return contents


ODD_MEMBERS = [
    ("V00_S0809_I00000309_P0947.json", 97),
    ("V00_S0809_I00000309_P0947.mp4", 70_001),
    ("V00_S0809_I00000309_P0947.npz", 5_305),
    ("V00_S0809_I00000309_P0947.wav", 512),
    ("empty.txt", 0),
    ("sub/dir/", 0),
    ("d" * 120 + "/" + "long_name_" + "x" * 150 + ".npz", 1_025),  # > 100 chars: PAX path / GNU longname
    ("ünïcode_名前.json", 3),
    ("V01_S0001_I00000001_P0001A.npz", 511),
]
