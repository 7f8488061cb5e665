"""Dataset constants from FORMAT.md: labels, splits, feature groups, URL defaults."""

from __future__ import annotations

__all__ = [
    "EXPORT_FORMATS",
    "ALL_FEATURES",
    "ALL_LABELS",
    "ALL_SPLITS",
    "ANNOTATION_TYPES",
    "ASSET_TABLES",
    "AUDIO_SAMPLE_RATE",
    "BOXES_AND_KEYPOINTS_FEATURES",
    "BUNDLE_EXTENSIONS",
    "CORE_NPZ_KEYS",
    "DEFAULT_ASSETS_URL",
    "DEFAULT_CDN_URL",
    "DEFAULT_HF_URL",
    "ENV_ASSETS",
    "ENV_CACHE_DIR",
    "ENV_CDN_URL",
    "ENV_HF_URL",
    "FEATURE_GROUPS",
    "HYPERNET_STRIDE",
    "METADATA_TYPES",
    "MOVEMENT_FEATURES",
    "MOVEMENT_NPZ_KEYS",
    "MOVEMENT_V4_FEATURES",
    "PREFERRED_VENDORS",
    "SMPLH_FEATURES",
    "VAD_RATE",
]

ALL_LABELS = ("improvised", "naturalistic")
ALL_SPLITS = ("train", "dev", "test")
# The official toolkit samples from a preferred subset of vendors by default; V00 and V01 carry the
# 1080p, 30 fps recordings with the fullest feature sets (FORMAT.md section 7).
PREFERRED_VENDORS = ("V00", "V01")

DEFAULT_CDN_URL = "https://dl.fbaipublicfiles.com/seamless_interaction"
DEFAULT_HF_URL = "https://huggingface.co/datasets/facebook/seamless-interaction/resolve/main"
# The four metadata tables as published with the official toolkit (assets/ of its main branch).
DEFAULT_ASSETS_URL = "https://raw.githubusercontent.com/facebookresearch/seamless_interaction/main/assets"
ASSET_TABLES = ("filelist.csv", "interactions.csv", "participants.csv", "relationships.csv")

ENV_CDN_URL = "SEAMLESS_INTERACTION_CDN_URL"
ENV_HF_URL = "SEAMLESS_INTERACTION_HF_URL"
ENV_ASSETS = "SEAMLESS_INTERACTION_ASSETS"
ENV_CACHE_DIR = "SEAMLESS_INTERACTION_CACHE"

SMPLH_FEATURES = ("body_pose", "global_orient", "is_valid", "left_hand_pose", "right_hand_pose", "translation")
BOXES_AND_KEYPOINTS_FEATURES = ("box", "is_valid_box", "keypoints")
MOVEMENT_FEATURES = (
    "EmotionArousalToken", "EmotionValenceToken", "FAUToken", "FAUValue", "alignment_head_rotation",
    "alignment_translation", "emotion_arousal", "emotion_scores", "emotion_valence", "expression",
    "frame_latent", "gaze_encodings", "head_encodings", "hypernet_features", "is_valid",
)
MOVEMENT_V4_FEATURES = MOVEMENT_FEATURES + ("is_occluded", "pred_vertices")
ANNOTATION_TYPES = ("1P-IS", "1P-R", "3P-IS", "3P-R", "3P-V")
METADATA_TYPES = ("transcript", "vad")

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "smplh": SMPLH_FEATURES,
    "boxes_and_keypoints": BOXES_AND_KEYPOINTS_FEATURES,
    "movement": MOVEMENT_FEATURES,
    "movement_v4": MOVEMENT_V4_FEATURES,
}
# Official-toolkit name for the same table, kept for user code that imports it.
ALL_FEATURES: dict[str, tuple[str, ...]] = {
    **FEATURE_GROUPS,
    "metadata": METADATA_TYPES,
    "annotations": ANNOTATION_TYPES,
}

CORE_NPZ_KEYS = tuple(
    sorted([f"smplh:{f}" for f in SMPLH_FEATURES] + [f"boxes_and_keypoints:{f}" for f in BOXES_AND_KEYPOINTS_FEATURES])
)
MOVEMENT_NPZ_KEYS = tuple(sorted(f"movement:{f}" for f in MOVEMENT_FEATURES))

# The official toolkit's pattern, kept for code that imports it. It matches ids by prefix and drops a
# participant's letter suffix (P0299A -> 0299); this package parses ids with base.ids.FILE_ID_RE.
FILE_ID_REGEX = r"V(\d+)_S(\d+)_I(\d+)_P(\d+)"

BUNDLE_EXTENSIONS = ("json", "mp4", "npz", "wav")  # tar member order (sorted)

AUDIO_SAMPLE_RATE = 48_000
HYPERNET_STRIDE = 15  # movement:hypernet_features has one row per 15 frames
VAD_RATE = 100
# Formats of `seamless-interaction export` (here so the CLI parser needs no export code to list them).
EXPORT_FORMATS = ("lhotse", "elan", "textgrid", "rttm", "rerun", "clip")
