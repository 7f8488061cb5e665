"""URL layouts of the two remote routes (FORMAT.md section 2): pure string building, no I/O."""

from __future__ import annotations

from typing import NamedTuple

from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.constants import ANNOTATION_TYPES, FEATURE_GROUPS

__all__ = ["Part", "cdn_parts", "cdn_urls", "hub_archive_path", "hub_archive_url"]


class Part(NamedTuple):
    """One object of a file id on the CDN (a NamedTuple: URL lists are built in hot loops)."""

    kind: str  # "audio", "video", "feature", "transcript", "vad", "annotation"
    name: str  # npz key ("smplh:body_pose"), json key ("metadata:vad", "annotations:1P-IS"), or "wav"/"mp4"
    url: str
    required: bool

    @property
    def group(self) -> str:
        return self.name.split(":", 1)[0]


def _templates(movement_v4: bool) -> tuple[tuple[str, str, str, str, bool], ...]:
    out = [("audio", "wav", "audio/{}.wav", True), ("video", "mp4", "video/{}.mp4", True)]
    for group, features in FEATURE_GROUPS.items():
        if group == "movement_v4" and not movement_v4:
            continue
        out += [("feature", f"{group}:{f}", f"{group}/{f}/{{}}.npy", group == "smplh") for f in features]
    out.append(("transcript", "metadata:transcript", "metadata/transcript/{}.jsonl", False))
    out.append(("vad", "metadata:vad", "metadata/vad/{}.jsonl", True))
    out += [("annotation", f"annotations:{k}", f"annotations/{k}/{{}}.json", False) for k in ANNOTATION_TYPES]
    rows = []
    for kind, name, tpl, req in out:
        pre, post = tpl.split("{}")
        rows.append((kind, name, pre, post, req))
    return tuple(rows)


# Immutable, computed once at import: the layout never changes at run time.
_TEMPLATES = {True: _templates(True), False: _templates(False)}


def cdn_parts(cdn_url: str, label: str, split: str, file_id: str, *, movement_v4: bool = True) -> list[Part]:
    """Every CDN object of a file id: 50 with movement_v4, 33 without (FORMAT.md 2.1)."""
    base = f"{cdn_url.rstrip('/')}/{label}/{split}/"
    new = tuple.__new__  # skips NamedTuple's Python-level __new__: this runs 50 times per file id
    return [new(Part, (kind, name, base + pre + file_id + post, req))
            for kind, name, pre, post, req in _TEMPLATES[movement_v4]]


def cdn_urls(cdn_url: str, label: str, split: str, file_id: str, *, movement_v4: bool = True) -> list[str]:
    """Just the URLs of :func:`cdn_parts` (the official ``get_path_list_for_file_id_s3`` list)."""
    base = f"{cdn_url.rstrip('/')}/{label}/{split}/"
    return [base + pre + file_id + post for _, _, pre, post, _ in _TEMPLATES[movement_v4]]


def hub_archive_path(label: str, split: str, batch: int, archive: int) -> str:
    """``{label}/{split}/{batch:04d}/{archive:04d}.tar`` (FORMAT.md 2.2); raises InvalidIdError on bad parts."""
    ref = ArchiveRef(label, split, batch, archive)
    return f"{ref.label}/{ref.split}/{ref.batch:04d}/{ref.archive:04d}.tar"


def hub_archive_url(hf_url: str, label: str, split: str, batch: int, archive: int) -> str:
    return f"{hf_url.rstrip('/')}/{hub_archive_path(label, split, batch, archive)}"
