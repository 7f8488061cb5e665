"""DatasetConfig: the official toolkit's configuration object, plus endpoint overrides.

Every endpoint defaults to the real one. Each can be overridden by a field or by an environment
variable (field wins over variable, variable over default). Resolution happens in ``resolved()``,
never at import time, so the environment is read when a filesystem object is made.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from pathlib import Path

from seamless_interaction.constants import (
    ALL_LABELS,
    ALL_SPLITS,
    DEFAULT_ASSETS_URL,
    DEFAULT_CDN_URL,
    DEFAULT_HF_URL,
    ENV_ASSETS,
    ENV_CACHE_DIR,
    ENV_CDN_URL,
    ENV_HF_URL,
    PREFERRED_VENDORS,
)


def default_local_dir() -> Path:
    return Path.home() / "datasets" / "seamless_interaction"


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seamless_interaction"


def default_num_workers() -> int:
    """The official default: how many file ids or archives run at once (``min(10, max(1, cpu - 2))``)."""
    return min(10, max(1, (os.cpu_count() or 1) - 2))


def default_max_connections() -> int:
    # Downloads are I/O bound: threads, not processes, so more connections than cores is fine. Kept
    # apart from num_workers so that the official 1-worker default on a small machine does not
    # throttle the transfer engine.
    return min(32, max(4, 4 * (os.cpu_count() or 1)))


@dataclass
class DatasetConfig:
    """Configuration shared by the filesystem API, the CLI and the app.

    The first six fields are the official toolkit's, with its semantics: ``num_workers`` (how many
    file ids or archives are fetched at once) is filled in at construction, ``local_dir`` keeps the
    type it was given (``None`` becomes the default, as a ``str``). ``seed`` seeds a private
    ``random.Random``: unlike the official toolkit, Python's global ``random`` is never reseeded.
    """

    label: str = "improvised"
    split: str = "dev"
    preferred_vendors_only: bool = True
    num_workers: int | None = None
    local_dir: str | Path | None = None
    seed: int | None = None
    # Additions: endpoints (None means environment variable, then the real default).
    cdn_url: str | None = None
    hf_url: str | None = None
    assets: str | None = None  # a local folder or a base URL holding the four metadata tables
    cache_dir: Path | str | None = None
    hf_token: str | None = None
    preferred_vendors: tuple[str, ...] = PREFERRED_VENDORS
    timeout_s: float = 60.0
    # Simultaneous HTTP requests of the transfer engine (None: its own budget, see default_max_connections).
    max_connections: int | None = None

    def __repr__(self) -> str:
        # The token never appears in a repr (logs, tracebacks, the app): only whether one is set.
        fields = ", ".join(
            f"{f.name}={repr('***') if f.name == 'hf_token' and self.hf_token else repr(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
        )
        return f"{type(self).__name__}({fields})"

    def __post_init__(self) -> None:
        if self.label not in ALL_LABELS:
            raise ValueError(f"label {self.label!r} is not one of {list(ALL_LABELS)}")
        if self.split not in ALL_SPLITS:
            raise ValueError(f"split {self.split!r} is not one of {list(ALL_SPLITS)}")
        if self.num_workers is None:
            self.num_workers = default_num_workers()
        if int(self.num_workers) < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers!r}")
        if self.max_connections is not None and int(self.max_connections) < 1:
            raise ValueError(f"max_connections must be >= 1, got {self.max_connections!r}")
        if self.local_dir is None:
            self.local_dir = str(default_local_dir())
        elif isinstance(self.local_dir, str):
            self.local_dir = os.path.expanduser(self.local_dir)
        else:
            self.local_dir = Path(self.local_dir).expanduser()

    def resolved(self) -> DatasetConfig:
        """A copy with every endpoint, the cache dir, the worker count, the connection budget and the token filled in."""
        return replace(
            self,
            cdn_url=(self.cdn_url or os.environ.get(ENV_CDN_URL) or DEFAULT_CDN_URL).rstrip("/"),
            hf_url=(self.hf_url or os.environ.get(ENV_HF_URL) or DEFAULT_HF_URL).rstrip("/"),
            assets=(self.assets or os.environ.get(ENV_ASSETS) or DEFAULT_ASSETS_URL).rstrip("/"),
            cache_dir=Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir(),
            max_connections=self.max_connections or default_max_connections(),
            hf_token=self.hf_token or find_hf_token(),
        )


def find_hf_token() -> str | None:
    """HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the token `huggingface-cli login` saved."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var):
            return os.environ[var].strip()
    candidates = []
    if os.environ.get("HF_TOKEN_PATH"):
        candidates.append(Path(os.environ["HF_TOKEN_PATH"]))
    hf_home = Path(os.environ.get("HF_HOME") or (Path.home() / ".cache" / "huggingface"))
    candidates.append(hf_home / "token")
    for path in candidates:
        try:
            token = path.read_text().strip()
        except OSError:
            continue
        if token:
            return token
    return None
