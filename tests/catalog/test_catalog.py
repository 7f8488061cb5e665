"""Catalog tests against a small real sample of the anchor tables (tests/data/catalog: interactions,
participants, relationships, and pre-release pair lists; see its README) and a filelist generated from those
pairs, batched the way the Hub tars were built (FORMAT.md 2.3). Set SEAMLESS_INTERACTION_ANCHOR to an anchor
folder (e.g. ../shared/data/anchor) to run the same tests against the full tables."""

from __future__ import annotations

import csv
import os
import random
from collections import defaultdict
from pathlib import Path

import pytest

from seamless_interaction.base.errors import (
    CatalogError,
    InvalidIdError,
    UnknownIdError,
)
from seamless_interaction.catalog.tables import (
    FLAG_COLUMNS,
    TRAIT_COLUMNS,
    Catalog,
    FileRecord,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "catalog"
ANCHOR = Path(os.environ.get("SEAMLESS_INTERACTION_ANCHOR") or SAMPLE)
FULL = ANCHOR != SAMPLE
# Batches of at most this many ids (the release used 500; the sample is ~200 dyads, so smaller batches keep
# several batches per split), archives of 8 ids.
BATCH_IDS = 500 if FULL else 32
# Flags on every n-th id of a batch: sparse on the full tables, denser on the sample so each filter matches.
EVERY_1P, EVERY_3P = (50, 30) if FULL else (5, 3)

HEADER = ["file_id", "label", "split", "batch_idx", "archive_idx", *FLAG_COLUMNS]


def _generated_rows() -> list[list]:
    """Filelist rows from the real dyads: whole interactions per batch (<= BATCH_IDS, largest first), archives
    of 8 ids in shuffled order (partners often split), movement for V00, a few annotation flags."""
    rows = []
    for meta in sorted(ANCHOR.glob("filelists/*/*/metadata.csv")):
        label, split = meta.parts[-3], meta.parts[-2]
        groups: dict[str, set[str]] = defaultdict(set)
        with open(meta, newline="") as fh:
            for r in csv.DictReader(fh):
                groups[f"{r['vendor']}_{r['session']}_{r['interaction']}"].update(
                    [r["participant_0_id"], r["participant_1_id"]])
        batches, current = [], []
        for _, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            if len(current) + len(ids) > BATCH_IDS:
                batches.append(current)
                current = []
            current.extend(sorted(ids))
        batches.append(current)
        rng = random.Random(f"{label}/{split}")
        for b, ids in enumerate(batches):
            rng.shuffle(ids)
            for i, fid in enumerate(ids):
                v03, v00 = fid.startswith("V03"), fid.startswith("V00")
                rows.append([fid, label, split, b, i // 8, int(v00), int(v03 and i % EVERY_1P == 0),
                             int((v00 or v03) and i % EVERY_3P == 0)])
    return rows


@pytest.fixture(scope="module")
def rows() -> list[list]:
    return _generated_rows()


@pytest.fixture(scope="module")
def paths(tmp_path_factory, rows) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("assets")
    _write_filelist(folder / "filelist.csv", rows)
    tables = {"filelist.csv": folder / "filelist.csv"}
    for name in ("interactions.csv", "participants.csv", "relationships.csv"):
        tables[name] = ANCHOR / "assets" / name  # read in place, never copied into the repo
    return tables


@pytest.fixture(scope="module")
def cat(paths, tmp_path_factory) -> Catalog:
    return Catalog.from_paths(paths, cache_dir=tmp_path_factory.mktemp("cache"))


def _write_filelist(path: Path, rows, header=HEADER) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _csv_rows(name: str) -> list[dict[str, str]]:
    with open(ANCHOR / "assets" / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------- records and ids


def test_every_generated_row_is_indexed(cat, rows):
    assert len(cat) == len(rows) == len({r[0] for r in rows})
    for r in rows[::997]:
        rec = cat.record(r[0])
        assert rec == FileRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), bool(r[7]))
        assert r[0] in cat


def test_suffixed_participant_keeps_its_letter(cat):
    rec = cat.record("V00_S0644_I00000125_P0299A")
    assert rec.participant == "0299A"
    assert (rec.vendor, rec.session_key, rec.interaction_key, rec.prompt_hash) == (
        "V00", "V00_S0644", "V00_S0644_I00000125", "00000125")
    # The bare stem is a different person: the official regex would have dropped the "A".
    with pytest.raises(UnknownIdError):
        cat.record("V00_S0644_I00000125_P0299")


@pytest.mark.parametrize("bad", ["V00_S0644_I0000125_P0299A", "V0_S0644_I00000125_P0299", "garbage", "",
                                 "V00_S0644_I00000125_P0299AB", 12])
