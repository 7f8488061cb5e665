"""``launch_app`` over a mirror: the server comes up on the given port and answers; Ctrl-C stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def _wait_healthy(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)


def test_launch_app_serves_the_mirror_and_stops_on_interrupt(app_setup, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import sys; from seamless_interaction.app.launch import launch_app; "
            f"sys.exit(launch_app(local_dir={str(app_setup.local_dir)!r}, "
            f"mirror_root={str(app_setup.mirror.root)!r}, port={port}, open_browser=False))")
    env = dict(os.environ, SEAMLESS_INTERACTION_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        out = proc.stdout.read().decode()
        assert "Serving the mirror" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_sigterm_to_the_cli_app_stops_streamlit(app_setup, tmp_path):
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        import pytest

        pytest.skip("needs Linux /proc to find the child process")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SEAMLESS_INTERACTION_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "seamless_interaction", "app", "--no-browser", "--port", str(port),
                             "--local-dir", str(app_setup.local_dir), "--mirror", str(app_setup.mirror.root)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    child = None
    try:
        _wait_healthy(proc, port)
        (child,) = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "streamlit outlived the app command"
    finally:
        for pid in [p for p in (child,) if p is not None]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
