"""Typed errors, all rooted in :class:`SeamlessError`.

Each error also derives from the builtin a caller would naturally catch (``ValueError`` for malformed
input, ``KeyError`` and ``ValueError`` for unknown ids, ``OSError`` for transfer failures) so that code
written against the official toolkit, which raised ``ValueError`` for all of these inputs, keeps working.
"""

from __future__ import annotations


class SeamlessError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidIdError(SeamlessError, ValueError):
    """A file id, interaction key or session key that does not follow the grammar."""


class UnknownIdError(SeamlessError, KeyError, ValueError):
    """A well-formed id or key that the catalog does not contain.

    A ``KeyError`` (a lookup that missed) and a ``ValueError`` (what the official toolkit raised).
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NoCandidatesError(SeamlessError, ValueError):
    """A sampling request that no file, interaction or session of the catalog satisfies."""


class CatalogError(SeamlessError):
    """Metadata tables that cannot be fetched or parsed."""


class TransferError(SeamlessError, OSError):
    """A download that failed; carries the URL and, when there was one, the HTTP status."""

    def __init__(self, message: str, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingPartError(TransferError):
    """A required part of a file id (audio, video, vad, smplh) is absent on the remote."""


class IntegrityError(SeamlessError):
    """Bytes that do not match their expected size or checksum, or a corrupt local file."""


class UnsafeArchiveError(SeamlessError):
    """A tar archive with members that would escape the extraction folder, links or devices."""


class InsufficientSpaceError(SeamlessError, OSError):
    """Not enough free disk space for the planned download."""


class NotDownloadedError(SeamlessError, FileNotFoundError):
    """Local data that was asked for but has not been downloaded (or was deleted)."""


class TransferCancelled(SeamlessError):
    """A transfer stopped on request (a cancel token was set); its partial files stay, resumable."""


class AccessDeniedError(TransferError):
    """The remote refuses access: a gated or private dataset without a token that may read it."""


class ExportError(SeamlessError, ValueError):
    """An export that cannot be made: unknown format, bad time range, nothing local to export, or a
    format library (an optional extra) that is not installed."""
