"""Start the browser app: ``streamlit run Welcome.py`` in a child process, optionally over a mirror.

``launch_app`` is what ``seamless-interaction app`` and ``seamless-interaction demo --app`` call. With
``mirror_root`` it serves that mirror build on loopback for as long as the app runs and points the
app's endpoints at it through the ``SEAMLESS_INTERACTION_*`` environment variables, so the app runs
with no network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from seamless_interaction.constants import ENV_ASSETS, ENV_CDN_URL, ENV_HF_URL

__all__ = ["ENTRY_POINT", "SERVER_POINT", "launch_app", "streamlit_command"]

logger = logging.getLogger(__name__)

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
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                return proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
