from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the loader is the optional torch extra")

from loader_builders import make_bundle, write_tar  # noqa: E402

from seamless_interaction.access.aligned import Participant, windows  # noqa: E402
from seamless_interaction.base.errors import IntegrityError, TransferError  # noqa: E402
from seamless_interaction.access.loader import ShardWarning, WindowDataset, collate_windows  # noqa: E402

ALL = ("features", "audio", "vad", "words")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.mirror.generate import QUICK_SPEC, build_mirror

    root = tmp_path_factory.mktemp("mirror") / "m"
    info = build_mirror(root, QUICK_SPEC)
    catalog = Catalog.load(str(root / "assets"), root.parent / "cache")
    return info, catalog


def hub_tars(info) -> list[str]:
    return sorted(str(p) for p in (info.root / "hub").rglob("*.tar"))


def listed_tars(info, catalog) -> list[str]:
    return [t for t in hub_tars(info) if Path(t).exists() and _listed(t, info, catalog)]


def _listed(t: str, info, catalog) -> bool:
    rel = Path(t).relative_to(info.root / "hub").parts
    return bool(catalog.archive_file_ids(rel[0], rel[1], int(rel[2]), int(rel[3][:4])))


def keys_of(items) -> list[tuple[str, float]]:
    return [(fid, it["start_s"]) for it in items for fid in it["file_ids"]]


def quiet_list(ds) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)
        return list(ds)


@pytest.fixture(scope="module")
def own_tars(tmp_path_factory, bundles_module):
    """Two shards; the partners of both interactions sit in different shards."""
    d = tmp_path_factory.mktemp("shards")
    ids = list(bundles_module)
    a = write_tar(d / "a.tar", {ids[0]: bundles_module[ids[0]], ids[2]: bundles_module[ids[2]]})
    b = write_tar(d / "b.tar", {ids[3]: bundles_module[ids[3]], ids[1]: bundles_module[ids[1]]})
    return [str(a), str(b)]


@pytest.fixture(scope="module")
def bundles_module():
    return {
        "V00_S0001_I00000001_P0001": make_bundle("V00_S0001_I00000001_P0001", 60, Fraction(30)),
        "V00_S0001_I00000001_P0002A": make_bundle("V00_S0001_I00000001_P0002A", 60, Fraction(30)),
        "V01_S0002_I00000002_P0003": make_bundle("V01_S0002_I00000002_P0003", 75, Fraction(30000, 1001)),
        "V01_S0002_I00000002_P0004": make_bundle("V01_S0002_I00000002_P0004", 75, Fraction(30000, 1001)),
    }


def test_windows_equal_the_bytes_on_disk_at_both_rates(own_tars, bundles_module):
    ds = WindowDataset(own_tars, modalities=ALL, window_s=0.7, hop_s=0.5)
    items = list(ds)
    ids = tuple(sorted(bundles_module))
    assert {tuple(it["file_ids"]) for it in items} == {ids[:2], ids[2:]}
    for it in items:
        s, e = it["start_s"], it["end_s"]
        for part in it["participants"]:
            ref = Participant.from_sources(part["file_id"], bundles_module[part["file_id"]])
            for k, v in ref.features(None, s, e).items():
                assert np.array_equal(part["features"][k], v), k
            assert np.array_equal(part["audio"], ref.audio(s, e))
            assert np.array_equal(part["vad"], ref.vad_mask(100, s, e))
            assert part["words"] == ref.words(s, e)
    # Exact boundary rows, independently: floor(t * rate + 1e-6) on the exact rates.
    ntsc = [it for it in items if it["key"] == "V01_S0002_I00000002" and it["start_s"] == 1.5][0]
    rows = ntsc["participants"][0]["features"]["smplh:global_orient"][:, 0]
    a = math.floor(Fraction("1.5") * Fraction(30000, 1001) + Fraction(1, 10**6))
    b = math.floor(Fraction("2.2") * Fraction(30000, 1001) + Fraction(1, 10**6))
    assert rows.tolist() == list(range(a, b))
    assert np.array_equal(ntsc["participants"][0]["audio"], np.arange(72000, 105600, dtype=np.float32))
    pal = [it for it in items if it["key"] == "V00_S0001_I00000001" and it["start_s"] == 1.0][0]
    assert pal["participants"][1]["features"]["smplh:global_orient"][:, 0].tolist() == list(range(30, 51))
    starts = sorted({it["start_s"] for it in items if it["key"] == "V01_S0002_I00000002"})
    assert starts == [s for s, _ in windows(75 * 1001 / 30000, 0.7, 0.5)]


