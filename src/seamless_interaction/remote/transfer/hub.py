"""What the engine knows about the Hugging Face Hub: resolve URLs, rate limits, errors and listings.

- :class:`HubRepo` parses a resolve base (``{endpoint}/datasets/{repo}/resolve/{revision}``).
- :class:`RateGate` holds one engine's wait after a 429: every Hub call waits behind it, the wait is
  what the ``RateLimit`` (``"resolvers";r=0;t=N``) or ``Retry-After`` header says, and it is not a
  retry (see docs/ENDPOINTS.md).
- :class:`Resolved` is one resolve answer (the 302 with ``X-Linked-Size``/``X-Linked-Etag``, or a
  direct 200), cached per engine so that segments, tar-index reads and member reads share it;
  a redirect target that refuses (401/403/404/410, e.g. an expired signature) is dropped and the
  resolve URL asked again.
- :class:`HubListing` takes sizes and sha256s of many files from the Hub API's tree endpoint, one
  paginated call per split, cached by commit, so whole-split scans do not resolve every archive.
- :func:`hub_error` turns the Hub's ``X-Error-Code`` answers into one actionable line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from seamless_interaction.base.errors import (
    AccessDeniedError,
    MissingPartError,
    TransferError,
)
from seamless_interaction.remote.transfer.disk import write_atomic
from seamless_interaction.remote.transfer.policy import (
    CancelLike,
    Stopped,
    retry_after_s,
)

__all__ = [
    "HubListing",
    "HubRepo",
    "ListedFile",
    "RateGate",
    "ResolveCache",
    "Resolved",
    "hub_error",
    "rate_limit_wait",
]

logger = logging.getLogger(__name__)

_RESOLVE_RE = re.compile(
    r"^(?P<endpoint>https?://[^/]+)(?P<kind>/datasets|/spaces)?/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/?$"
)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# "resolvers";r=0;t=58 (IETF draft-ietf-httpapi-ratelimit-headers, as the Hub sends it)
_RATELIMIT_T_RE = re.compile(r"(?:^|;)\s*t\s*=\s*(\d+(?:\.\d+)?)")
_RATELIMIT_NAME_RE = re.compile(r'^\s*"?([A-Za-z0-9_-]+)"?')
_WAIT_SLICE_S = 0.1


@dataclass(frozen=True)
class HubRepo:
    """A Hub repository at a revision, parsed from its resolve base URL."""

    endpoint: str  # scheme://host[:port]
    api_kind: str  # "datasets", "spaces" or "models"
    repo_id: str
    revision: str

    @classmethod
    def parse(cls, resolve_base: str) -> HubRepo | None:
        """``https://huggingface.co/datasets/facebook/seamless-interaction/resolve/main`` -> HubRepo; else None."""
        m = _RESOLVE_RE.match(resolve_base.rstrip("/"))
        if m is None:
            return None
        kind = (m.group("kind") or "/models").lstrip("/")
        return cls(m.group("endpoint"), kind, m.group("repo"), urllib.parse.unquote(m.group("rev")))

    @property
    def resolve_base(self) -> str:
        prefix = "" if self.api_kind == "models" else f"/{self.api_kind}"
        return f"{self.endpoint}{prefix}/{self.repo_id}/resolve/{urllib.parse.quote(self.revision, safe='')}"

    def path_of(self, url: str) -> str | None:
        """The repo path of a resolve URL of this repo at this revision, else None."""
        base = self.resolve_base + "/"
        return urllib.parse.unquote(url[len(base):]) if url.startswith(base) else None

    def api(self, *parts: str) -> str:
        return "/".join([f"{self.endpoint}/api/{self.api_kind}/{self.repo_id}", *parts])

    @property
    def page(self) -> str:
        """The repository's web page, where gated terms are accepted."""
        prefix = "" if self.api_kind == "models" else f"/{self.api_kind}"
        return f"{self.endpoint}{prefix}/{self.repo_id}"


# -- errors ----------------------------------------------------------------------------------------


def hub_error(method: str, url: str, resp: httpx.Response, *, has_token: bool,
              page: str | None) -> TransferError | None:
    """The typed error for a Hub answer with an ``X-Error-Code`` (or a bare 401), else None.

    Codes as huggingface_hub's ``hf_raise_for_status`` reads them: ``GatedRepo`` (401/403),
    ``RepoNotFound`` (401/404), ``EntryNotFound`` and ``RevisionNotFound`` (404).
    """
    code = resp.headers.get("x-error-code", "")
    status = resp.status_code
    where = page or url
    if code == "EntryNotFound":
        return MissingPartError(f"{method} {url}: no such file in the repository (HTTP {status} EntryNotFound)",
                                url, status)
    if code == "RevisionNotFound":
        return TransferError(f"{method} {url}: the revision does not exist (HTTP {status} RevisionNotFound)",
                             url, status)
    if code == "GatedRepo" or (status == 401 and code in ("", "RepoNotFound")):
        if not has_token:
            return AccessDeniedError(
                f"{method} {url}: HTTP {status}: the dataset is gated or private; set HF_TOKEN (or run "
                f"`huggingface-cli login`) with a token that has access to {where}", url, status)
        if code == "GatedRepo":
            return AccessDeniedError(
                f"{method} {url}: HTTP {status}: this token has no access to the gated dataset; accept the "
                f"dataset's terms on its page {where} with the account of HF_TOKEN", url, status)
        return AccessDeniedError(
            f"{method} {url}: HTTP {status}: the Hub refused HF_TOKEN; check that it is valid and can read {where}",
            url, status)
    if code == "RepoNotFound":
        return TransferError(
            f"{method} {url}: repository not found (HTTP {status}); check the Hub URL, or set HF_TOKEN if it is "
            "private", url, status)
    return None


