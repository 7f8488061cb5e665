"""Start the browser app: ``streamlit run Welcome.py`` in a child process, optionally over a mirror.

``launch_app`` is what ``seamless-interaction app`` and ``seamless-interaction demo --app`` call. With
``mirror_root`` it serves that mirror build on loopback for as long as the app runs and points the
app's endpoints at it through the ``SEAMLESS_INTERACTION_*`` environment variables, so the app runs
with no network.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from seamless_interaction.constants import ENV_ASSETS, ENV_CDN_URL, ENV_HF_URL

__all__ = ["ENTRY_POINT", "SERVER_POINT", "launch_app", "streamlit_command"]


ENTRY_POINT = Path(__file__).with_name("Welcome.py")  # the page script (AppTest runs it directly)
SERVER_POINT = Path(__file__).with_name("serve.py")  # the ASGI app: the pages plus the media route
ENV_LOCAL_DIR = "SEAMLESS_INTERACTION_LOCAL_DIR"  # read by app/data.py


def streamlit_command(*, port: int | None = None, headless: bool = False, address: str | None = None) -> list[str]:
    """The ``python -m streamlit run`` command line for the app (usage stats off)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(SERVER_POINT),
           "--browser.gatherUsageStats", "false", "--server.headless", "true" if headless else "false",
           # No Deploy button; the pages fetch nothing from the internet.
           "--client.toolbarMode", "viewer"]
    if port is not None:
        cmd += ["--server.port", str(int(port))]
    if address is not None:
        cmd += ["--server.address", address]
    return cmd


def launch_app(local_dir: Path | str | None = None, mirror_root: Path | str | None = None, port: int | None = None,
               open_browser: bool = True) -> int:
    """Run the app until it exits or Ctrl-C; returns its exit status (1 when Streamlit is missing).

    Args:
        local_dir: the dataset folder the app starts on (the sidebar can change it).
        mirror_root: a ``build_mirror`` output to serve and use instead of the real endpoints.
        port: the port to serve on (Streamlit's default, 8501 or the next free one, when None).
        open_browser: open a browser tab once the server is up.
    """
    try:
        import plotly  # noqa: F401
        import streamlit  # noqa: F401  (only checks that the extra is installed)
    except ImportError as exc:
        print(f"The app needs the 'app' extra ({exc.name} is missing): pip install 'seamless-interaction[app]'",
              file=sys.stderr)
        return 1
    env = dict(os.environ)
    if local_dir is not None:
        env[ENV_LOCAL_DIR] = str(Path(local_dir).expanduser().resolve())
    with contextlib.ExitStack() as stack:
        if mirror_root is not None:
            from seamless_interaction.mirror import MirrorServer

            server = stack.enter_context(MirrorServer(mirror_root))
            env[ENV_CDN_URL], env[ENV_HF_URL] = server.cdn_url, server.hf_url
            # The tables from the folder: the catalog cache is keyed by source, and the port changes.
            env[ENV_ASSETS] = str(Path(mirror_root).resolve() / "assets")
            print(f"Serving the mirror {mirror_root} at {server.url}", file=sys.stderr)
        proc = subprocess.Popen(streamlit_command(port=port, headless=not open_browser), env=env)
        with _terminate_raises():
            try:
                return proc.wait()
            except (KeyboardInterrupt, _Terminated):
                # Ctrl-C reaches the child too (same process group); SIGTERM only us: pass it on.
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                return 130 if sys.exc_info()[0] is KeyboardInterrupt else 128 + signal.SIGTERM
            finally:
                if proc.poll() is None:  # any other way out must not leave the server running
                    proc.kill()
                    proc.wait()


class _Terminated(Exception):
    """SIGTERM arrived while the app ran."""


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` in the main thread, so the child is stopped with us."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