def test_dyadic_pairs_across_archives_with_catalog(mirror):
    info, catalog = mirror
    ds = WindowDataset(hub_tars(info), modalities=("features",), window_s=0.25, catalog=catalog,
                       feature_keys=["smplh:is_valid"])
    items = quiet_list(ds)
    seen = {tuple(it["file_ids"]) for it in items}
    usable = [p for p in info.pairs
              if not set(p) & (set(info.placeholder) | set(info.missing_archive_ids))]
    assert usable and set(info.split_pairs) & set(usable)
    for a, b in usable:
        assert tuple(sorted((a, b))) in seen


def _collect(tars, catalog, rank, world, workers):
    ds = WindowDataset(tars, modalities=("features",), window_s=0.25, catalog=catalog, rank=rank,
                       world_size=world, feature_keys=["smplh:is_valid"], shuffle=True, seed=3)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=_identity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)
        return keys_of(list(dl))


def _identity(x):
    return x


@pytest.mark.parametrize("use_catalog", [True, False])
def test_every_window_exactly_once_across_2_ranks_x_2_workers(mirror, use_catalog):
    info, catalog = mirror
    tars = listed_tars(info, catalog)
    got = []
    for rank in (0, 1):
        got += _collect(tars, catalog if use_catalog else None, rank, 2, 2)
    expected = set()
    for key in info.interactions:
        fids = [f for f in info.file_ids if f.startswith(key + "_")
                and f not in info.placeholder and f not in info.missing_archive_ids]
        if not fids:
            continue
        dur = min(info.files[f].wav_frames / 48000 for f in fids)
        expected |= {(f, s) for f in fids for s, _ in windows(dur, 0.25)}
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_epoch_is_reproducible_and_shuffled(mirror):
    info, catalog = mirror
    ds = WindowDataset(listed_tars(info, catalog), window_s=0.25, catalog=catalog, shuffle=True, seed=1,
                       feature_keys=["smplh:is_valid"])
    ds.set_epoch(1)
    a, b = keys_of(quiet_list(ds)), keys_of(quiet_list(ds))
    ds.set_epoch(2)
    c = keys_of(quiet_list(ds))
    assert a == b and a != c and sorted(a) == sorted(c)


def test_http_sources_through_the_mirror(mirror):
    from seamless_interaction.mirror.server import MirrorServer

    info, catalog = mirror
    local = quiet_list(WindowDataset(listed_tars(info, catalog), modalities=ALL, window_s=0.5, catalog=catalog))
    batches = [(label, split, catalog.batches(label, split)) for label, split in catalog.labels_splits()]
    with MirrorServer(info.root) as srv:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            remote = list(WindowDataset(batches, modalities=ALL, window_s=0.5, catalog=catalog, hf_url=srv.hf_url))
    # The archive the filelist names but the Hub lacks is reported by URL, not fatal.
    missing = info.missing_archive
    assert any(isinstance(w.message, ShardWarning) and "404" in str(w.message) for w in caught)
    assert keys_of(remote) == keys_of(local) and remote
    for x, y in zip(remote, local):
        for p, q in zip(x["participants"], y["participants"]):
            assert np.array_equal(p["audio"], q["audio"]) and p["words"] == q["words"]
            assert all(np.array_equal(p["features"][k], q["features"][k]) for k in q["features"])
    del missing


def test_truncated_shard_is_skipped_with_a_warning_or_raises_in_strict(own_tars, tmp_path):
    bad = tmp_path / "bad.tar"
    data = Path(own_tars[0]).read_bytes()
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(ShardWarning) as caught:
        items = list(WindowDataset([str(bad), own_tars[1]], window_s=0.5))
    messages = [str(w.message) for w in caught]
    assert any("bad.tar" in m for m in messages)
    # The partners of the good shard's ids were in the truncated one: they come alone, with a warning.
    assert any("partner of" in m for m in messages)
    assert items  # the good shard still yields (its partners alone, with a warning)
    with pytest.raises(IntegrityError, match="bad.tar"):
        list(WindowDataset([str(bad)], window_s=0.5, strict=True))


def test_collate_pads_and_masks(own_tars):
    items = list(WindowDataset(own_tars, modalities=ALL, window_s=0.7, dyadic=False))
    batch = collate_windows(items[:3])
    assert batch["participant_mask"].shape == (3, 1)
    assert batch["audio"].shape[:2] == (3, 1) and batch["audio_mask"].dtype == torch.bool
    k = "smplh:global_orient"
    lengths = batch["features_mask"][k].sum(-1)[:, 0].tolist()
    assert lengths == [len(it["participants"][0]["features"][k]) for it in items[:3]]


