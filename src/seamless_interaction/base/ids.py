"""Identifiers: file ids, interaction keys and session keys (FORMAT.md section 1).

The grammar is fixed-width with zero padding. Participant ids may carry a letter suffix
(``P0299A``), which is part of the participant id: the official regex drops it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seamless_interaction.base.errors import InvalidIdError

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
    def parse(cls, text: str) -> "FileId":
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


@dataclass
class InteractionKey:
    """The official toolkit's parsed identifier: vendor, session and optional interaction and participant.

    Fields hold digits without their letter (``vendor="00"``, ``session="0809"``), the participant with
    its suffix (``"0299A"``). Parsing follows this package's grammar (fixed widths, suffix kept) where the
    official pattern accepted any digit count and dropped the suffix. Errors are :class:`InvalidIdError`,
    a ``ValueError`` whose message starts as the official one did ("Invalid file ID format", ...).
    """

    vendor: str
    session: str
    interaction: str | None = None
    participant: str | None = None

    @classmethod
    def from_file_id(cls, file_id: str) -> "InteractionKey":
        m = FILE_ID_RE.match(file_id.strip()) if isinstance(file_id, str) else None
        if m is None:
            raise InvalidIdError(f"Invalid file ID format: {file_id!r}; expected V##_S####_I########_P####[A-Z], "
                                 "e.g. V00_S0809_I00000582_P0947")
        return cls(*m.groups())

    @classmethod
    def from_interaction_key(cls, interaction_key: str) -> "InteractionKey":
        """An interaction key, or the interaction of a file id (the official parser matched a prefix too)."""
        text = interaction_key.strip() if isinstance(interaction_key, str) else None
        m = text is not None and (INTERACTION_KEY_RE.match(text) or FILE_ID_RE.match(text))
        if not m:
            raise InvalidIdError(f"Invalid interaction key format: {interaction_key!r}; expected "
                                 "V##_S####_I######## (8-digit I field), e.g. V00_S0809_I00000582")
        return cls(*m.groups()[:3])

    @classmethod
    def from_session_key(cls, session_key: str) -> "InteractionKey":
        """A session key, or the session of an interaction key or file id."""
        text = session_key.strip() if isinstance(session_key, str) else None
        m = text is not None and (SESSION_KEY_RE.match(text) or INTERACTION_KEY_RE.match(text)
                                  or FILE_ID_RE.match(text))
        if not m:
            raise InvalidIdError(f"Invalid session key format: {session_key!r}; expected V##_S####, e.g. V00_S0809")
        return cls(*m.groups()[:2])

    @property
    def file_id(self) -> str:
        if not self.participant or not self.interaction:
            raise InvalidIdError(f"Participant required for file ID: {self!r} has none")
        return f"V{self.vendor}_S{self.session}_I{self.interaction}_P{self.participant}"

    @property
    def interaction_key(self) -> str:
        if not self.interaction:
            raise InvalidIdError(f"Interaction required for interaction key: {self!r} has none")
        return f"V{self.vendor}_S{self.session}_I{self.interaction}"

    @property
    def session_key(self) -> str:
        return f"V{self.vendor}_S{self.session}"


def parse_file_id(text: str) -> FileId:
    return FileId.parse(text)


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
