"""Lhotse, ELAN, TextGrid and RTTM exports, each read back with the format's own library."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from export_builders import MISMATCH_SAMPLES

from seamless_interaction.base import conversation, formats
from seamless_interaction.base.errors import (
    ExportError,
    InvalidIdError,
    NotDownloadedError,
)
from seamless_interaction.base.ids import FileId
from seamless_interaction.cli import main
from seamless_interaction.local import layout
from seamless_interaction.operations.export import export
from seamless_interaction.operations.export.source import resolve_selection


def _doc(root: Path, fid: str) -> dict:
    return json.loads(layout.find_bundle(root, fid)["json"].read_text())


def _pid(fid: str) -> str:
    return "P" + FileId.parse(fid).participant


def _spurts(root: Path, fid: str) -> list[tuple[float, float]]:
    return conversation.talkspurts(conversation.vad_segments(_doc(root, fid)["metadata:vad"]))


def _flat(spans) -> list[float]:
    return [float(t) for span in spans for t in span]


def _ids(root: Path, key: str) -> list[str]:
    return sorted({p.name.split(".")[0] for p in root.rglob(f"{key}_P*.json")})


# ----------------------------------------------------------------------------------------- selection
def test_selection_groups_by_interaction(local_tree, sample_mirror, tmp_path):
    a, b = sample_mirror.split_pairs[0]
    key = FileId.parse(a).interaction_key
    assert resolve_selection([key], local_dir=local_tree)[key].keys() == {a, b}
    assert resolve_selection([a], local_dir=local_tree)[key].keys() == {a}  # a file id: that participant
    assert resolve_selection([b, a], local_dir=local_tree)[key].keys() == {a, b}
    folder = layout.find_bundle(local_tree, a)["json"].parent
    found = resolve_selection([folder], local_dir=None)
    assert sorted(f for g in found.values() for f in g) == sorted(p.stem for p in folder.glob("*.json"))
    with pytest.raises(InvalidIdError):
        resolve_selection(["V00_S0001_I0001"], local_dir=local_tree)
    with pytest.raises(NotDownloadedError, match="V00_S0001_I00000009"):
        resolve_selection(["V00_S0001_I00000009"], local_dir=local_tree)
    with pytest.raises(ExportError, match="no such folder"):
        resolve_selection([str(tmp_path / "nope" / "x")], local_dir=local_tree)
    with pytest.raises(ExportError, match="no bundle files"):
        resolve_selection([tmp_path], local_dir=local_tree)


def test_unknown_format_and_empty_selection(local_tree, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'csv'"):
        export(["V00_S0001_I00000001"], to="csv", out=tmp_path, local_dir=local_tree)
    with pytest.raises(ExportError, match="nothing to export"):
        export([], to="rttm", out=tmp_path, local_dir=local_tree)
    with pytest.raises(ExportError, match="start_s and end_s"):
        export([local_tree], to="clip", out=tmp_path)


# ------------------------------------------------------------------------------------------- Lhotse
def test_lhotse_manifests_validate_and_load(local_tree, dirty_tree, sample_mirror, tmp_path):
    from lhotse import CutSet, load_manifest
    from lhotse.qa import validate_recordings_and_supervisions

    pair = sample_mirror.pairs[0]  # the suffixed id and its partner, with an untimed word
    key = FileId.parse(pair[0]).interaction_key
    result = export([key], to="lhotse", out=tmp_path / "a", local_dir=local_tree)
    result2 = export([dirty_tree.root], to="lhotse", out=tmp_path / "b")
    assert sorted(result2.interactions) == sorted([dirty_tree.mismatch_key, dirty_tree.empty_vad_key,
                                                   dirty_tree.lonely_key, dirty_tree.points_key])
    for res, root in ((result, local_tree), (result2, dirty_tree.root)):
        recs = load_manifest(res.out / "seamless_interaction_recordings.jsonl.gz")
        sups = load_manifest(res.out / "seamless_interaction_supervisions.jsonl.gz")
        vads = load_manifest(res.out / "seamless_interaction_supervisions_vad.jsonl.gz")
        validate_recordings_and_supervisions(recs, sups, read_data=True)
        validate_recordings_and_supervisions(recs, vads)
        cuts = CutSet.from_manifests(recordings=recs, supervisions=sups)
        for cut in cuts:
            ids = _ids(root, cut.recording_id)
            audio = cut.load_audio()
            assert audio.shape == (len(ids), cut.num_samples)
            for ch, fid in enumerate(ids):
                wav, _ = formats.decode_wav(layout.find_bundle(root, fid)["wav"].read_bytes())
                np.testing.assert_array_equal(audio[ch, :len(wav)], wav)
                assert not audio[ch, len(wav):].any()  # the shorter partner is padded with zeros
                # one supervision per utterance, on this participant's channel, speaker with suffix
                mine = [s for s in cut.supervisions if s.channel == ch]
                doc = _doc(root, fid)
                segs = doc.get("metadata:transcript") or []
                assert [s.speaker for s in mine] == [_pid(fid)] * len(segs)
                assert [s.text for s in mine] == [seg["transcript"].strip() for seg in segs]
                for s, seg in zip(sorted(mine, key=lambda s: s.id), segs):
                    assert s.start == pytest.approx(seg["start"]) and s.end == pytest.approx(seg["end"])
                    timed = [w for w in seg["words"] if w["start"] is not None]
                    untimed = [w["word"] for w in seg["words"] if w["start"] is None]
                    got = s.alignment["word"] if s.alignment else []
                    assert [(a.symbol, round(a.start, 3), round(a.end, 3)) for a in got] == \
                        [(w["word"], w["start"], w["end"]) for w in timed]
                    assert (s.custom or {}).get("untimed_words", []) == untimed
                    assert all(u in s.text.split() for u in untimed)  # kept in the text, no invented time
                vad = sorted((v.start, v.end) for v in vads if v.recording_id == cut.recording_id and v.channel == ch)
                assert _flat(vad) == pytest.approx(_flat(_spurts(root, fid)))
    recs = load_manifest(result2.out / "seamless_interaction_recordings.jsonl.gz")
    mism = recs[dirty_tree.mismatch_key]
    lengths = [formats.read_wav_info(layout.find_bundle(dirty_tree.root, f)["wav"].read_bytes()).frames
               for f in _ids(dirty_tree.root, dirty_tree.mismatch_key)]
    assert lengths[0] - lengths[1] == MISMATCH_SAMPLES and mism.num_samples == max(lengths)
    assert recs[dirty_tree.lonely_key].num_channels == 1
    vads = load_manifest(result2.out / "seamless_interaction_supervisions_vad.jsonl.gz")
    assert {v.channel for v in vads if v.recording_id == dirty_tree.empty_vad_key} == {0}
    untimed = [s for s in load_manifest(result.out / "seamless_interaction_supervisions.jsonl.gz")
               if (s.custom or {}).get("untimed_words")]
    assert untimed and all(s.speaker == _pid(pair[0]) or s.speaker == _pid(pair[1]) for s in untimed)
    assert any(s.speaker.endswith("A") for s in load_manifest(result.out / "seamless_interaction_supervisions.jsonl.gz"))


def test_placeholder_partner_is_left_out(local_tree, sample_mirror, tmp_path):
    from lhotse import load_manifest

    ph = sample_mirror.placeholder[0]
    key = FileId.parse(ph).interaction_key
    res = export([key], to="lhotse", out=tmp_path, local_dir=local_tree)
    assert res.partial == [key]
    [rec] = load_manifest(tmp_path / "seamless_interaction_recordings.jsonl.gz")
    assert rec.num_channels == 1 and ph not in rec.sources[0].source


# --------------------------------------------------------------------------------------------- ELAN
def test_elan_tiers_times_and_media(local_tree, dirty_tree, sample_mirror, tmp_path):
    from pympi import Elan

    annotated = next(f for f in sample_mirror.annotated if FileId.parse(f).vendor == "00")
    keys = [FileId.parse(sample_mirror.pairs[0][0]).interaction_key, FileId.parse(annotated).interaction_key]
    out = tmp_path / "deep" / "eaf"
    res = export(keys, to="elan", out=out, local_dir=local_tree)
    res2 = export([dirty_tree.root], to="elan", out=out, local_dir=None)
    for path in res.paths + res2.paths:
        key = path.name[:-4]
        root = local_tree if path in res.paths else dirty_tree.root
        eaf = Elan.Eaf(str(path))
        ids = _ids(root, key)
        media = {Path(os.path.normpath(out / m["RELATIVE_MEDIA_URL"])) for m in eaf.get_linked_files()}
        assert media == {layout.find_bundle(root, f)[ext].resolve() for f in ids for ext in ("mp4", "wav")}
        for fid in ids:
            pid, doc = _pid(fid), _doc(root, fid)
            segs = doc.get("metadata:transcript") or []
            utts = sorted(eaf.get_annotation_data_for_tier(f"{pid} utterances"))
            assert utts == [(round(s["start"] * 1000), round(s["end"] * 1000), s["transcript"].strip()) for s in segs]
            words = sorted(eaf.get_annotation_data_for_tier(f"{pid} words"))
            assert words == [(round(w["start"] * 1000), round(w["end"] * 1000), w["word"])
                             for s in segs for w in s["words"] if w["start"] is not None]
            assert eaf.get_parameters_for_tier(f"{pid} words")["PARENT_REF"] == f"{pid} utterances"
            vad = sorted(eaf.get_annotation_data_for_tier(f"{pid} vad"))
            assert vad == [(round(a * 1000), round(b * 1000), "speech") for a, b in _spurts(root, fid)]
            for k in (k for k in doc if k.startswith("annotations:")):
                kind = k.split(":")[1]
                got = sorted(x for t in eaf.tiers if t.startswith(f"{pid} {kind}")
                             for x in eaf.get_annotation_data_for_tier(t))
                assert got == sorted((round(r["start_ts"] * 1000), round(r["end_ts"] * 1000), r["annotation"])
                                     for r in doc[k])
                for t in (t for t in eaf.tiers if t.startswith(f"{pid} {kind}")):  # no overlap in a tier
                    spans = sorted(eaf.get_annotation_data_for_tier(t))
                    assert all(x[1] <= y[0] for x, y in itertools.pairwise(spans))
    eaf = Elan.Eaf(str(out / f"{dirty_tree.empty_vad_key}.eaf"))
    assert eaf.get_annotation_data_for_tier("P0004 vad") == [] and eaf.get_annotation_data_for_tier("P0003 vad")
    assert any(t.startswith(f"{_pid(annotated)} 3P-") for t in Elan.Eaf(str(out / f"{keys[1]}.eaf")).tiers)


# ----------------------------------------------------------------------------------------- TextGrid
def test_textgrid_tiers(local_tree, dirty_tree, sample_mirror, tmp_path):
    from praatio import textgrid

    key = FileId.parse(sample_mirror.pairs[0][0]).interaction_key
    res = export([key], to="textgrid", out=tmp_path, local_dir=local_tree)
    res2 = export([dirty_tree.root], to="textgrid", out=tmp_path)
    for path in res.paths + res2.paths:
        root = local_tree if path in res.paths else dirty_tree.root
        key = path.name.split(".")[0]
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
        ids = _ids(root, key)
        assert tg.maxTimestamp == pytest.approx(max(
            formats.read_wav_info(layout.find_bundle(root, f)["wav"].read_bytes()).duration_s for f in ids))
        for fid in ids:
            pid, doc = _pid(fid), _doc(root, fid)
            segs = doc.get("metadata:transcript") or []
            utts = tg.getTier(f"{pid} utterances").entries
            assert [e.label for e in utts] == [s["transcript"].strip() for s in segs]
            assert _flat((e.start, e.end) for e in utts) == pytest.approx(_flat((s["start"], s["end"]) for s in segs))
            assert [(round(e.start, 3), round(e.end, 3), e.label) for e in tg.getTier(f"{pid} words").entries] == \
                [(w["start"], w["end"], w["word"]) for s in segs for w in s["words"] if w["start"] is not None]
            assert _flat((e.start, e.end) for e in tg.getTier(f"{pid} vad").entries) == \
                pytest.approx(_flat(_spurts(root, fid)))
    tg = textgrid.openTextgrid(str(tmp_path / f"{dirty_tree.empty_vad_key}.TextGrid"), includeEmptyIntervals=False)
    assert list(tg.getTier("P0004 vad").entries) == [] and tg.getTier("P0003 vad").entries


# --------------------------------------------------------------------------------------------- RTTM
def _rttm(path: Path) -> list[tuple[str, float, float]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        assert len(f) == 10 and f[0] == "SPEAKER" and f[1] == path.name.split(".")[0] and f[2] == "1"
        assert f[5:7] == ["<NA>", "<NA>"] and f[8:] == ["<NA>", "<NA>"]
        out.append((f[7], float(f[3]), float(f[3]) + float(f[4])))
    return out


def test_rttm_from_vad_transcript_and_turns(local_tree, dirty_tree, sample_mirror, tmp_path):
    key = FileId.parse(sample_mirror.pairs[0][0]).interaction_key
    export([key], to="rttm", out=tmp_path, local_dir=local_tree)
    export([dirty_tree.root], to="rttm", out=tmp_path)
    for root, k in [(local_tree, key)] + [(dirty_tree.root, k) for k in (dirty_tree.mismatch_key,
                                                                           dirty_tree.empty_vad_key,
                                                                           dirty_tree.lonely_key)]:
        ids = _ids(root, k)
        vad = _rttm(tmp_path / f"{k}.vad.rttm")
        want = sorted(((_pid(f), a, b) for f in ids for a, b in _spurts(root, f)), key=lambda t: (t[1], t[0]))
        assert [v[0] for v in vad] == [w[0] for w in want]
        assert _flat(v[1:] for v in vad) == pytest.approx(_flat(w[1:] for w in want), abs=1.5e-3)
        words = _rttm(tmp_path / f"{k}.transcript.rttm")
        want = sorted(((_pid(f), s["start"], s["end"]) for f in ids
                       for s in _doc(root, f).get("metadata:transcript") or []), key=lambda t: (t[1], t[0]))
        assert [(w[0], round(w[1], 3), round(w[2], 3)) for w in words] == want
        turns_path = tmp_path / f"{k}.turns.rttm"
        if len(ids) == 2 and all(_spurts(root, f) for f in ids):
            floor = conversation.turns(_spurts(root, ids[0]), _spurts(root, ids[1]))
            names = {"A": _pid(ids[0]), "B": _pid(ids[1])}
            assert [(t[0], round(t[1], 3), round(t[2], 3)) for t in _rttm(turns_path)] == \
                [(names[w], round(a, 3), round(b, 3)) for w, a, b in floor]
        else:  # an empty VAD or a missing partner: no turns, never an error
            assert not turns_path.exists()
    assert {s for s, *_ in _rttm(tmp_path / f"{dirty_tree.mismatch_key}.vad.rttm")} == {"P0001A", "P0002"}


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_export(local_tree, sample_mirror, tmp_path, capsys):
    key = FileId.parse(sample_mirror.pairs[0][0]).interaction_key
    assert main(["export", "--to", "rttm", "--local-dir", str(local_tree), "--out", str(tmp_path), "-q", key]) == 0
    assert "1 interaction(s) to rttm" in capsys.readouterr().out
    assert (tmp_path / f"{key}.vad.rttm").exists()
    assert main(["export", "--to", "clip", "--local-dir", str(local_tree), "-q", key]) == 2
    assert capsys.readouterr().err.startswith("error: --to clip needs --start and --end")
    assert main(["export", "--to", "elan", "--local-dir", str(local_tree), "-q", "V99_S0001_I00000001"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: V99_S0001_I00000001: no local files") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["export", "--to", "csv", key])


def test_cli_export_from_a_query(local_tree, sample_mirror, sample_server, tmp_path, capsys, monkeypatch):
    """--query selects through the catalog views (no index needed for `files`)."""
    monkeypatch.setenv("SEAMLESS_INTERACTION_ASSETS", sample_server.assets_url)
    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(tmp_path / "cache"))
    key = FileId.parse(sample_mirror.pairs[0][0]).interaction_key
    sql = f"SELECT file_id FROM files WHERE file_id LIKE '{key}%'"
    assert main(["export", "--to", "rttm", "--local-dir", str(local_tree), "--out", str(tmp_path), "-q",
                 "--query", sql]) == 0
    assert "1 interaction(s) to rttm" in capsys.readouterr().out
    assert (tmp_path / f"{key}.vad.rttm").exists()
    assert main(["export", "--to", "rttm", "--local-dir", str(local_tree), "--out", str(tmp_path), "-q",
                 "--query", "SELECT 1 AS x"]) == 2
    assert "file_id" in capsys.readouterr().err


def test_both_routes_export_the_same(local_tree, sample_mirror, make_fs, tmp_path):
    """A pair fetched by the CDN route (found through the catalog) exports byte for byte like the Hub's."""
    a, b = sample_mirror.pairs[1]
    key = FileId.parse(a).interaction_key
    fs = make_fs(tmp_path / "cdn")
    fs.download_batch_from_s3([a, b])
    for fmt in ("textgrid", "rttm", "elan"):
        cdn = export([key], to=fmt, out=tmp_path / "x" / fmt, local_dir=fs.local_dir, catalog=fs.catalog)
        hub = export([a, b], to=fmt, out=tmp_path / "y" / fmt, local_dir=local_tree)
        assert [p.name for p in cdn.paths] == [p.name for p in hub.paths]
        for p, q in zip(cdn.paths, hub.paths):
            if fmt == "elan":  # media paths and the creation date differ; tiers must not
                from pympi import Elan

                e, f = Elan.Eaf(str(p)), Elan.Eaf(str(q))
                assert {t: e.get_annotation_data_for_tier(t) for t in e.tiers} == \
                    {t: f.get_annotation_data_for_tier(t) for t in f.tiers}
            else:
                assert p.read_bytes() == q.read_bytes()
