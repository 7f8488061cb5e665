"""Local stand-in for the remote dataset: a synthetic build in the real formats and a loopback server."""

from seamless_interaction.mirror.generate import (
    EMBEDDED_DURATION_S,
    QUICK_SPEC,
    FileRecord,
    MirrorInfo,
    MirrorSpec,
    build_mirror,
    frame_marker,
    load_mirror_info,
)
from seamless_interaction.mirror.server import MirrorServer, RequestRecord, serve

__all__ = [
    "EMBEDDED_DURATION_S",
    "QUICK_SPEC",
    "FileRecord",
    "MirrorInfo",
    "MirrorServer",
    "MirrorSpec",
    "RequestRecord",
    "build_mirror",
    "frame_marker",
    "load_mirror_info",
    "serve",
]