def test_official_hf_webdataset_snippet_on_served_archives(mirror):
    """The README's ``load_dataset("webdataset", data_files={split: urls}, split=split, streaming=True)``.

    What it requires: the ``datasets`` package and plain WebDataset tars reachable by URL. Iterating it
    decodes every member of every sample: with datasets 3.x the wav member is decoded by ``librosa`` and
    ``soundfile`` (ImportError without them); from datasets 4.0 on, audio and video decode through
    ``torchcodec`` instead. ``.decode(False)`` yields the raw members and needs neither. Our loader
    (:class:`WindowDataset`) needs none of these.
    """
    import importlib.util

    datasets = pytest.importorskip("datasets", reason="datasets is not installed")
    from seamless_interaction.mirror.server import MirrorServer

    info, catalog = mirror
    fid = info.pairs[0][0]
    rec = info.files[fid]
    with MirrorServer(info.root) as srv:
        url = f"{srv.hf_url}/{rec.label}/{rec.split}/{rec.batch:04d}/{rec.archive:04d}.tar"
        ds = datasets.load_dataset("webdataset", data_files={"dev": [url]}, split="dev", streaming=True)
        raw = next(iter(ds.decode(False)))
        assert raw["__key__"] in info.archive_ids(rec.label, rec.split, rec.batch, rec.archive)
        assert isinstance(raw["mp4"], bytes) and raw["wav"]["bytes"][:4] == b"RIFF"
        if not (importlib.util.find_spec("librosa") and importlib.util.find_spec("soundfile")):
            pytest.skip("the decoded snippet needs librosa and soundfile with datasets 3.x (not installed)")
        item = next(iter(ds))
    assert isinstance(item["mp4"], bytes)
    assert "smplh:body_pose" in item["npz"] and set(item["json"]) >= {"id", "metadata:vad"}
    assert set(item["wav"]) >= {"array", "sampling_rate"}


# ---- bad shards and bad members: skipped with a warning naming them, the good shards after still read
def _zero_length_pax_shard(path: Path) -> None:
    """A tar whose first member's PAX header holds a record of length 0 (a naive reader loops on it)."""
    import tarfile

    records = b"0 path=x\n"
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, len(records)
    body = tarfile.TarInfo("V00_S0001_I00000001_P0001.json")
    body.size = 2
    path.write_bytes(pax.tobuf(tarfile.USTAR_FORMAT) + records.ljust(512, b"\0")
                     + body.tobuf(tarfile.USTAR_FORMAT) + b"{}".ljust(512, b"\0") + b"\0" * 1024)


BAD_SHARDS = {
    "html": lambda p: p.write_bytes(b"<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head>"
                                    b"<body>Rate limited</body></html>\n" * 8),
    "random": lambda p: p.write_bytes(np.random.default_rng(1).bytes(5000)),
    "empty": lambda p: p.write_bytes(b""),
    "zero_pax": _zero_length_pax_shard,
    "missing": lambda p: None,
}


