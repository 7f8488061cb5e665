"""Local media (mp4, wav) streamed to the page through the app's own address, with byte ranges.

Browsers seek in ``<video>``/``<audio>`` with ``Range`` requests, and a 10-minute participant video
can be hundreds of MB, so media is streamed from disk rather than embedded into the page. It goes
through the app's own origin (a route of the Streamlit server, :mod:`seamless_interaction.app.serve`),
so that it plays wherever the app's page loads: through an SSH tunnel, a reverse proxy or on a
cluster node, with one forwarded port. Same origin is also what lets Web Audio read the samples
(``MediaElementAudioSourceNode`` outputs silence for cross-origin media without CORS).

Each served folder gets an unguessable token, new for every run of the app, in its URL path; only
files under that folder with a media extension are reachable.
"""

from __future__ import annotations

import logging
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seamless_interaction.base.ranges import answer_range

__all__ = ["CONTENT_TYPES", "MEDIA_ROUTE", "MediaRegistry", "MediaSite", "media_routes", "registry"]

logger = logging.getLogger(__name__)

CONTENT_TYPES = {".mp4": "video/mp4", ".wav": "audio/wav"}
_CHUNK = 1 << 20
MEDIA_ROUTE = "/seamless-media"  # not under Streamlit's reserved /_stcore, /media, /component, /static


class MediaSite:
    """One served folder: ``{prefix}/{token}/{relative path}`` names a media file under ``root``."""

    def __init__(self, root: Path | str, token: str | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.token = token or secrets.token_urlsafe(16)

    def url_for(self, path: Path | str, base_path: str = "") -> str:
        """The URL path of a file under the root; ``ValueError`` for one outside it or not a media file.

        ``base_path`` is Streamlit's ``server.baseUrlPath`` (the app behind a proxy prefix).
        """
        rel = Path(path).expanduser().resolve().relative_to(self.root)
        if rel.suffix not in CONTENT_TYPES:
            raise ValueError(f"{path}: only {sorted(CONTENT_TYPES)} files are served, not {rel.suffix!r}")
        base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        return f"{base}{MEDIA_ROUTE}/{self.token}/{urllib.parse.quote(rel.as_posix())}"

    def resolve(self, rel: str) -> Path | None:
        """The file a relative request path names, or None (escapes the root, not media, absent)."""
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
            return None
        path = (self.root / Path(*parts)).resolve()
        if not path.is_relative_to(self.root) or path.suffix not in CONTENT_TYPES or not path.is_file():
            return None
        return path

    def __repr__(self) -> str:
        return f"MediaSite({str(self.root)!r})"


class MediaRegistry:
    """The folders served in this process, by token (one site per folder, made on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_root: dict[Path, MediaSite] = {}
        self._by_token: dict[str, MediaSite] = {}

    def site(self, root: Path | str) -> MediaSite:
        key = Path(root).expanduser().resolve()
        with self._lock:
            found = self._by_root.get(key)
            if found is None:
                found = self._by_root[key] = MediaSite(key)
                self._by_token[found.token] = found
                logger.info("serving media of %s under %s/<token>/", key, MEDIA_ROUTE)
            return found

    def resolve(self, token: str, rel: str) -> Path | None:
        with self._lock:
            found = self._by_token.get(token)
        return found.resolve(rel) if found is not None else None


# One per process, on purpose: the Starlette route (server side) and the page scripts (script
# threads of the same process) must agree on the tokens, and they share nothing else.
_REGISTRY = MediaRegistry()


def registry() -> MediaRegistry:
    return _REGISTRY


def media_routes(reg: MediaRegistry | None = None, base_path: str = "") -> list[Any]:
    """Starlette routes answering ``GET``/``HEAD {base}{MEDIA_ROUTE}/{token}/{path}`` (Range included).

    Ranges are answered by :func:`seamless_interaction.base.ranges.answer_range`, the one answer the
    mirror gives too, so that both servers treat every range alike.
    """
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    reg = reg or _REGISTRY

    async def endpoint(request: Any) -> Any:
        # scope["path"] is already percent-decoded
        path = reg.resolve(request.path_params["token"], request.path_params["path"])
        if path is None:
            return Response(status_code=404)
        size = path.stat().st_size
        answer = answer_range(request.headers.get("range"), size)
        # no-cache: a re-download replaces a file under the same name.
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache", "Content-Length": str(answer.length)}
        if answer.content_range is not None:
            headers["Content-Range"] = answer.content_range
        if answer.status == 416 or request.method == "HEAD" or answer.length == 0:
            return Response(status_code=answer.status, headers=headers, media_type=CONTENT_TYPES[path.suffix])
        return StreamingResponse(_read(path, answer.start, answer.length), status_code=answer.status,
                                 headers=headers, media_type=CONTENT_TYPES[path.suffix])

    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    return [Route(f"{base}{MEDIA_ROUTE}/{{token}}/{{path:path}}", endpoint, methods=["GET", "HEAD"])]


def _read(path: Path, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, in blocks (Starlette iterates it on a worker thread)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        while length > 0:
            block = fh.read(min(_CHUNK, length))
            if not block:
                return
            length -= len(block)
            yield block