def test_malformed_file_id_raises_invalid(cat, bad):
    with pytest.raises(InvalidIdError) as err:
        cat.record(bad)
    assert isinstance(err.value, ValueError)
    assert repr(bad) in str(err.value)


def test_unknown_file_id_names_id_and_catalog(cat):
    with pytest.raises(UnknownIdError) as err:
        cat.record("V03_S9999_I00000001_P9999")
    assert isinstance(err.value, KeyError)
    assert "V03_S9999_I00000001_P9999" in str(err.value) and cat.source in str(err.value)


# ---------------------------------------------------------------------- interactions and sessions


def test_interaction_key_one_digit_short_is_invalid_not_a_prefix_match(cat):
    full = "V00_S0644_I00000125"
    assert cat.interaction_file_ids(full) == ["V00_S0644_I00000125_P0299A", "V00_S0644_I00000125_P0799"]
    with pytest.raises(InvalidIdError):
        cat.interaction_file_ids(full[:-1])  # upstream's str.startswith matched I0000012x of other prompts
    with pytest.raises(InvalidIdError):
        cat.interaction_metadata(full[:-1])
    with pytest.raises(UnknownIdError):
        cat.interaction_file_ids("V00_S0644_I00009999")


def test_same_prompt_in_other_sessions_is_another_interaction(cat, rows):
    by_prompt = defaultdict(set)
    for r in rows:
        by_prompt[r[0][11:19]].add(r[0][:19])
    prompt, keys = max(by_prompt.items(), key=lambda kv: len({k[:3] for k in kv[1]}))
    assert len({k[:3] for k in keys}) > 1, "anchor data should reuse a prompt across vendors"
    for key in sorted(keys)[:20]:
        expected = sorted(r[0] for r in rows if r[0][:19] == key)
        assert cat.interaction_file_ids(key) == expected
        assert cat.interaction_metadata(key)["prompt_hash"] == prompt


def test_interaction_keys_and_pairs_match_oracle(cat, rows):
    for label, split, vendors in [("improvised", "dev", None), ("naturalistic", "test", ["V03", "01"]),
                                  (None, None, ["V00"])]:
        counts = defaultdict(int)
        for r in rows:
            if (label in (None, r[1]) and split in (None, r[2])
                    and (vendors is None or r[0][:3] in {"V" + v.lstrip("V") for v in vendors})):
                counts[r[0][:19]] += 1
        assert cat.interaction_keys(label, split, vendors=vendors) == sorted(counts)
        assert cat.interaction_keys(label, split, vendors=vendors, complete_pairs_only=True) == sorted(
            k for k, n in counts.items() if n >= 2)
        assert cat.session_keys(label, split, vendors=vendors) == sorted({k[:9] for k in counts})


def test_session_lookups(cat, rows):
    session = "V00_S0644"
    files = sorted(r[0] for r in rows if r[0].startswith(session + "_"))
    assert cat.session_file_ids(session) == files
    assert cat.session_interactions(session) == sorted({f[:19] for f in files})
    with pytest.raises(InvalidIdError):
        cat.session_file_ids("V00_S064")
    with pytest.raises(UnknownIdError):
        cat.session_interactions("V02_S9998")


# ---------------------------------------------------------------------- filters, batches, archives


def test_file_id_filters_match_oracle(cat, rows):
    cases = [
        dict(label="improvised", split="train"),
        dict(label="naturalistic", vendors=["V02", "V03"], has_annotation_3p=True),
        dict(has_imitator_movement=False),
        dict(has_annotation_1p=True),
        dict(label="improvised", split="dev", batch=1, archive=3),
    ]
    for kw in cases:
        def keep(r, kw=kw):
            return (kw.get("label") in (None, r[1]) and kw.get("split") in (None, r[2])
                    and ("vendors" not in kw or r[0][:3] in kw["vendors"])
                    and all(kw.get(f) in (None, bool(r[5 + j])) for j, f in enumerate(FLAG_COLUMNS))
                    and kw.get("batch") in (None, r[3]) and kw.get("archive") in (None, r[4]))
        expected = sorted(r[0] for r in rows if keep(r))
        assert expected, kw
        assert cat.file_ids(**kw) == expected
    assert cat.file_ids() == sorted(r[0] for r in rows)
    with pytest.raises(ValueError, match="improvized"):
        cat.file_ids("improvized")
    with pytest.raises(InvalidIdError):
        cat.file_ids(vendors=["X1"])


