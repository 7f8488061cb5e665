"""URL layouts of the two remote routes (FORMAT.md section 2): pure string building, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from seamless_interaction.constants import ANNOTATION_TYPES, FEATURE_GROUPS


@dataclass(frozen=True)
class Part:
    """One object of a file id on the CDN."""

    kind: str  # "audio", "video", "feature", "transcript", "vad", "annotation"
    name: str  # npz key ("smplh:body_pose"), json key ("metadata:vad", "annotations:1P-IS"), or "wav"/"mp4"
    url: str
    required: bool

    @property
    def group(self) -> str:
        return self.name.split(":", 1)[0]


def cdn_parts(cdn_url: str, label: str, split: str, file_id: str, *, movement_v4: bool = True) -> list[Part]:
    """Every CDN object of a file id: 50 with movement_v4, 33 without (FORMAT.md 2.1)."""
    base = f"{cdn_url.rstrip('/')}/{label}/{split}"
    parts = [
        Part("audio", "wav", f"{base}/audio/{file_id}.wav", True),
        Part("video", "mp4", f"{base}/video/{file_id}.mp4", True),
    ]
    for group, features in FEATURE_GROUPS.items():
        if group == "movement_v4" and not movement_v4:
            continue
        for feat in features:
            parts.append(Part("feature", f"{group}:{feat}", f"{base}/{group}/{feat}/{file_id}.npy", group == "smplh"))
    parts.append(Part("transcript", "metadata:transcript", f"{base}/metadata/transcript/{file_id}.jsonl", False))
    parts.append(Part("vad", "metadata:vad", f"{base}/metadata/vad/{file_id}.jsonl", True))
    for kind in ANNOTATION_TYPES:
        parts.append(Part("annotation", f"annotations:{kind}", f"{base}/annotations/{kind}/{file_id}.json", False))
    return parts


def hub_archive_path(label: str, split: str, batch: int, archive: int) -> str:
    return f"{label}/{split}/{int(batch):04d}/{int(archive):04d}.tar"


def hub_archive_url(hf_url: str, label: str, split: str, batch: int, archive: int) -> str:
    return f"{hf_url.rstrip('/')}/{hub_archive_path(label, split, batch, archive)}"
