"""Page building blocks shared by several pages: running a download with a live progress bar.

Downloads run in a worker thread; the script thread polls the progress recorder and redraws the bar
(bytes, rate, time left), because Streamlit calls are only allowed from the script thread. Failures
are kept with their type, message and traceback and shown on the next run, never swallowed.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any
from collections.abc import Callable

import streamlit as st

from seamless_interaction.app import data
from seamless_interaction.app.progress import (
    ProgressRecorder,
    format_bytes,
    format_duration,
)
from seamless_interaction.base.errors import SeamlessError
from seamless_interaction.routes import cdn

logger = logging.getLogger(__name__)

__all__ = ["describe", "gather_job", "run_download", "show_result"]

RESULT_KEY = "download_result"
STOP_WAIT_S = 30.0  # a cancelled transfer stops between two chunks; this only bounds a wedged one


def run_download(title: str, job: Callable[[Any, ProgressRecorder], Any], *, page: str,
                 units: int | None = None) -> None:
    """Run ``job(fs, recorder)`` in a worker thread while drawing its progress; record the outcome for ``page``.

    The transfer engine carries a cancel token. When this script run ends early (the header's Stop,
    the Stop button below the bar, any widget that reruns the page, the tab closing), the token is
    set: the running transfers raise ``TransferCancelled`` between two chunks, partial files stay for
    a resume, and the worker is joined before the run ends, so nothing keeps downloading unseen.
    """
    results = _results()  # taken now: a stopped run cannot reach the session state any more
    rec = ProgressRecorder()
    if units:
        rec.expect_units(units)
    bar = st.progress(0.0, text=f"{title}: starting…")
    st.button("Stop download", icon=":material/stop_circle:", key=f"stop_{page}",
              help="Cancels the transfer; the partial files stay and the next download resumes them.")
    fs = data.make_fs(progress=rec)
    cancel = threading.Event()
    fs.transfer.cancel = cancel  # the engine checks it between chunks of every running transfer
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = job(fs, rec)
        except BaseException as exc:  # kept for the script thread, which shows it
            box["error"] = exc
            box["trace"] = traceback.format_exc()
        finally:
            rec.finish()

    worker = threading.Thread(target=work, name="app-download", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            snap = rec.snapshot()
            bar.progress(snap.fraction or 0.0, text=f"{title} · {snap.text(with_desc=False)}")
            worker.join(0.25)
    except BaseException as exc:
        # Stop, rerun or disconnect: Streamlit interrupts this run at the next page call. From here on
        # the run may not touch st.* (session state included, it raises again): only plain objects.
        cancel.set()
        worker.join(STOP_WAIT_S)
        fs.close()
        snap = rec.snapshot()
        results["result"] = (page, "stopped", f"{title} stopped after {format_bytes(snap.all_bytes)}; the partial "
                             "files are kept and the next download of it resumes them.", "")
        logger.info("download %s interrupted (%s): its transfers were cancelled", title, type(exc).__name__)
        raise
    fs.close()
    snap = rec.snapshot()
    data.invalidate_inventory()
    if "error" in box:
        err = box["error"]
        bar.progress(snap.fraction or 0.0, text=f"{title} · failed after {format_duration(snap.elapsed_s)}")
        _record(page, "error", f"{title} failed: {type(err).__name__}: {err}", box["trace"])
    else:
        bar.progress(1.0, text=f"{title} · {snap.text(with_desc=False)}")
        _record(page, "ok", f"Downloaded {title}: {format_bytes(snap.all_bytes)} in {format_duration(snap.elapsed_s)}",
                describe(box.get("value")))


def _results() -> dict[str, Any]:
    return st.session_state.setdefault(RESULT_KEY, {})


def _record(page: str, kind: str, message: str, detail: str) -> None:
    _results()["result"] = (page, kind, message, detail)


def describe(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def show_result(page: str) -> None:
    """The outcome of the last download started on ``page``; leaving the page drops it."""
    box = _results()
    result = box.get("result")
    if not result:
        return
    where, kind, message, detail = result
    if where != page:
        box.clear()
        return
    if kind == "ok":
        st.success(message, icon=":material/check_circle:")
        if detail:
            with st.expander("Downloaded to"):
                st.code(detail, language=None)
    elif kind == "stopped":
        st.warning(message, icon=":material/stop_circle:")
    else:
        st.error(message, icon=":material/error:")
        with st.expander("Traceback"):
            st.code(detail, language=None)


def gather_job(ids: list[str]) -> Callable[[Any, ProgressRecorder], list[str]]:
    """A job for :func:`run_download` fetching ``ids`` by the CDN route, counting finished ids.

    The CDN publishes no sizes up front: the job first asks for the sizes of the audio and video
    parts (HEAD, concurrently; they are nearly all of the bytes), so the bar moves with the bytes
    and shows a time left instead of jumping from 0 to 100 % when the ids complete.
    """
    def job(fs: Any, rec: ProgressRecorder) -> list[str]:
        rec.expect_bytes(_media_bytes(fs, ids))
        results = cdn.gather_many(fs.transfer, fs.catalog, fs.config.cdn_url, fs.local_dir, ids,
                                  manifest=fs.manifest, on_done=lambda _r: rec.unit_done())
        return [f"{r.file_id}: {r.paths['mp4'].parent}" + (" (already complete)" if r.skipped else "")
                for r in results]
    return job


def _media_bytes(fs: Any, ids: list[str]) -> int | None:
    from concurrent.futures import ThreadPoolExecutor

    local = data.inventory(fs.local_dir).complete_ids
    urls = [p.url for fid in ids if fid not in local
            for p in cdn.plan_file_id(fs.catalog, fs.config.cdn_url, fid)[1] if p.kind in ("audio", "video")]
    if not urls:
        return None

    def size(url: str) -> int:
        try:
            info = fs.transfer.head(url, optional=True)
        except SeamlessError as exc:  # only an estimate: the download itself reports real failures
            logger.info("no size for %s: %s", url, exc)
            return 0
        return int(info.size or 0) if info is not None else 0

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="app-head") as pool:
        return sum(pool.map(size, urls)) or None
