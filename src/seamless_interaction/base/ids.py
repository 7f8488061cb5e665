"""Identifiers: file ids, interaction keys and session keys (FORMAT.md section 1).

The grammar is fixed-width with zero padding. Participant ids may carry a letter suffix
(``P0299A``), which is part of the participant id: the official regex drops it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seamless_interaction.base.errors import InvalidIdError

__all__ = ["FileId", "classify_key", "validate_file_id", "validate_interaction_key", "validate_session_key"]

FILE_ID_RE = re.compile(r"^V(\d{2})_S(\d{4})_I(\d{8})_P(\d{4}[A-Z]?)$")
INTERACTION_KEY_RE = re.compile(r"^V(\d{2})_S(\d{4})_I(\d{8})$")
SESSION_KEY_RE = re.compile(r"^V(\d{2})_S(\d{4})$")


@dataclass(frozen=True, order=True)
class FileId:
    """One participant's view of one interaction, e.g. ``V00_S0644_I00000125_P0299A``."""

    vendor: str  # "00"
    session: str  # "0644"
    interaction: str  # "00000125" (a prompt id: equals interactions.csv prompt_hash)
    participant: str  # "0299A" (suffix kept)

    @classmethod
    def parse(cls, text: str) -> FileId:
        if not isinstance(text, str):
            raise InvalidIdError(f"file id must be a string, got {type(text).__name__}: {text!r}")
        m = FILE_ID_RE.match(text.strip())
        if m is None:
            raise InvalidIdError(
                f"malformed file id {text!r}: expected V##_S####_I########_P####[A-Z], "
                "e.g. V00_S0809_I00000582_P0947"
            )
        return cls(*m.groups())

    def __str__(self) -> str:
        return f"V{self.vendor}_S{self.session}_I{self.interaction}_P{self.participant}"

    @property
    def interaction_key(self) -> str:
        return f"V{self.vendor}_S{self.session}_I{self.interaction}"

    @property
    def session_key(self) -> str:
        return f"V{self.vendor}_S{self.session}"

    @property
    def vendor_id(self) -> str:
        return f"V{self.vendor}"


def validate_file_id(text: str) -> str:
    """Return the normalised file id string or raise :class:`InvalidIdError`."""
    return str(FileId.parse(text))


def validate_interaction_key(text: str) -> str:
    if not isinstance(text, str) or INTERACTION_KEY_RE.match(text.strip()) is None:
        raise InvalidIdError(
            f"malformed interaction key {text!r}: expected V##_S####_I######## (8-digit I field), "
            "e.g. V00_S0809_I00000582"
        )
    return text.strip()


def validate_session_key(text: str) -> str:
    if not isinstance(text, str) or SESSION_KEY_RE.match(text.strip()) is None:
        raise InvalidIdError(f"malformed session key {text!r}: expected V##_S####, e.g. V00_S0809")
    return text.strip()


def classify_key(text: str) -> str:
    """Return "file", "interaction" or "session" for a well-formed key, else raise."""
    t = text.strip() if isinstance(text, str) else text
    if isinstance(t, str):
        if FILE_ID_RE.match(t):
            return "file"
        if INTERACTION_KEY_RE.match(t):
            return "interaction"
        if SESSION_KEY_RE.match(t):
            return "session"
    raise InvalidIdError(
        f"malformed key {text!r}: expected a file id (V##_S####_I########_P####[A]), "
        "an interaction key (V##_S####_I########) or a session key (V##_S####)"
    )
