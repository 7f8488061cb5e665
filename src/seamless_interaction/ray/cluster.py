"""Joining a Ray cluster, the HF token's way to the workers, and one Hub resolve limiter per job.

The token travels in the workers' environment (``runtime_env={"env_vars": {"HF_TOKEN": ...}}``), so
it is never a task argument (task arguments are kept in the object store and shown by the dashboard's
task view); each worker's engine reads it as any process would (:func:`DatasetConfig.resolved`).

The Hub counts resolves per token, not per process: one :class:`ResolveLimiter` actor per job
grants them for every worker's engine (a sliding window of ``quota`` per ``window_s``), and a 429
seen by one worker pauses all of them for the time the Hub asked.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Any

from seamless_interaction.base.config import find_hf_token

logger = logging.getLogger(__name__)

__all__ = ["ResolveLimiter", "connect", "limiter_actor", "share_limits", "token_runtime_env"]

_MAX_SLICE_S = 1.0  # a worker re-asks at least this often, so a pause lifted early is seen soon


def connect(address: str | None = None, **init_kwargs: Any) -> None:
    """Join the cluster at ``address`` (else ``RAY_ADDRESS``, else a local Ray), unless already joined."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    logger.info("ray: %s", f"joining {address}" if address else "starting a local instance")
    ray.init(address=address, log_to_driver=False, **init_kwargs)


def token_runtime_env(token: str | None = None) -> dict[str, Any] | None:
    """The runtime_env that hands the driver's HF token to the workers (None without a token)."""
    token = token or find_hf_token()
    return {"env_vars": {"HF_TOKEN": token}} if token else None


class ResolveLimiter:
    """Grants Hub resolves for a whole job (run as a Ray actor; plain class for direct use).

    ``acquire()`` returns 0.0 when the caller may resolve now (the grant is counted), else the
    seconds to wait before asking again; waits are relative, so the nodes' clocks need not agree.
    """

    def __init__(self, quota: int | None = None, window_s: float = 300.0) -> None:
        if quota is not None and quota < 1:
            raise ValueError(f"quota must be >= 1 resolves per window, got {quota!r}")
        self.quota, self.window_s = quota, float(window_s)
        self._granted: deque[float] = deque()
        self._until = 0.0
        self.grants = 0
        self.pauses = 0

    def acquire(self) -> float:
        now = time.monotonic()
        if now < self._until:
            return self._until - now
        if self.quota is not None:
            while self._granted and self._granted[0] <= now - self.window_s:
                self._granted.popleft()
            if len(self._granted) >= self.quota:
                return self._granted[0] + self.window_s - now
            self._granted.append(now)
        self.grants += 1
        return 0.0

    def pause(self, seconds: float) -> None:
        """A worker got a 429 asking to wait ``seconds``: every worker waits."""
        self.pauses += 1
        self._until = max(self._until, time.monotonic() + float(seconds))

    def stats(self) -> dict[str, int]:
        return {"grants": self.grants, "pauses": self.pauses}


def limiter_actor(quota: int | None = None, window_s: float = 300.0):
    """A :class:`ResolveLimiter` actor for one job (``num_cpus=0``: it never holds a worker's CPU)."""
    import ray

    return ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(ResolveLimiter).remote(quota, window_s)


def share_limits(transfer, limiter) -> None:
    """Make ``transfer`` (a worker's engine) take every Hub resolve from the job's ``limiter`` and report
    its 429 waits to it. The engine still asks each URL once and keeps its own gate.

    ``limiter``: the job's :func:`limiter_actor`, or a plain :class:`ResolveLimiter` when the task is the
    job's only one (no other engine to share with, and no actor process to wait for).
    """
    import ray

    http = transfer.http
    inner_get, inner_hit = http.resolves.get, http.gate.hit
    remote = hasattr(limiter.acquire, "remote")

    def wait_for_grant() -> None:
        while True:
            wait = ray.get(limiter.acquire.remote()) if remote else limiter.acquire()
            if wait <= 0:
                return
            time.sleep(min(wait, _MAX_SLICE_S))

    def get(url: str, ask, *, fresh: bool = False):
        def limited():
            wait_for_grant()
            return ask()

        return inner_get(url, limited, fresh=fresh)

    def hit(seconds: float, name: str) -> None:
        if remote:
            limiter.pause.remote(seconds)
        else:
            limiter.pause(seconds)
        inner_hit(seconds, name)

    http.resolves.get = get
    http.gate.hit = hit
