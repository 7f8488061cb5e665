"""The synthetic build: tables, CDN tree, tars, content and the planted dirt, checked against FORMAT.md."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.csv as pacsv
import pytest

from seamless_interaction.base import formats
from seamless_interaction.constants import CORE_NPZ_KEYS, MOVEMENT_NPZ_KEYS
from seamless_interaction.base.ids import FileId
from seamless_interaction.mirror import QUICK_SPEC, MirrorInfo, MirrorSpec, build_mirror, frame_marker, load_mirror_info
from seamless_interaction.remote.urls import cdn_parts, hub_archive_path

EXPECTED_SHAPES = {
    "boxes_and_keypoints:box": ((4,), np.float32), "boxes_and_keypoints:is_valid_box": ((), np.bool_),
    "boxes_and_keypoints:keypoints": ((133, 3), np.float32), "smplh:body_pose": ((21, 3), np.float32),
    "smplh:global_orient": ((3,), np.float32), "smplh:is_valid": ((), np.bool_),
    "smplh:left_hand_pose": ((15, 3), np.float32), "smplh:right_hand_pose": ((15, 3), np.float32),
    "smplh:translation": ((3,), np.float32),
    "movement:EmotionArousalToken": ((1,), np.float32), "movement:EmotionValenceToken": ((1,), np.float32),
    "movement:FAUToken": ((1,), np.float32), "movement:FAUValue": ((24,), np.float32),
    "movement:alignment_head_rotation": ((3,), np.float32),
    "movement:alignment_translation": ((2, 3), np.float32), "movement:emotion_arousal": ((1,), np.float32),
    "movement:emotion_scores": ((8,), np.float32), "movement:emotion_valence": ((1,), np.float32),
    "movement:expression": ((128,), np.float32), "movement:frame_latent": ((64,), np.float32),
    "movement:gaze_encodings": ((2,), np.float32), "movement:head_encodings": ((3,), np.float32),
    "movement:is_valid": ((1,), np.float32),
}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def assemble_from_cdn(mirror: MirrorInfo, file_id: str) -> dict[str, bytes]:
    """The CDN route by hand: every part urls.cdn_parts names, absent parts skipped (403 on the wire)."""
    rec = mirror.files[file_id]
    arrays, transcript, vad, annotations, media = {}, None, None, {}, {}
    for part in cdn_parts(str(mirror.cdn_dir), rec.label, rec.split, file_id, movement_v4=True):
        path = Path(part.url)
        if not path.exists():
            assert not part.required, part
            continue
        data = path.read_bytes()
        if part.kind == "feature":
            arrays[part.name] = np.load(io.BytesIO(data), allow_pickle=False)
        elif part.kind == "transcript":
            transcript = formats.parse_jsonl(data)
        elif part.kind == "vad":
            vad = formats.parse_jsonl(data)
        elif part.kind == "annotation":
            annotations[part.name.split(":", 1)[1]] = formats.parse_jsonl(data)
        else:
            media[part.name] = data
    doc = formats.bundle_json(file_id, transcript, vad, annotations or None)
    return {"json": formats.encode_json(doc), "mp4": media["mp4"], "npz": formats.encode_npz(arrays),
            "wav": media["wav"]}


# ------------------------------------------------------------------------------------------- tables
def test_tables_have_real_headers_and_parse(mirror: MirrorInfo) -> None:
    assets = mirror.assets_dir
    assert (assets / "filelist.csv").read_text().splitlines()[0] == (
        "file_id,label,split,batch_idx,archive_idx,has_imitator_movement,has_annotation_1p,has_annotation_3p")
    assert (assets / "interactions.csv").read_text().splitlines()[0] == (
        ",prompt_hash,prompt_id_unique,participant_a_prompt_text,participant_b_prompt_text,ipc_a,ipc_b,"
        "interaction_type")
    assert (assets / "participants.csv").read_text().splitlines()[0] == (
        "extraversion_raw,agreeableness_raw,conscientiousness_raw,neuroticism_raw,openness_raw,vendor_id,"
        "participant_id")
    assert (assets / "relationships.csv").read_text().splitlines()[0] == (
        "vendor_id,session_id,relationship,relationship_detail")
    # a real CSV parser copes with the quoted multi-line prompts (some with CRLF inside quotes)
    table = pacsv.read_csv(assets / "interactions.csv",
                           parse_options=pacsv.ParseOptions(newlines_in_values=True),
                           convert_options=pacsv.ConvertOptions(column_types={"prompt_hash": "string"}))
    rows = read_rows(assets / "interactions.csv")
    assert table.num_rows == len(rows)
    assert any("\n" in r["participant_a_prompt_text"] for r in rows)
    assert any("\r\n" in r["participant_a_prompt_text"] for r in rows)
    assert any(r["ipc_b"] == "" for r in rows) and any(r["ipc_b"] == "CGST" for r in rows)
    assert [r[""] for r in rows] == [str(i) for i in range(len(rows))]
    assert all(len(r["prompt_hash"]) == 8 for r in rows)
    people = read_rows(assets / "participants.csv")
    assert all(len(p["vendor_id"]) == 2 and p["vendor_id"].isdigit() for p in people)
    assert all(not p["participant_id"].startswith("P") for p in people)
    assert any(p["participant_id"].endswith("A") for p in people)
    assert any(p["extraversion_raw"] == "Undisclosed" for p in people)
    rel = read_rows(assets / "relationships.csv")
    assert all(r["vendor_id"].startswith("V") and len(r["session_id"]) == 4 for r in rel)
    assert {r["relationship"] for r in rel} <= {"stranger", "familiar"}


def test_tables_join(mirror: MirrorInfo) -> None:
    assets = mirror.assets_dir
    prompts = {r["prompt_hash"] for r in read_rows(assets / "interactions.csv")}
    people = {(r["vendor_id"], r["participant_id"]) for r in read_rows(assets / "participants.csv")}
    sessions = {(r["vendor_id"], r["session_id"]) for r in read_rows(assets / "relationships.csv")}
    ids = [FileId.parse(f) for f in mirror.file_ids]
    assert all(f.interaction in prompts for f in ids)
    joined_p = sum((f.vendor, f.participant) in people for f in ids)
    joined_s = sum((f.vendor_id, f.session) in sessions for f in ids)
    assert len(ids) - 3 <= joined_p < len(ids)  # most, not all
    assert len(ids) - 3 <= joined_s < len(ids)


def test_filelist_matches_info_and_tars(mirror: MirrorInfo) -> None:
    rows = read_rows(mirror.assets_dir / "filelist.csv")
    assert [r["file_id"] for r in rows] == mirror.file_ids
    named = set()
    for r in rows:
        rec = mirror.files[r["file_id"]]
        arch = (r["label"], r["split"], int(r["batch_idx"]), int(r["archive_idx"]))
        assert arch == (rec.label, rec.split, rec.batch, rec.archive)
        assert r["has_imitator_movement"] == str(int(rec.vendor == "V00"))
        assert r["has_annotation_1p"] == str(int(any(a.startswith("1P") for a in rec.annotations)))
        assert r["has_annotation_3p"] == str(int(any(a.startswith("3P") for a in rec.annotations)))
        named.add(arch)
    assert sorted(named) == mirror.archives
    on_hub = {tuple(p.relative_to(mirror.hub_dir).with_suffix("").parts) for p in mirror.hub_dir.rglob("*.tar")}
    on_hub = {(a, b, int(c), int(d)) for a, b, c, d in on_hub}
    assert on_hub == (named - {mirror.missing_archive}) | {mirror.extra_archive}
    assert mirror.missing_archive[:2] == ("naturalistic", "test")
    for arch in named - {mirror.missing_archive}:
        names = list(tar_members(mirror.hub_dir / hub_archive_path(*arch)))
        assert names == [f"{f}.{ext}" for f in mirror.archive_ids(*arch) for ext in ("json", "mp4", "npz", "wav")]
    extra = list(tar_members(mirror.hub_dir / hub_archive_path(*mirror.extra_archive)))
    assert extra == [f"{f}.{ext}" for f in mirror.extra_archive_ids for ext in ("json", "mp4", "npz", "wav")]


def test_every_id_has_its_cdn_objects(mirror: MirrorInfo) -> None:
    for fid in mirror.file_ids:
        rec = mirror.files[fid]
        present = {p.name for p in cdn_parts(str(mirror.cdn_dir), rec.label, rec.split, fid)
                   if Path(p.url).exists()}
        expected = {"wav", "mp4", "metadata:vad", *CORE_NPZ_KEYS, *(MOVEMENT_NPZ_KEYS if rec.movement else ())}
        expected |= {f"annotations:{a}" for a in rec.annotations}
        if rec.has_transcript:
            expected.add("metadata:transcript")
        assert present == expected, fid
    assert not list(mirror.cdn_dir.rglob("movement_v4"))


def test_tar_member_headers(mirror: MirrorInfo) -> None:
    path = mirror.hub_dir / hub_archive_path(*mirror.archives[0])
    data = path.read_bytes()
    assert len(data) % 10240 == 0
    assert data[:512].rstrip(b"\0").startswith(b"././@PaxHeader")  # PAX record for the float mtime
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            assert (m.mode, m.uname, m.gname, m.isreg()) == (0o444, "bigdata", "bigdata", True)
            assert m.pax_headers.get("mtime") == "1751328000.5"


# ------------------------------------------------------------------------------------------ content
def test_cdn_assembly_equals_tar_members(mirror: MirrorInfo) -> None:
    for arch in mirror.archives:
        if arch == mirror.missing_archive:
            continue
        members = tar_members(mirror.hub_dir / hub_archive_path(*arch))
        for fid in mirror.archive_ids(*arch):
            built = assemble_from_cdn(mirror, fid)
            for ext in ("json", "mp4", "npz", "wav"):
                assert built[ext] == members[f"{fid}.{ext}"], (fid, ext)


def test_some_cdn_features_are_float64_exactly_castable(mirror: MirrorInfo) -> None:
    fid = mirror.movement[0]
    rec = mirror.files[fid]
    base = mirror.cdn_dir / rec.label / rec.split
    t = np.load(base / "smplh" / "translation" / f"{fid}.npy")
    assert t.dtype == np.float64 and np.array_equal(t.astype(np.float32).astype(np.float64), t)
    assert np.load(base / "smplh" / "is_valid" / f"{fid}.npy").dtype == np.bool_
    assert np.load(base / "movement" / "expression" / f"{fid}.npy").dtype == np.float32


def test_npz_keys_shapes_dtypes(mirror: MirrorInfo) -> None:
    for arch in mirror.archives[:4]:
        members = tar_members(mirror.hub_dir / hub_archive_path(*arch))
        for fid in mirror.archive_ids(*arch):
            rec = mirror.files[fid]
            npz = formats.decode_npz(members[f"{fid}.npz"])
            assert len(npz) == (24 if rec.vendor == "V00" else 9)
            assert list(npz) == sorted(npz)
            n = rec.n_frames
            for key, arr in npz.items():
                if key == "movement:hypernet_features":
                    assert arr.shape == (n // 15, 5120) and arr.dtype == np.float32
                else:
                    shape, dtype = EXPECTED_SHAPES[key]
                    assert arr.shape == (n, *shape) and arr.dtype == dtype, key
            if rec.vendor == "V00":
                assert set(np.unique(npz["movement:is_valid"])) <= {0.0, 1.0}


def test_media_json_and_pairs(mirror: MirrorInfo) -> None:
    for a, b in mirror.pairs:
        ra, rb = mirror.files[a], mirror.files[b]
        if ra.placeholder or rb.placeholder:
            continue
        assert (ra.n_frames, ra.wav_frames) == (rb.n_frames, rb.wav_frames)
    fid = next(f for f in mirror.file_ids if mirror.files[f].has_transcript and not mirror.files[f].placeholder
               and not mirror.files[f].annotations)
    rec = mirror.files[fid]
    members = tar_members(mirror.hub_dir / hub_archive_path(rec.label, rec.split, rec.batch, rec.archive))
    samples, sr = formats.decode_wav(members[f"{fid}.wav"])
    assert sr == 48_000 and samples.dtype == np.float32 and samples.shape == (rec.wav_frames,)
    text = members[f"{fid}.json"].decode()
    doc = json.loads(text)
    assert list(doc) == ["id", "metadata:transcript", "metadata:vad"] and doc["id"] == fid
    assert text == json.dumps(doc, indent=4)
    vad = doc["metadata:vad"]
    assert vad and all(set(s) == {"start", "end"} and s["start"] < s["end"] for s in vad)
    # speech-like bursts inside VAD segments, near silence outside
    seg = vad[0]
    inside = samples[int(seg["start"] * sr) + 100:int(seg["end"] * sr) - 100]
    assert np.abs(inside).max() > 0.05 and np.abs(samples[: int(vad[0]["start"] * sr) - 10]).max() < 0.05
    words = [w for s in doc["metadata:transcript"] for w in s["words"]]
    assert all(list(s) == ["words", "start", "end", "transcript"] for s in doc["metadata:transcript"])
    assert all({"word", "start", "end"} <= set(w) for w in words)


def test_unaligned_words_exist(mirror: MirrorInfo) -> None:
    nulls = 0
    for fid in mirror.file_ids:
        rec = mirror.files[fid]
        path = mirror.cdn_dir / rec.label / rec.split / "metadata" / "transcript" / f"{fid}.jsonl"
        if path.exists():
            for seg in formats.parse_jsonl(path.read_bytes()):
                nulls += sum(w["start"] is None and w["end"] is None and "score" not in w for w in seg["words"])
    assert nulls >= 3


def test_v01_ntsc_video_decodes_with_features_n(mirror: MirrorInfo) -> None:
    assert len(mirror.non30fps) >= 1
    fid = mirror.non30fps[0]
    rec = mirror.files[fid]
    assert rec.vendor == "V01" and rec.fps == "30000/1001"
    path = mirror.cdn_dir / rec.label / rec.split / "video" / f"{fid}.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
    assert len(frames) == rec.n_frames
    assert rec.n_frames == int(mirror.spec.duration_s * 30000 / 1001)  # fewer frames than a 30 fps file
    members = tar_members(mirror.hub_dir / rec.archive_path)
    assert formats.decode_npz(members[f"{fid}.npz"])["smplh:body_pose"].shape[0] == len(frames)
    # the top band encodes the frame index, so a seek can be checked
    lumas = [int(np.median(f.to_ndarray(format="yuv420p")[2:14])) for f in frames[:5]]
    assert all(abs(got - frame_marker(i)) <= 4 for i, got in enumerate(lumas)), lumas


def test_video_seek_lands_on_marked_frame(mirror: MirrorInfo) -> None:
    fid = mirror.movement[0]
    rec = mirror.files[fid]
    path = mirror.cdn_dir / rec.label / rec.split / "video" / f"{fid}.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        target = rec.n_frames // 2
        container.seek(int(target / stream.average_rate / stream.time_base), stream=stream, any_frame=False,
                       backward=True)
        for frame in container.decode(stream):
            if frame.pts * stream.time_base >= Fraction(target) / stream.average_rate:
                break
    index = round(frame.pts * stream.time_base * stream.average_rate)
    assert index == target
    assert abs(int(np.median(frame.to_ndarray(format="yuv420p")[2:14])) - frame_marker(target)) <= 4


# --------------------------------------------------------------------------------------------- dirt
def test_suffixed_id_kept_and_stem_exists(mirror: MirrorInfo) -> None:
    assert mirror.suffixed
    for fid in mirror.suffixed:
        f = FileId.parse(fid)
        assert f.vendor == "00" and f.participant.endswith("A")
        stem = f.participant[:-1]
        assert any(FileId.parse(o).participant == stem and FileId.parse(o).vendor == "00" for o in mirror.file_ids)
        rec = mirror.files[fid]
        assert (mirror.cdn_dir / rec.label / rec.split / "audio" / f"{fid}.wav").exists()
    rows = read_rows(mirror.assets_dir / "filelist.csv")
    assert set(mirror.suffixed) <= {r["file_id"] for r in rows}


def test_placeholder_bundle_sizes(mirror: MirrorInfo) -> None:
    assert len(mirror.placeholder) == 1
    fid = mirror.placeholder[0]
    rec = mirror.files[fid]
    members = tar_members(mirror.hub_dir / hub_archive_path(rec.label, rec.split, rec.batch, rec.archive))
    assert len(members[f"{fid}.mp4"]) == 261
    assert len(members[f"{fid}.wav"]) == 58
    assert len(members[f"{fid}.json"]) == (97 if fid[-1].isalpha() else 96)
    assert json.loads(members[f"{fid}.json"]) == {"id": fid, "metadata:transcript": [], "metadata:vad": []}
    assert len(members[f"{fid}.npz"]) == (5305 if rec.movement else 1981)
    assert all(a.shape[0] == 0 for a in formats.decode_npz(members[f"{fid}.npz"]).values())
    assert formats.read_wav_info(members[f"{fid}.wav"]).frames == 0
    with pytest.raises(Exception):  # noqa: B017 - any PyAV error: the point is that nothing decodes
        with av.open(io.BytesIO(members[f"{fid}.mp4"])) as container:
            next(container.decode(video=0))


def test_other_dirt(mirror: MirrorInfo) -> None:
    assert mirror.split_pairs
    assert any(mirror.files[a].label == "improvised" and mirror.files[a].split == "dev" for a, _ in mirror.split_pairs)
    for a, b in mirror.split_pairs:
        ra, rb = mirror.files[a], mirror.files[b]
        assert (ra.label, ra.split, ra.batch) == (rb.label, rb.split, rb.batch) and ra.archive != rb.archive
    assert len(mirror.pairs) > len(mirror.split_pairs)  # some pairs share an archive too
    assert mirror.no_transcript and all(not mirror.files[f].has_transcript for f in mirror.no_transcript)
    assert {mirror.files[f].vendor for f in mirror.movement} == {"V00"}
    assert {r.vendor for r in mirror.files.values()} >= {"V00", "V01", "V03"}
    assert {(r.label, r.split) for r in mirror.files.values()} >= {
        ("improvised", "dev"), ("improvised", "test"), ("naturalistic", "dev"), ("naturalistic", "test")}
    assert mirror.singletons and all(len(FileId.parse(s).participant) >= 4 for s in mirror.singletons)
    kinds = {a for f in mirror.annotated for a in mirror.files[f].annotations}
    assert {"1P-IS", "1P-R"} <= kinds and any(k.startswith("3P") for k in kinds)
    one_p = [f for f in mirror.annotated if any(a.startswith("1P") for a in mirror.files[f].annotations)]
    assert {mirror.files[f].vendor for f in one_p} == {"V03"}
    # annotation objects are JSON Lines despite the .json name, and land in an indent=2 json
    fid = one_p[0]
    rec = mirror.files[fid]
    raw = (mirror.cdn_dir / rec.label / rec.split / "annotations" / "1P-IS" / f"{fid}.json").read_bytes()
    recs = formats.parse_jsonl(raw)
    assert recs and all(set(r) == {"annotation", "start_ts", "end_ts"} for r in recs)
    members = tar_members(mirror.hub_dir / rec.archive_path)
    doc = json.loads(members[f"{fid}.json"])
    assert doc["annotations:1P-IS"] == recs
    assert members[f"{fid}.json"].decode() == json.dumps(doc, indent=2)
    # the same prompt id recurs in another session
    prompts = [FileId.parse(f).interaction for f in mirror.file_ids]
    sessions = {}
    for f in mirror.file_ids:
        p = FileId.parse(f)
        sessions.setdefault(p.interaction, set()).add(p.session_key)
    assert any(len(s) > 1 for s in sessions.values()) and prompts


def test_info_round_trips_and_marker(mirror: MirrorInfo) -> None:
    again = load_mirror_info(mirror.root)
    assert again == mirror
    assert MirrorInfo.from_json(mirror.to_json()) == mirror


# ------------------------------------------------------------------------------------ build behaviour
def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "mirror.json"}


def test_deterministic_and_idempotent(mirror: MirrorInfo, tmp_path: Path) -> None:
    other = build_mirror(tmp_path / "again", QUICK_SPEC)
    assert tree_digest(other.root) == tree_digest(mirror.root)
    marker = (other.root / "mirror.json").stat().st_mtime_ns
    assert build_mirror(tmp_path / "again", QUICK_SPEC) == other
    assert (other.root / "mirror.json").stat().st_mtime_ns == marker  # not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name != "again"]  # no temp folders left behind


def test_other_spec_rebuilds_and_scales(tmp_path: Path) -> None:
    spec = MirrorSpec(seed=3, duration_s=1.0, extra_interactions=1, video_padding_bytes=5000, samples_per_archive=2)
    info = build_mirror(tmp_path / "m", spec)
    assert len(info.file_ids) == 21 + 8
    rec = info.files[info.movement[0]]
    mp4 = (info.cdn_dir / rec.label / rec.split / "video" / f"{info.movement[0]}.mp4")
    assert mp4.stat().st_size > 5000
    with av.open(str(mp4)) as container:  # the padding box does not break decoding
        assert len(list(container.decode(video=0))) == rec.n_frames
    smaller = build_mirror(tmp_path / "m", QUICK_SPEC)  # different spec: replaced in place
    assert smaller.spec == QUICK_SPEC and len(smaller.file_ids) == 21


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        build_mirror(tmp_path)
    assert (tmp_path / "precious.txt").exists()