# -- rate limits -----------------------------------------------------------------------------------


def rate_limit_wait(resp: httpx.Response) -> tuple[float | None, str]:
    """(seconds to wait, quota name) from a 429's ``RateLimit`` and ``Retry-After`` headers.

    The larger of the two wins when both are present; (None, name) when neither says.
    """
    name = "requests"
    waits: list[float] = []
    header = resp.headers.get("ratelimit")
    if header:
        m = _RATELIMIT_NAME_RE.match(header)
        if m:
            name = m.group(1)
        t = _RATELIMIT_T_RE.search(header)
        if t:
            waits.append(float(t.group(1)))
    ra = retry_after_s(resp.headers.get("retry-after"))
    if ra is not None:
        waits.append(ra)
    return (max(waits) if waits else None), name


class RateGate:
    """One engine's pause after a Hub 429: every Hub request waits behind it (threads included).

    Waits sleep in short slices, so a cancel token or Ctrl-C stops them at once; nothing is
    half-written during a wait, so an interrupted run resumes where it was.
    """

    def __init__(self, *, has_token: bool, max_wait_s: float = 900.0) -> None:
        self.has_token = has_token
        self.max_wait_s = max_wait_s  # one wait longer than this is an error (the Hub's window is 5 min)
        self._lock = threading.Lock()
        self._until = 0.0
        self.waits = 0  # 429s taken; for tests and logs

    def hit(self, seconds: float, name: str) -> None:
        """Record a 429 that says wait ``seconds``; announce the wait once, on one line."""
        if seconds > self.max_wait_s:
            raise TransferError(f"Hub rate limit ({name}): asked to wait {seconds:.0f} s, more than "
                                f"{self.max_wait_s:.0f} s; try again later")
        with self._lock:
            self.waits += 1
            until = time.monotonic() + seconds
            if until <= self._until:
                return
            announce = self._until < time.monotonic()
            self._until = until
        if announce:
            hint = "" if self.has_token else "; set HF_TOKEN for a higher quota"
            logger.warning("Hub rate limit (%s): waiting %.0f s%s", name, seconds, hint)

    def wait(self, cancel: CancelLike | None) -> None:
        """Block until the gate is open; raise :class:`Stopped` once ``cancel`` is set."""
        while True:
            with self._lock:
                left = self._until - time.monotonic()
            if left <= 0:
                return
            if cancel is not None and cancel.is_set():
                raise Stopped()
            time.sleep(min(left, _WAIT_SLICE_S))


# -- resolve answers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """One answer of a resolve URL: where the bytes are and what they are."""

    url: str  # the resolve URL
    target: str  # the redirect target (== url when the Hub serves the file itself)
    size: int | None  # X-Linked-Size, else Content-Length of a direct answer
    sha256: str | None  # X-Linked-Etag (LFS/Xet files only)
    etag: str | None  # the ETag of a direct answer (a git blob id); None for redirects
    commit: str | None  # X-Repo-Commit
    asked_at: float = 0.0  # time.monotonic() of the answer

    @property
    def redirected(self) -> bool:
        return self.target != self.url

    @property
    def validator(self) -> str | None:
        """What identifies the bytes, whichever target serves them: sha256, else the Hub's ETag."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        return f"etag:{self.etag}" if self.etag else None


class ResolveCache:
    """Resolve answers per URL, each asked once however many threads need it at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, Resolved] = {}
        self._flights: dict[str, threading.Lock] = {}
        self.calls = 0  # resolve requests made; for tests and logs

    def get(self, url: str, ask: Callable[[], Resolved], *, fresh: bool = False) -> Resolved:
        """The answer for ``url``, asking (once, whoever else waits) if none is kept or ``fresh``."""
        since = time.monotonic()
        with self._lock:
            hit = None if fresh else self._answers.get(url)
            if hit is not None:
                return hit
            flight = self._flights.setdefault(url, threading.Lock())
        with flight:
            with self._lock:
                hit = self._answers.get(url)
                if fresh and hit is not None and hit.asked_at < since:
                    hit = None  # asked before this call: not fresh (one asked meanwhile is)
            if hit is not None:
                return hit
            answer: Resolved = ask()
            with self._lock:
                self.calls += 1
                self._answers[url] = answer
                self._flights.pop(url, None)
            return answer

    def drop(self, url: str, target: str) -> None:
        """Forget the answer for ``url`` if it still points at ``target`` (another thread may have renewed it)."""
        with self._lock:
            hit = self._answers.get(url)
            if hit is not None and hit.target == target:
                del self._answers[url]


