"""Local manifest: what was asked for, and what was fetched from where with its size and sha256.

The manifest lives at ``<root>/.seamless_interaction/manifest.jsonl``: append-only JSON lines, one
per recorded file (later lines win), per removal (a tombstone) or per request (the modalities of a
file id that a download asked for; the union of every request is what the tree should hold, so
``verify`` does not call a deliberately skipped ``.mp4`` missing). Appends take an exclusive
``flock`` so several processes can record into the same tree; readers take a shared one and read
only the lines added since their last read.

This module is the manifest's one writer: the routes, the transfer engine and verify's repair
record through the methods below and never write lines themselves.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from seamless_interaction.base.digest import sha256_file
from seamless_interaction.base.ids import validate_file_id, validate_modalities
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local import filelock
from seamless_interaction.local.layout import STATE_DIR

__all__ = ["MANIFEST_NAME", "Manifest", "ManifestEntry", "member_source", "sha256_file"]

logger = logging.getLogger(__name__)

# Relative to the manifest root; the folder also holds other toolkit state.
MANIFEST_NAME = f"{STATE_DIR}/manifest.jsonl"


@dataclass(frozen=True)
class ManifestEntry:
    """One fetched file. ``path`` is relative to the manifest root, POSIX separators.

    ``sha256`` is the digest of the bytes written (None in lines written by older versions).
    """

    path: str
    url: str
    size: int
    sha256: str | None
    time: float  # Unix seconds when it was recorded


def member_source(archive_url: str, name: str) -> str:
    """The source recorded for a member of a remote archive: ``{archive_url}#{member name}``."""
    return f"{archive_url}#{name}"


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
        self._requests: dict[str, frozenset[str]] = {}
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
        return self.record_many([(path, url, size, sha256)])[0]

    def record_many(self, items: Iterable[tuple[Path | str, str, int, str | None]]) -> list[ManifestEntry]:
        """Entries for several ``(path, url, size, sha256)`` at once: one locked append."""
        now = time.time()
        entries = [ManifestEntry(path=self.relpath(p), url=url, size=int(size), sha256=sha, time=now)
                   for p, url, size, sha in items]
        if entries:
            self._append_lines([asdict(e) for e in entries])
            with self._lock:
                for e in entries:
                    self._entries[e.path] = e
        return entries

    def record_file(self, path: Path | str, url: str, sha256: str | None = None) -> ManifestEntry:
        """Entry for a file already in place: its size from disk, its sha256 computed unless given."""
        return self.record(path, url, os.stat(self.root / self.relpath(path)).st_size,
                           sha256 if sha256 is not None else sha256_file(self.root / self.relpath(path)))

    def request(self, file_ids: Iterable[str], modalities: Iterable[str]) -> None:
        """Remember that ``modalities`` (json, mp4, npz, wav) of ``file_ids`` were asked for.

        Requests accumulate: the tree should hold the union of every request (see :meth:`requested`).
        """
        mods = tuple(sorted(validate_modalities(modalities)))
        ids = [validate_file_id(f) for f in dict.fromkeys(file_ids)]
        with self._lock:
            self._refresh()
            new = [f for f in ids if not set(mods) <= self._requests.get(f, frozenset())]
        if not new:
            return
        now = time.time()
        self._append_lines([{"request": f, "modalities": list(mods), "time": now} for f in new])
        with self._lock:
            for f in new:
                self._requests[f] = self._requests.get(f, frozenset()) | set(mods)

    def withdraw(self, file_id: str, modalities: Iterable[str] | None = None) -> None:
        """Forget a request (all modalities by default), e.g. after the user deleted the files."""
        mods = list(validate_modalities(modalities)) if modalities is not None else list(BUNDLE_EXTENSIONS)
        fid = validate_file_id(file_id)
        self._append_lines([{"request": fid, "withdrawn": mods, "time": time.time()}])
        with self._lock:
            left = self._requests.get(fid, frozenset()) - set(mods)
            if left:
                self._requests[fid] = left
            else:
                self._requests.pop(fid, None)

    def requested(self) -> dict[str, frozenset[str]]:
        """Every file id asked for, with the union of the modalities asked for."""
        with self._lock:
            self._refresh()
            return dict(self._requests)

    def remove(self, path: Path | str) -> None:
        """Forget ``path`` (appends a tombstone; the file itself is not touched)."""
        key = self.relpath(path)
        self._append_lines([{"path": key, "removed": True, "time": time.time()}])
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
            filelock.lock(lock_f)
            with self._lock:
                self._refresh(locked=True)
                tmp = self.path.with_name(self.path.name + ".tmp")
                with open(tmp, "wb") as out:
                    for entry in self._entries.values():
                        out.write(_line(asdict(entry)))
                    for fid, mods in self._requests.items():
                        out.write(_line({"request": fid, "modalities": sorted(mods), "time": time.time()}))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
                self._inode = None  # the next read starts over on the new file
                self._offset = 0

    def _append_lines(self, objs: list[dict[str, object]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "ab")
            filelock.lock(f)
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
            f.write(b"".join(_line(obj) for obj in objs))
            f.flush()

    def _refresh(self, locked: bool = False) -> None:
        """Read the lines appended since the last read (caller holds ``self._lock``)."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._entries, self._requests, self._offset, self._inode = {}, {}, 0, None
            return
        with f:
            if not locked:
                filelock.lock(f, shared=True)
            st = os.fstat(f.fileno())
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._entries, self._requests, self._offset, self._inode = {}, {}, 0, st.st_ino
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
                if "request" in obj:
                    self._read_request(obj)
                    continue
                if obj.get("removed"):
                    self._entries.pop(obj["path"], None)
                    continue
                sha = obj.get("sha256")
                entry = ManifestEntry(path=obj["path"], url=obj["url"], size=int(obj["size"]),
                                      sha256=sha if isinstance(sha, str) and sha else None, time=float(obj["time"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                # A torn line from a killed writer: skip it, the file it describes gets re-verified.
                logger.warning("skipping unreadable line in %s: %r", self.path, raw[:200])
                continue
            self._entries[entry.path] = entry

    def _read_request(self, obj: dict[str, object]) -> None:
        fid = obj["request"]
        if not isinstance(fid, str):
            raise TypeError("request without a file id")
        if "withdrawn" in obj:
            gone = obj["withdrawn"]
            if not isinstance(gone, list):
                raise TypeError("withdrawal without modalities")
            left = self._requests.get(fid, frozenset()) - {str(m) for m in gone}
            if left:
                self._requests[fid] = left
            else:
                self._requests.pop(fid, None)
        else:
            mods = obj["modalities"]
            if not isinstance(mods, list):
                raise TypeError("request without modalities")
            self._requests[fid] = self._requests.get(fid, frozenset()) | {str(m) for m in mods}


def _line(obj: dict[str, object]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n").encode()
