"""Local manifest of fetched files: what was fetched from where, its size and sha256.

The manifest lives at ``<root>/.seamless_interaction/manifest.jsonl``: append-only JSON lines, one
per recorded file (later lines win) or per removal (a tombstone). Appends take an exclusive
``flock`` so several processes can record into the same tree; readers take a shared one and read
only the lines added since their last read.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["MANIFEST_NAME", "Manifest", "ManifestEntry"]

logger = logging.getLogger(__name__)

# Relative to the manifest root; the folder also holds other toolkit state.
MANIFEST_NAME = ".seamless_interaction/manifest.jsonl"


@dataclass(frozen=True)
class ManifestEntry:
    """One fetched file. ``path`` is relative to the manifest root, POSIX separators."""

    path: str
    url: str
    size: int
    sha256: str | None  # None where no hash was taken (an older manifest, a file not streamed)
    time: float  # Unix seconds when it was recorded


class Manifest:
    """Append-only record of fetched files under ``root``; safe across threads and processes.

    >>> m = Manifest(Path("/data/seamless"))
    >>> m.record("improvised/dev/audio/V00_S0001_I00000001_P0001.wav", url, size, sha256)
    >>> m.get("improvised/dev/audio/V00_S0001_I00000001_P0001.wav").sha256
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self._lock = threading.Lock()
        self._entries: dict[str, ManifestEntry] = {}
        self._offset = 0
        self._inode: int | None = None

    def __repr__(self) -> str:
        return f"Manifest({str(self.root)!r})"

    def relpath(self, path: Path | str) -> str:
        """``path`` (absolute, or relative to the root) as the key the manifest uses.

        Raises ``ValueError`` if ``path`` is not under the root.
        """
        p = Path(path)
        if not p.is_absolute():
            rel = Path(os.path.normpath(p))
        else:
            root = Path(os.path.abspath(self.root))
            try:
                rel = Path(os.path.abspath(p)).relative_to(root)
            except ValueError:
                # A symlinked root or path: compare real locations before giving up.
                rel = p.resolve().relative_to(self.root.resolve())
        key = rel.as_posix()
        if key in ("", ".") or key.startswith("../") or key == "..":
            raise ValueError(f"{path} is not a file under the manifest root {self.root}")
        return key

    def contains(self, path: Path | str) -> bool:
        """Whether ``path`` lies under the manifest root."""
        try:
            self.relpath(path)
        except ValueError:
            return False
        return True

    def record(self, path: Path | str, url: str, size: int, sha256: str | None) -> ManifestEntry:
        """Append an entry for ``path`` (replacing any earlier one) and return it."""
        entry = ManifestEntry(path=self.relpath(path), url=url, size=int(size), sha256=sha256, time=time.time())
        self._append(asdict(entry))
        with self._lock:
            self._entries[entry.path] = entry
        return entry

    def remove(self, path: Path | str) -> None:
        """Forget ``path`` (appends a tombstone; the file itself is not touched)."""
        key = self.relpath(path)
        self._append({"path": key, "removed": True, "time": time.time()})
        with self._lock:
            self._entries.pop(key, None)

    def get(self, path: Path | str) -> ManifestEntry | None:
        """The latest entry for ``path``, or None."""
        key = self.relpath(path)
        with self._lock:
            self._refresh()
            return self._entries.get(key)

    def entries(self) -> dict[str, ManifestEntry]:
        """All live entries, keyed by relative path."""
        with self._lock:
            self._refresh()
            return dict(self._entries)

    def compact(self) -> None:
        """Rewrite the file with one line per live entry (atomically, under the append lock)."""
        if not self.path.exists():
            return
        with open(self.path, "ab") as lock_f:
            fcntl.flock(lock_f, fcntl.LOCK_EX)
            with self._lock:
                self._refresh(locked=True)
                tmp = self.path.with_name(self.path.name + ".tmp")
                with open(tmp, "wb") as out:
                    for entry in self._entries.values():
                        out.write(_line(asdict(entry)))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
                self._inode = None  # the next read starts over on the new file
                self._offset = 0

    def _append(self, obj: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "ab")
            fcntl.flock(f, fcntl.LOCK_EX)
            # compact() may have replaced the file while we waited for the lock.
            try:
                same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        with f:
            # A writer killed mid-line leaves no newline; start a fresh line so ours stays parseable.
            end = f.seek(0, os.SEEK_END)
            if end > 0:
                with open(self.path, "rb") as r:
                    r.seek(end - 1)
                    if r.read(1) != b"\n":
                        f.write(b"\n")
            f.write(_line(obj))
            f.flush()

    def _refresh(self, locked: bool = False) -> None:
        """Read the lines appended since the last read (caller holds ``self._lock``)."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._entries, self._offset, self._inode = {}, 0, None
            return
        with f:
            if not locked:
                fcntl.flock(f, fcntl.LOCK_SH)
            st = os.fstat(f.fileno())
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._entries, self._offset, self._inode = {}, 0, st.st_ino
            f.seek(self._offset)
            data = f.read()
        # Only whole lines: a line still being written is read next time.
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for raw in complete.splitlines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                if obj.get("removed"):
                    self._entries.pop(obj["path"], None)
                    continue
                entry = ManifestEntry(
                    path=obj["path"], url=obj["url"], size=int(obj["size"]), sha256=obj["sha256"],
                    time=float(obj["time"]),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                # A torn line from a killed writer: skip it, the file it describes gets re-verified.
                logger.warning("skipping unreadable line in %s: %r", self.path, raw[:200])
                continue
            self._entries[entry.path] = entry


def _line(obj: dict[str, object]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n").encode()