# -- listings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedFile:
    path: str
    size: int
    sha256: str | None  # lfs.oid; None for files kept in git
    oid: str  # git blob id


class HubListing:
    """Sizes and sha256s of a repo's files from the API's tree endpoint, cached by commit.

    A file is looked up in the recursive listing of its top two folders (``label/split``), fetched
    once per engine (and once per commit on disk under ``cache_dir``): a split of 10,000 archives is
    about ten paginated calls instead of 10,000 resolves. A listing that fails (no API, an access
    error) makes lookups answer None, and the caller falls back to resolving the file.
    """

    def __init__(self, repo: HubRepo, get_json: Callable[[str], tuple[Any, str | None]],
                 cache_dir: Path | None) -> None:
        self.repo = repo
        self._get_json = get_json  # (url) -> (json, next_url | None, headers)
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._commit: str | None = repo.revision if _COMMIT_RE.match(repo.revision) else None
        self._prefixes: dict[str, dict[str, ListedFile] | None] = {}
        self._flights: dict[str, threading.Lock] = {}
        self.api_calls = 0

    @property
    def commit(self) -> str | None:
        """The commit the listings are of (None until the first listing)."""
        return self._commit

    @staticmethod
    def prefix_of(path: str) -> str:
        parts = path.split("/")
        return "/".join(parts[:2]) if len(parts) >= 3 else "/".join(parts[:-1])

    def lookup(self, path: str) -> ListedFile | None | bool:
        """The listed file; False if its folder was listed and it is not there; None if unknown."""
        prefix = self.prefix_of(path)
        files = self._listing(prefix)
        if files is None:
            return None
        return files.get(path, False)

    def _listing(self, prefix: str) -> dict[str, ListedFile] | None:
        with self._lock:
            if prefix in self._prefixes:
                return self._prefixes[prefix]
            flight = self._flights.setdefault(prefix, threading.Lock())
        with flight:
            with self._lock:
                if prefix in self._prefixes:
                    return self._prefixes[prefix]
            try:
                files = self._load(prefix)
            except Stopped:
                raise
            except (TransferError, ValueError, KeyError, TypeError) as e:
                # Access errors too: the file's own resolve then says what is wrong, naming the file.
                logger.info("Hub listing of %s unavailable (%s); resolving files one by one", prefix or "/", e)
                files = None
            with self._lock:
                self._prefixes[prefix] = files
            return files

    def _commit_id(self) -> str:
        if self._commit is None:
            # expand=sha: the commit only, not the whole file list dataset_info returns by default.
            data, _ = self._get_json(self.repo.api("revision", urllib.parse.quote(self.repo.revision, safe=""))
                                     + "?expand=sha")
            self.api_calls += 1
            sha = str(data["sha"])
            if not _COMMIT_RE.match(sha):
                raise ValueError(f"revision answer has no commit id: {sha!r}")
            self._commit = sha
        return self._commit

    def _cache_path(self, commit: str, prefix: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{self.repo.endpoint}|{self.repo.repo_id}|{prefix}".encode()).hexdigest()[:32]
        return self.cache_dir / "hub-tree" / commit / f"{key}.json"

    def _load(self, prefix: str) -> dict[str, ListedFile]:
        commit = self._commit_id()
        cache = self._cache_path(commit, prefix)
        if cache is not None:
            try:
                rows = json.loads(cache.read_text())
                return {r[0]: ListedFile(r[0], int(r[1]), r[2], r[3]) for r in rows}
            except FileNotFoundError:
                pass
            except (ValueError, KeyError, TypeError, IndexError) as e:
                logger.info("ignoring unreadable listing cache %s: %s", cache, e)
        files: dict[str, ListedFile] = {}
        tail = f"/{urllib.parse.quote(prefix)}" if prefix else ""
        url: str | None = self.repo.api("tree", commit) + tail + "?recursive=true&expand=false"
        while url is not None:
            data, url = self._get_json(url)
            self.api_calls += 1
            for item in data:
                if item.get("type") != "file":
                    continue
                lfs = item.get("lfs") or {}
                sha = lfs.get("oid") or lfs.get("sha256")
                files[str(item["path"])] = ListedFile(str(item["path"]), int(item["size"]),
                                                      str(sha).lower() if sha else None, str(item.get("oid", "")))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            rows = [[f.path, f.size, f.sha256, f.oid] for f in files.values()]
            write_atomic(cache, json.dumps(rows, separators=(",", ":")), shared=True)
        logger.debug("listed %d files under %s at %s", len(files), prefix or "/", commit)
        return files