def test_batches_archives_match_oracle(cat, rows):
    tree = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        tree[(r[1], r[2])][r[3]][r[4]].append(r[0])
    assert cat.labels_splits() == sorted(tree)
    for (label, split), batches in tree.items():
        assert cat.batches(label, split) == sorted(batches)
        for b, archives in batches.items():
            assert cat.archives(label, split, b) == sorted(archives)
            for a in list(archives)[:3]:
                assert cat.archive_file_ids(label, split, b, a) == sorted(archives[a])
    assert cat.archives("improvised", "dev", 999) == []
    assert cat.batches("naturalistic", "train") == []
    # Returned lists are copies: mutating one must not change the catalog.
    cat.batches("improvised", "dev").append(42)
    assert 42 not in cat.batches("improvised", "dev")


def test_partners_share_batch_but_often_not_archive(cat):
    split_pairs = 0
    keys = cat.interaction_keys("improvised", "train", complete_pairs_only=True)[:500]
    for key in keys:
        a, b = (cat.record(f) for f in cat.interaction_file_ids(key))
        assert a.batch == b.batch
        split_pairs += a.archive != b.archive
    assert len(keys) >= 50 and split_pairs > len(keys) // 2


# ---------------------------------------------------------------------- metadata joins


def test_participant_join_keeps_suffix_and_vendor(cat):
    raw = {(r["vendor_id"], r["participant_id"]): r for r in _csv_rows("participants.csv")}
    bare = cat.participant("V00", "P0299")
    suffixed = cat.participant("00", "0299A")
    assert bare["participant_id"] == "0299" and suffixed["participant_id"] == "0299A"
    assert [bare[t] for t in TRAIT_COLUMNS] == [float(raw[("00", "0299")][t]) for t in TRAIT_COLUMNS]
    assert raw[("00", "0299A")]["openness_raw"] == "Undisclosed"
    assert all(suffixed[t] is None for t in TRAIT_COLUMNS)
    # Participant ids are unique only within a vendor: the same stem under another vendor is another person.
    other = next(k for k in raw if k[0] != "00" and ("00", k[1]) in raw
                 and raw[k]["extraversion_raw"] != raw[("00", k[1])]["extraversion_raw"])
    assert cat.participant("V" + other[0], other[1])["extraversion_raw"] != cat.participant("V00", other[1])[
        "extraversion_raw"]
    assert cat.participant("V02", "P9999") is None
    with pytest.raises(InvalidIdError):
        cat.participant("V0", "0299")


def test_relationship_join_by_vendor_and_session(cat):
    raw = _csv_rows("relationships.csv")
    assert cat.relationship("V00", "S0644") == {"vendor": "V00", "session": "0644", "relationship": "stranger",
                                                "relationship_detail": "stranger"}
    by_session = defaultdict(dict)
    for r in raw:
        by_session[r["session_id"]][r["vendor_id"]] = r
    session, vendors = next((s, v) for s, v in by_session.items()
                            if len({r["relationship_detail"] for r in v.values()}) > 1)
    for vendor, r in vendors.items():
        got = cat.relationship(vendor[1:], session)
        assert (got["relationship"], got["relationship_detail"]) == (r["relationship"], r["relationship_detail"])
    assert cat.relationship("V02", "9999") is None


def test_prompt_join_reads_multiline_text_and_keeps_zeros(cat):
    raw = {r["prompt_hash"]: r for r in _csv_rows("interactions.csv")}
    multiline = next(h for h, r in raw.items() if "\n" in r["participant_a_prompt_text"] and not r["ipc_b"])
    got = cat.prompt(multiline)
    assert got["prompt_hash"] == multiline and len(multiline) == 8
    for column in ("prompt_id_unique", "participant_a_prompt_text", "participant_b_prompt_text", "ipc_a",
                   "interaction_type"):
        assert got[column] == raw[multiline][column]
    assert got["ipc_b"] is None
    assert cat.prompt("I" + multiline) == got == cat.prompt(f"V00_S0001_I{multiline}")
    assert cat.prompt("00009999") is None
    with pytest.raises(InvalidIdError):
        cat.prompt("125")
    assert cat.table("interactions").num_rows == len(raw)


def test_interaction_metadata_is_one_consistent_join(cat):
    meta = cat.interaction_metadata("V00_S0644_I00000125")
    assert meta["file_ids"] == ["V00_S0644_I00000125_P0299A", "V00_S0644_I00000125_P0799"]
    assert (meta["vendor"], meta["session_key"], meta["prompt_hash"]) == ("V00", "V00_S0644", "00000125")
    assert meta["relationship"] == cat.relationship("V00", "0644")
    prompt = cat.prompt("00000125")
    assert {k: meta[k] for k in prompt if k != "prompt_hash"} == {k: v for k, v in prompt.items() if k != "prompt_hash"}
    for p in meta["participants"]:
        rec = cat.record(p["file_id"])
        assert (p["batch"], p["archive"], p["label"], p["split"]) == (rec.batch, rec.archive, rec.label, rec.split)
        person = cat.participant("V00", p["participant_id"])
        assert p["traits"] == {t: person[t] for t in TRAIT_COLUMNS}
    assert meta["participants"][0]["participant_id"] == "0299A"


