"""Page building blocks shared by several pages: running a download with a live progress bar.

Downloads run in a worker thread; the script thread polls the progress recorder and redraws the bar
(bytes, rate, time left), because Streamlit calls are only allowed from the script thread. Failures
are kept with their type, message and traceback and shown on the next run, never swallowed.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any
from collections.abc import Callable

import streamlit as st

from seamless_interaction.routes import cdn
from seamless_interaction.app import data
from seamless_interaction.app.progress import ProgressRecorder, format_bytes, format_duration

__all__ = ["describe", "gather_job", "run_download", "show_result"]

RESULT_KEY = "download_result"


def run_download(title: str, job: Callable[[Any, ProgressRecorder], Any], *, units: int | None = None) -> None:
    """Run ``job(fs, recorder)`` in a worker thread while drawing its progress; record the outcome."""
    rec = ProgressRecorder()
    if units:
        rec.expect_units(units)
    bar = st.progress(0.0, text=f"{title}: starting…")
    fs = data.make_fs(progress=rec)
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
    while worker.is_alive():
        snap = rec.snapshot()
        bar.progress(snap.fraction or 0.0, text=f"{title} · {snap.text(with_desc=False)}")
        worker.join(0.25)
    fs.close()
    snap = rec.snapshot()
    data.invalidate_inventory()
    if "error" in box:
        exc = box["error"]
        bar.progress(snap.fraction or 0.0, text=f"{title} · failed after {format_duration(snap.elapsed_s)}")
        st.session_state[RESULT_KEY] = ("error", f"{title} failed: {type(exc).__name__}: {exc}", box["trace"])
    else:
        bar.progress(1.0, text=f"{title} · {snap.text(with_desc=False)}")
        st.session_state[RESULT_KEY] = ("ok", f"Downloaded {title}: {format_bytes(snap.all_bytes)} in "
                                        f"{format_duration(snap.elapsed_s)}", describe(box.get("value")))


def describe(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def show_result() -> None:
    result = st.session_state.get(RESULT_KEY)
    if not result:
        return
    kind, message, detail = result
    if kind == "ok":
        st.success(message, icon=":material/check_circle:")
        if detail:
            with st.expander("Downloaded to"):
                st.code(detail, language=None)
    else:
        st.error(message, icon=":material/error:")
        with st.expander("Traceback"):
            st.code(detail, language=None)


def gather_job(ids: list[str]) -> Callable[[Any, ProgressRecorder], list[str]]:
    """A job for :func:`run_download` fetching ``ids`` by the CDN route, counting finished ids."""
    def job(fs: Any, rec: ProgressRecorder) -> list[str]:
        results = cdn.gather_many(fs.transfer, fs.catalog, fs.config.cdn_url, fs.local_dir, ids,
                                  manifest=fs.manifest, on_done=lambda _r: rec.unit_done())
        return [f"{r.file_id}: {r.paths['mp4'].parent}" + (" (already complete)" if r.skipped else "")
                for r in results]
    return job
