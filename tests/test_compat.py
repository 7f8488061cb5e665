"""Drop-in compatibility with the official toolkit: signatures, defaults, return shapes and error types.

The official signatures below are written from the official ``fs.py`` (facebookresearch/seamless_interaction
at acc817c); COMPATIBILITY.md lists every deliberate difference. Behaviour is checked against the loopback
mirror, not mocks.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import seamless_interaction.fs as fs_module
from seamless_interaction.base.errors import (
    CatalogError, InvalidIdError, NoCandidatesError, SeamlessError, UnknownIdError,
)
from seamless_interaction.base.formats import cast_float32
from seamless_interaction.fs import DatasetConfig, InteractionKey, SeamlessInteractionFS

_ = inspect.Parameter.empty
KW = "keyword"
# name -> [(parameter, default, kind)] of the official method, ``self`` left out. kind "keyword" means
# keyword-only there (ours may also take it positionally); otherwise the position must match.
OFFICIAL = {
    "__init__": [("config", None, KW), ("local_dir", None, KW), ("filelist_path", None, KW),
                 ("dry_run", False, KW), ("num_workers", None, KW)],
    "get_available_keys": [("key_type", _, 0), ("label", None, 1), ("split", None, 2), ("limit", None, 3)],
    "get_interaction_metadata": [("interaction_key", _, 0)],
    "sample_random_file_ids": [("num_samples", 1, 0), ("label", None, 1), ("split", None, 2),
                               ("preferred_vendors_only", None, 3), ("seed", None, 4)],
    "get_interaction_pairs": [("interaction_keys", None, 0), ("num_pairs", 1, 1), ("label", None, 2),
                              ("split", None, 3), ("preferred_vendors_only", None, 4)],
    "get_session_groups": [("session_keys", None, 0), ("num_sessions", 1, 1), ("interactions_per_session", 4, 2),
                           ("label", None, 3), ("split", None, 4), ("preferred_vendors_only", None, 5)],
    "list_batches": [("label", None, 0), ("split", None, 1)],
    "list_archives": [("label", None, 0), ("split", None, 1), ("batch", 0, 2)],
    "get_tar_archive_size": [("label", None, 0), ("split", None, 1), ("batch", 0, 2), ("archive", 0, 3)],
    "get_path_list_for_file_id_s3": [("file_id", _, 0)],
    "get_path_list_for_file_id_local": [("file_id", _, 0)],
    "gather_file_id_data_from_s3": [("file_id", _, 0), ("num_workers", None, KW), ("local_dir", None, KW)],
    "download_batch_from_s3": [("batch", _, 0), ("local_dir", None, 1), ("num_workers", None, 2)],
    "download_archive_from_hf": [("archive", _, 0), ("label", None, 1), ("split", None, 2), ("batch", 0, 3),
                                 ("local_dir", None, 4), ("extract", True, 5)],
    "download_batch_from_hf": [("label", None, 0), ("split", None, 1), ("batch_idx", None, 2),
                               ("local_dir", None, KW), ("num_workers", None, KW), ("archive_list", None, KW)],
}
OFFICIAL_METADATA_KEYS = {"interaction_key", "session_key", "vendor", "session", "interaction", "participants",
                          "num_participants", "label", "split", "batch_idx", "archive_idx", "file_ids"}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_every_official_parameter_keeps_its_name_position_and_default(name):
    params = list(inspect.signature(getattr(SeamlessInteractionFS, name)).parameters.values())[1:]
    by_name = {p.name: p for p in params}
    for param, default, kind in OFFICIAL[name]:
        assert param in by_name, f"{name}: official parameter {param!r} is missing"
        ours = by_name[param]
        if default is not _:  # a required official parameter may have a default here
            assert ours.default == default, f"{name}({param}=...) default {ours.default!r} != {default!r}"
        if kind == KW:
            assert ours.kind in (ours.KEYWORD_ONLY, ours.POSITIONAL_OR_KEYWORD)
        else:
            assert params.index(ours) == kind and ours.kind == ours.POSITIONAL_OR_KEYWORD, f"{name}: {param} moved"
    # Anything we added is optional, so every official call still binds.
    official = {p for p, _d, _k in OFFICIAL[name]}
    assert all(p.default is not _ or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
               for p in params if p.name not in official), name


def test_official_module_paths_and_names():
    from seamless_interaction import constants, utils

    assert constants.FILE_ID_REGEX == r"V(\d+)_S(\d+)_I(\d+)_P(\d+)"
    assert {"ALL_LABELS", "ALL_SPLITS", "ALL_FEATURES"} <= set(dir(constants))
    assert callable(utils.setup_logging) and callable(utils.recursively_cast_to_float32)
    assert fs_module.InteractionKey is InteractionKey and fs_module.DatasetConfig is DatasetConfig
    assert isinstance(fs_module.logger, logging.Logger)
    assert isinstance(inspect.getattr_static(SeamlessInteractionFS, "num_workers"), property)


def test_dataset_config_official_semantics(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert DatasetConfig().num_workers == 10
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cfg = DatasetConfig(local_dir=None)
    assert cfg.num_workers == 1  # official min(10, max(1, cpu - 2)) ...
    assert cfg.resolved().max_connections >= 4  # ... while HTTP keeps the engine's own budget
    assert cfg.local_dir == str(Path.home() / "datasets/seamless_interaction") and isinstance(cfg.local_dir, str)
    assert DatasetConfig(local_dir="/custom/path").local_dir == "/custom/path"
    assert DatasetConfig(local_dir=Path("/p")).local_dir == Path("/p")  # the README passes a Path
    with pytest.raises(ValueError, match="num_workers"):
        DatasetConfig(num_workers=0)


def test_interaction_key_parses_with_the_official_messages_and_keeps_the_suffix():
    k = InteractionKey.from_file_id("V00_S0644_I00000125_P0299A")
    assert (k.vendor, k.session, k.interaction, k.participant) == ("00", "0644", "00000125", "0299A")
    assert k.file_id == "V00_S0644_I00000125_P0299A" and k.interaction_key == "V00_S0644_I00000125"
    assert InteractionKey.from_interaction_key("V00_S0809_I00000582").participant is None
    assert InteractionKey.from_session_key("V00_S0809_I00000582").session_key == "V00_S0809"
    for call, bad, message in [(InteractionKey.from_file_id, "V00_S0809_I00000582", "Invalid file ID format"),
                               (InteractionKey.from_interaction_key, "V00_S0809", "Invalid interaction key format"),
                               (InteractionKey.from_session_key, "S0809", "Invalid session key format")]:
        with pytest.raises(InvalidIdError, match=message) as err:
            call(bad)
        assert isinstance(err.value, ValueError) and repr(bad) in str(err.value)
    with pytest.raises(ValueError, match="Participant required for file ID"):
        _ = InteractionKey("00", "0809", "00000582").file_id
    with pytest.raises(ValueError, match="Interaction required for interaction key"):
        _ = InteractionKey("00", "0809", None, "0947").interaction_key


def test_utils_cast_and_logging(tmp_path, monkeypatch):
    from seamless_interaction.utils import recursively_cast_to_float32, setup_logging

    data = {"a": np.zeros(2), "b": [np.ones(1, np.float64), np.arange(2)], "c": "x"}
    out = recursively_cast_to_float32(data)
    assert out["a"].dtype == np.float32 and out["b"][0].dtype == np.float32 and out["b"][1].dtype == data["b"][1].dtype
    assert out["c"] == "x"
    monkeypatch.chdir(tmp_path)
    log = setup_logging("compat.test")
    assert setup_logging("compat.test") is log and len(log.handlers) == 2  # handlers added once
    log.info("hello")
    for h in log.handlers:
        h.flush()
        h.close()
    log.handlers.clear()
    assert "hello" in (tmp_path / "seamless_interaction_fs.log").read_text()


def test_return_shapes_against_the_mirror(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d", label="improvised", split="dev")
    ids = fs.sample_random_file_ids(num_samples=2, seed=3)
    assert isinstance(ids, list) and len(ids) == 2 and all(isinstance(f, str) for f in ids)
    pairs = fs.get_interaction_pairs(num_pairs=1, preferred_vendors_only=False)
    assert len(pairs) == 1 and len(pairs[0]) == 2 and pairs[0][0][:19] == pairs[0][1][:19]
    key = pairs[0][0][:19]
    assert fs.get_interaction_pairs(interaction_keys=key) == fs.get_interaction_pairs(interaction_keys=[key]) == pairs
    groups = fs.get_session_groups(session_keys=key[:9], interactions_per_session=0)
    assert groups == [fs.catalog.session_file_ids(key[:9])]
    for kind in ("session", "interaction", "file"):
        keys = fs.get_available_keys(kind)
        assert keys == sorted(keys) and all(isinstance(k, str) for k in keys)
    meta = fs.get_interaction_metadata(key)
    assert set(meta) == OFFICIAL_METADATA_KEYS and meta["vendor"] == key[1:3] and meta["session"] == key[5:9]
    assert meta["participants"] == [f.rsplit("_P", 1)[1] for f in meta["file_ids"]]
    assert fs.get_interaction_metadata("V99_S9999_I99999999") == {}
    batches = fs.list_batches()
    assert batches and all(isinstance(b, int) for b in batches)
    assert fs.list_archives(batch=batches[0]) and fs.list_archives(batch=999) == []
    urls = fs.get_path_list_for_file_id_s3(ids[0])
    assert any(u.endswith(f"audio/{ids[0]}.wav") for u in urls) and any("/smplh/" in u for u in urls)
    assert fs.get_path_list_for_file_id_local(ids[0]) == []


def test_downloads_return_the_official_values(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    missing = set(sample_mirror.missing_archive_ids)
    fid = next(f for f in sample_mirror.file_ids if f not in missing)
    rec = fs.catalog.record(fid)
    assert fs.gather_file_id_data_from_s3(fid) is None
    local = fs.get_path_list_for_file_id_local(fid)
    assert [Path(p).name for p in local] == [f"{fid}.{e}" for e in ("json", "mp4", "npz", "wav")]
    assert fs.download_batch_from_s3([fid], str(tmp_path / "e")) is True  # local_dir positional, a str
    assert len(list((tmp_path / "e").rglob(f"{fid}.*"))) == 4
    ok, path = fs.download_archive_from_hf(rec.archive, rec.label, rec.split, rec.batch)
    assert ok is True and isinstance(path, str) and Path(path, f"{fid}.npz").is_file()
    assert fs.download_batch_from_hf(rec.label, rec.split, [rec.batch], archive_list=[rec.archive]) is True
    gib = fs.get_tar_archive_size(rec.label, rec.split, rec.batch, rec.archive)
    assert isinstance(gib, float) and gib * 1024**3 == fs.get_tar_archive_bytes(rec.label, rec.split, rec.batch,
                                                                               rec.archive)


def test_errors_are_our_types_and_the_official_value_errors(make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    with pytest.raises(UnknownIdError, match="File ID .* not found") as err:
        fs.get_path_list_for_file_id_s3("V99_S9999_I99999999_P9999")
    assert isinstance(err.value, ValueError) and isinstance(err.value, KeyError)
    with pytest.raises(NoCandidatesError, match="No candidates found.*nonexistent") as err:
        fs.sample_random_file_ids(label="nonexistent")
    assert isinstance(err.value, ValueError) and isinstance(err.value, SeamlessError)
    with pytest.raises(InvalidIdError, match="Invalid key_type"):
        fs.get_available_keys("bogus")  # type: ignore[arg-type]
    with pytest.raises(InvalidIdError, match="Invalid interaction key format"):
        fs.get_interaction_pairs(interaction_keys="invalid_key")
    with pytest.raises(InvalidIdError, match="Invalid session key format"):
        fs.get_session_groups(session_keys=["invalid_key"])
    with pytest.raises(UnknownIdError):
        fs.get_interaction_pairs(interaction_keys="V99_S9999_I99999999")


def test_filelist_dataframe_injection_restricts_every_query(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    full = fs._cached_filelist
    assert isinstance(full, pd.DataFrame) and len(full) == len(sample_mirror.file_ids)
    pair = sorted(sample_mirror.pairs[0])
    rec = fs.catalog.record(pair[0])
    subset = full[full["file_id"].isin(pair)].copy()
    subset["archive_idx"] = subset["archive_idx"].astype(float)  # as pandas leaves a column with a gap
    fs._cached_filelist = subset
    assert fs._cached_filelist is subset
    fs.config.label, fs.config.split, fs.config.preferred_vendors_only = rec.label, rec.split, False
    assert sorted(fs.sample_random_file_ids(num_samples=10)) == pair
    assert fs.get_available_keys("interaction") == [rec.interaction_key]
    assert list(fs._filter_candidates()["file_id"]) == pair
    assert fs.get_interaction_details(rec.interaction_key)["prompt_hash"] == rec.prompt_hash  # joins kept
    fs._cached_filelist = None  # back to the full catalog
    assert len(fs.catalog) == len(sample_mirror.file_ids)


def test_filelist_path_reads_a_local_csv(sample_mirror, mirror_config, tmp_path):
    csv = sample_mirror.assets_dir / "filelist.csv"
    fs = SeamlessInteractionFS(mirror_config(tmp_path / "d"), filelist_path=str(csv), quiet=True)
    assert set(fs.get_available_keys("file", label="naturalistic", split="test")) == \
        {f for f, r in sample_mirror.files.items() if (r.label, r.split) == ("naturalistic", "test")}
    details = fs.get_interaction_details(sample_mirror.pairs[0][0][:19])  # the filelist alone: no joins
    assert details["participant_a_prompt_text"] is None and details["relationship"] is None
    folder = SeamlessInteractionFS(mirror_config(tmp_path / "d"), filelist_path=sample_mirror.assets_dir, quiet=True)
    assert len(folder.catalog) == len(sample_mirror.file_ids)


def test_constructor_makes_local_dir_and_warns_when_the_filelist_cannot_load(tmp_path, caplog):
    cfg = DatasetConfig(local_dir=tmp_path / "d", assets="http://127.0.0.1:9/assets", cache_dir=tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="seamless_interaction.fs"):
        fs = SeamlessInteractionFS(cfg, quiet=True)
    assert (tmp_path / "d").is_dir()
    assert [r.getMessage() for r in caplog.records if r.name == "seamless_interaction.fs"][0].startswith(
        "Could not load filelist")
    assert fs._cached_filelist.empty
    with pytest.raises(CatalogError, match="127.0.0.1:9"):
        fs.sample_random_file_ids()  # a clear error when a method needs it, not "No candidates"
    lazy = SeamlessInteractionFS(DatasetConfig(local_dir=tmp_path / "lazy", assets="http://127.0.0.1:9/assets",
                                               cache_dir=tmp_path / "c"), lazy=True)
    assert not (tmp_path / "lazy").exists() and lazy._catalog is None


def test_constructor_keywords_override_the_config(tmp_path):
    cfg = DatasetConfig(local_dir=str(tmp_path / "a"), num_workers=4, assets=str(tmp_path))
    fs = SeamlessInteractionFS(config=cfg, local_dir=str(tmp_path / "b"), num_workers=8, lazy=True)
    assert fs.config.local_dir == str(tmp_path / "b") and fs.num_workers == 8 and cfg.num_workers == 4
    fs.num_workers = 3
    assert fs.config.num_workers == 3
    with pytest.raises(TypeError, match="bogus"):
        SeamlessInteractionFS(bogus=1)


def test_batch_from_s3_runs_ids_through_the_official_method_in_parallel_on_one_engine(sample_mirror, make_fs,
                                                                                      tmp_path):
    missing = set(sample_mirror.missing_archive_ids)
    ids = [f for f in sample_mirror.file_ids if f not in missing][:2]
    meeting = threading.Barrier(2, timeout=30)  # both ids must be in flight at once, or this breaks
    engines, threads = [], set()

    class Recording(SeamlessInteractionFS):
        def gather_file_id_data_from_s3(self, file_id, *, num_workers=None, local_dir=None):
            engines.append(self.transfer)
            threads.add(threading.get_ident())
            meeting.wait()
            return super().gather_file_id_data_from_s3(file_id, num_workers=num_workers, local_dir=local_dir)

    fs = make_fs(tmp_path / "d")
    rec_fs = Recording(fs.config, catalog=fs.catalog, quiet=True)
    try:
        assert rec_fs.download_batch_from_s3(ids, num_workers=2) is True
    finally:
        rec_fs.close()
    assert len(threads) == 2 and engines[0] is engines[1]
    for fid in ids:
        assert len(rec_fs.get_path_list_for_file_id_local(fid)) == 4


def test_batch_from_hf_runs_archives_in_parallel(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d", num_workers=2)
    label, split = "improvised", "dev"
    archives = [a for a in fs.list_archives(label, split, 0)
                if (label, split, 0, a) != tuple(sample_mirror.missing_archive)][:2]
    assert len(archives) == 2
    meeting = threading.Barrier(2, timeout=30)
    original = fs.download_archive_from_hf

    def meet(*a, **kw):
        meeting.wait()
        return original(*a, **kw)

    fs.download_archive_from_hf = meet  # what the official tests patch
    assert fs.download_archives_from_hf(label, split, 0, archive_list=archives) == [
        str(tmp_path / "d" / label / split / "0000" / f"{a:04d}") for a in archives]


def test_dry_run_fetches_and_writes_nothing(sample_mirror, sample_server, mirror_config, tmp_path):
    fs = SeamlessInteractionFS(mirror_config(tmp_path / "d"), dry_run=True, quiet=True)
    sample_server.clear_requests()
    assert fs.download_batch_from_s3(sample_mirror.file_ids[:2]) is True
    assert [r for r in sample_server.requests if "/seamless_interaction/" in r.path] == []
    assert not [p for p in (tmp_path / "d").rglob("*") if p.is_file()]


def test_local_listing_ignores_temporary_names(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    fid = sample_mirror.file_ids[0]
    rec = fs.catalog.record(fid)
    folder = tmp_path / "d" / rec.label / rec.split / f"{rec.batch:04d}" / f"{rec.archive:04d}"
    folder.mkdir(parents=True)
    for name in (f"{fid}.json", f"{fid}.npz.part", f"{fid}A.wav", f"{fid}.npz"):
        (folder / name).write_text("{}")
    assert fs.get_path_list_for_file_id_local(fid) == [str(folder / f"{fid}.json"), str(folder / f"{fid}.npz")]
    offline = SeamlessInteractionFS(DatasetConfig(local_dir=tmp_path / "d"), lazy=True)  # no catalog: the layout
    assert offline.get_path_list_for_file_id_local(fid) == fs.get_path_list_for_file_id_local(fid)
    assert json.loads((folder / f"{fid}.json").read_text()) == {}


def test_readme_api_tour_runs_against_the_mirror(sample_mirror, sample_server, tmp_path, monkeypatch):
    """The README's API tour, as written, with the real example keys swapped for the mirror's."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tour = readme[readme.index("## API tour"):readme.index("### Endpoints")]
    blocks = re.findall(r"```python\n(.*?)```", tour, re.S)
    assert len(blocks) >= 2
    for var, value in (("CDN_URL", sample_server.cdn_url), ("HF_URL", sample_server.hf_url),
                       ("ASSETS", sample_server.assets_url), ("CACHE", str(tmp_path / "cache"))):
        monkeypatch.setenv(f"SEAMLESS_INTERACTION_{var}", value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    missing = set(sample_mirror.missing_archive_ids)
    key = next(p for p in sample_mirror.pairs if not set(p) & missing)[0][:19]
    ns: dict = {}
    for i, code in enumerate(blocks):
        code = code.replace("V00_S0809_I00000582", key).replace("V00_S0809", key[:9])
        exec(compile(code, f"README API tour block {i}", "exec"), ns)  # noqa: S102
    fs = ns["fs"]
    assert len(fs.get_path_list_for_file_id_local(ns["file_ids"][0])) == 4
    assert str(fs.local_dir).startswith(str(tmp_path / "home"))
    fs.close()


def test_official_per_url_step_rebuilds_the_bundle_from_the_cdn(sample_mirror, make_fs, tmp_path):
    """``_wget_download_from_s3`` (and the ``fs.wget`` it calls, which official code patches) really fetch."""
    fs = make_fs(tmp_path / "d")
    fid = sample_mirror.file_ids[0]
    bundle = fs.gather_file_id(fid)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    np_data: dict = {}
    json_data: dict = {}
    lock = threading.Lock()
    for url in fs.get_path_list_for_file_id_s3(fid):
        fs._wget_download_from_s3(url, str(tmp), str(tmp_path / "out" / fid), np_data, json_data, lock)
    with np.load(bundle["npz"]) as npz:
        assert sorted(np_data) == sorted(npz.files)
        for key in npz.files:
            got = cast_float32(np_data[key])  # the raw .npy; the npz writer casts float64 (FORMAT.md 5.6)
            assert got.dtype == npz[key].dtype and np.array_equal(got, npz[key]), key
    doc = json.loads(bundle["json"].read_bytes())
    assert json_data == {k: v for k, v in doc.items() if k != "id"}
    for ext in ("wav", "mp4"):
        assert (tmp_path / "out" / f"{fid}.{ext}").read_bytes() == bundle[ext].read_bytes()
    assert list(tmp.iterdir()) == []  # every temporary object was consumed or moved


def test_official_per_url_step_rejects_what_is_not_a_cdn_object(make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    with pytest.raises(InvalidIdError, match="not a Seamless Interaction CDN object URL"):
        fs._wget_download_from_s3("http://127.0.0.1:9/x.txt", str(tmp_path), str(tmp_path / "t"), {}, {},
                                  threading.Lock())
    assert callable(fs_module.wget.download)


def test_batch_from_s3_default_path_equals_id_by_id(sample_mirror, make_fs, tmp_path):
    """The default path (ids in shared transfer batches, two in flight) writes what the per-id path writes."""
    ids = list(sample_mirror.file_ids[:6])
    assert len(ids) > fs_module._IDS_PER_TRANSFER  # more ids than one transfer batch takes
    fs = make_fs(tmp_path / "a", num_workers=1)
    assert fs.download_batch_from_s3(ids) is True
    per_id = make_fs(tmp_path / "b")
    for fid in ids:
        ours = sorted(Path(p) for p in fs.get_path_list_for_file_id_local(fid))
        ref = sorted(per_id.gather_file_id(fid).values())
        assert [p.name for p in ours] == [p.name for p in ref], fid
        for a, b in zip(ours, ref):
            assert a.read_bytes() == b.read_bytes(), a.name
    assert fs.verify().ok