# ---------------------------------------------------------------------- parsing and caching


def test_cache_is_reused_and_invalidated_by_edit(paths, rows, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    _write_filelist(folder / "filelist.csv", rows[:100])
    cache = tmp_path / "cache"
    first = Catalog.from_paths({"filelist": folder / "filelist.csv"}, cache_dir=cache)
    copies = sorted(p.name for p in cache.glob("filelist.*.arrow"))
    assert len(copies) == 1 and len(first) == 100
    second = Catalog.from_paths({"filelist": folder / "filelist.csv"}, cache_dir=cache)
    assert second.table("filelist").equals(first.table("filelist"))
    _write_filelist(folder / "filelist.csv", rows[:50])
    third = Catalog.from_paths({"filelist": folder / "filelist.csv"}, cache_dir=cache)
    assert len(third) == 50
    assert len(list(cache.glob("filelist.*.arrow"))) == 1  # the stale copy was removed
    # Optional tables absent: empty joins, not errors.
    assert third.prompt(rows[0][0]) is None and third.participant("V00", "0299") is None
    assert third.table("participants").num_rows == 0


def test_old_five_column_filelist_has_unknown_flags(rows, tmp_path):
    _write_filelist(tmp_path / "filelist.csv", [r[:5] for r in rows[:40]], header=HEADER[:5])
    cat = Catalog.from_paths({"filelist.csv": tmp_path / "filelist.csv"})
    rec = cat.record(rows[0][0])
    assert (rec.has_imitator_movement, rec.has_annotation_1p, rec.has_annotation_3p) == (None, None, None)
    assert cat.file_ids(has_imitator_movement=True) == [] and cat.file_ids(has_imitator_movement=False) == []
    assert len(cat.file_ids()) == 40


def test_pandas_index_column_duplicates_and_bad_rows(rows, tmp_path, caplog):
    body = [[i, *r] for i, r in enumerate(rows[:10])]
    body.append([10, *rows[3][:3], 77, 78, *rows[3][5:]])  # duplicate id: the first row wins
    body.append([11, "V00_S0001_I001_P0001", "improvised", "dev", 0, 0, 1, 0, 0])  # malformed id: dropped
    # Rows the local layout cannot hold (they would name folders outside it): dropped too.
    body.append([12, "V00_S0001_I00000001_P0001", "improvised", "../../x", 0, 0, 1, 0, 0])
    body.append([13, "V00_S0001_I00000001_P0002", "../x", "dev", 0, 0, 1, 0, 0])
    body.append([14, "V00_S0001_I00000001_P0003", "improvised", "dev", -1, 0, 1, 0, 0])
    body.append([15, "V00_S0001_I00000001_P0004", "improvised", "dev", 0, 10000, 1, 0, 0])
    _write_filelist(tmp_path / "filelist.csv", body, header=["", *HEADER])
    cat = Catalog.from_paths({"filelist": tmp_path / "filelist.csv"})
    assert len(cat) == 10 and "V00_S0001_I00000001_P0001" not in cat
    assert (cat.record(rows[3][0]).batch, cat.record(rows[3][0]).archive) == (rows[3][3], rows[3][4])
    assert "duplicate" in caplog.text and "malformed" in caplog.text


def test_missing_columns_and_tables_raise_catalog_error(tmp_path):
    (tmp_path / "filelist.csv").write_text("file_id,label\nV00_S0001_I00000001_P0001,improvised\n")
    with pytest.raises(CatalogError, match="batch_idx"):
        Catalog.from_paths({"filelist.csv": tmp_path / "filelist.csv"})
    with pytest.raises(CatalogError, match="filelist"):
        Catalog.from_paths({"participants.csv": tmp_path / "filelist.csv"})
    with pytest.raises(CatalogError, match="nothere"):
        Catalog.from_paths({"filelist.csv": tmp_path / "nothere.csv"})


def test_table_names(cat):
    fl = cat.table("filelist")
    assert fl.column_names[:8] == HEADER and fl.num_rows == len(cat)
    assert cat.table("participants.csv").num_rows == len(_csv_rows("participants.csv"))
    with pytest.raises(ValueError):
        cat.table("diff")