@pytest.mark.parametrize("kind", sorted(BAD_SHARDS))
def test_bad_shard_is_skipped_and_the_good_shards_after_it_are_read(kind, own_tars, tmp_path):
    bad = tmp_path / f"bad_{kind}.tar"
    BAD_SHARDS[kind](bad)
    good = [keys_of([it]) for it in WindowDataset(own_tars, window_s=0.5, dyadic=False)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [keys_of([it]) for it in WindowDataset([str(bad), *own_tars], window_s=0.5, dyadic=False)]
    assert got == good and got
    shard_warnings = [str(w.message) for w in caught if issubclass(w.category, ShardWarning)]
    assert len(shard_warnings) == 1 and f"bad_{kind}.tar" in shard_warnings[0], shard_warnings
    with pytest.raises((IntegrityError, TransferError), match=f"bad_{kind}.tar"):
        list(WindowDataset([str(bad), *own_tars], window_s=0.5, dyadic=False, strict=True))


def _corrupt(members: dict[str, bytes], ext: str, how: str) -> dict[str, bytes]:
    out = dict(members)
    out[ext] = {"garbage": b"not a " + ext.encode() + b" file" * 50, "cut": members[ext][: len(members[ext]) // 2],
                "records": b'{"id": "x", "metadata:vad": [1, 2, 3], "metadata:transcript": ["a"]}'}[how]
    return out


@pytest.mark.parametrize("ext, how, modalities", [
    ("npz", "garbage", ("features",)),
    ("npz", "cut", ("features",)),
    ("json", "garbage", ("vad",)),
    ("json", "records", ("vad", "words")),
    ("wav", "garbage", ("audio",)),
    ("wav", "cut", ("audio",)),
])
def test_bad_member_skips_its_sample_only(ext, how, modalities, bundles_module, tmp_path):
    ids = list(bundles_module)
    victim = ids[2]
    samples = {fid: (_corrupt(bundles_module[fid], ext, how) if fid == victim else bundles_module[fid])
               for fid in ids}
    shard = write_tar(tmp_path / "mixed.tar", samples)
    clean = write_tar(tmp_path / "clean.tar", {fid: bundles_module[fid] for fid in ids if fid != victim})
    want = [keys_of([it]) for it in WindowDataset([str(clean)], modalities=modalities, window_s=0.5, dyadic=False)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [keys_of([it]) for it in WindowDataset([str(shard)], modalities=modalities, window_s=0.5,
                                                     dyadic=False)]
    messages = [str(w.message) for w in caught if issubclass(w.category, ShardWarning)]
    assert got == want and got
    assert len(messages) == 1 and victim in messages[0] and "mixed.tar" in messages[0], messages
    with pytest.raises(IntegrityError, match=victim):
        list(WindowDataset([str(shard)], modalities=modalities, window_s=0.5, dyadic=False, strict=True))


def test_unreadable_mp4_member_falls_back_to_the_wav_clock(bundles_module, tmp_path):
    ids = list(bundles_module)
    samples = {fid: (_corrupt(bundles_module[fid], "mp4", "garbage") if fid == ids[0] else bundles_module[fid])
               for fid in ids}
    shard = write_tar(tmp_path / "mixed.tar", samples)
    clean = write_tar(tmp_path / "clean.tar", bundles_module)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShardWarning)
        got = [keys_of([it]) for it in WindowDataset([str(shard)], window_s=0.5, dyadic=False)]
    assert got == [keys_of([it]) for it in WindowDataset([str(clean)], window_s=0.5, dyadic=False)]


def test_windows_longer_than_every_recording_warn_instead_of_yielding_nothing_silently(own_tars):
    with pytest.warns(ShardWarning, match=r"2 interaction\(s\) shorter than window_s=4.0"):
        assert list(WindowDataset(own_tars, window_s=4.0)) == []
    with pytest.warns(ShardWarning, match=r"4 file id\(s\) shorter"):
        assert list(WindowDataset(own_tars, window_s=4.0, dyadic=False)) == []


@pytest.mark.parametrize("window_s,hop_s", [(float("nan"), None), (float("inf"), None), (2.0, float("nan")),
                                            (-1.0, None)])
def test_bad_window_lengths_fail_when_the_dataset_is_made(own_tars, window_s, hop_s):
    with pytest.raises(ValueError, match="window_s and hop_s"):
        WindowDataset(own_tars, window_s=window_s, hop_s=hop_s)


def test_bad_shards_over_http_are_skipped_and_the_good_one_read(own_tars, hub):
    import shutil

    root = Path(hub.root) / "hub"
    (root / "html.tar").write_bytes(b"<!DOCTYPE html><html><body>Too Many Requests</body></html>\n" * 20)
    shutil.copy(own_tars[0], root / "good_a.tar")
    shutil.copy(own_tars[1], root / "good_b.tar")
    url = f"{hub.url}/lfs"
    want = [keys_of([it]) for it in WindowDataset(own_tars, window_s=0.5, dyadic=False)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [keys_of([it]) for it in WindowDataset([f"{url}/html.tar", f"{url}/absent.tar", f"{url}/good_a.tar",
                                                      f"{url}/good_b.tar"], window_s=0.5, dyadic=False)]
    assert got == want and got
    messages = [str(w.message) for w in caught if issubclass(w.category, ShardWarning)]
    assert len(messages) == 2 and "html.tar" in messages[0] and "absent.tar" in messages[1], messages
    with pytest.raises(IntegrityError, match="html.tar"):
        list(WindowDataset([f"{url}/html.tar"], window_s=0.5, strict=True))
    with pytest.raises(TransferError, match="absent.tar"):
        list(WindowDataset([f"{url}/absent.tar"], window_s=0.5, strict=True))
