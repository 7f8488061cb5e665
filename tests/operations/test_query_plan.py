"""SQL views, query errors and outputs, the download plan and its execution, and the CLI around them."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from seamless_interaction import cli
from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.operations.plan import ROUTES, LinkModel
from seamless_interaction.operations.query import QueryError, format_table
from seamless_interaction.remote.urls import hub_archive_path


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, sample_server):
    tmp = tmp_path_factory.mktemp("query")
    cfg = DatasetConfig(local_dir=tmp / "data", cdn_url=sample_server.cdn_url, hf_url=sample_server.hf_url,
                        assets=sample_server.assets_url, cache_dir=tmp / "cache")
    fs = SeamlessInteractionFS(cfg, quiet=True)
    fs.build_index()
    yield fs, tmp
    fs.close()


def test_every_view_and_a_join(indexed, sample_mirror):
    fs, _ = indexed
    for view in ("files", "interactions", "participants", "relationships", "file_stats", "interaction_stats",
                 "archives"):
        assert fs.query(f"SELECT count(*) AS n FROM {view}")["n"][0].as_py() > 0, view
    t = fs.query("""
        SELECT f.file_id, p.extraversion_raw, r.relationship_detail, i.interaction_type, s.speech_ratio
        FROM files f
        JOIN file_stats s USING (file_id)
        LEFT JOIN participants p ON p.vendor = f.vendor AND p.participant_id = f.participant_id
        LEFT JOIN relationships r ON r.vendor = f.vendor AND r.session_id = f.session_id
        LEFT JOIN interactions i ON i.prompt_hash = f.prompt_hash
        ORDER BY f.file_id""")
    assert t["file_id"].to_pylist() == sorted(sample_mirror.file_ids)
    # the suffixed id joins its own participants row (the suffix is part of the id)
    fid = sample_mirror.suffixed[0]
    row = next(r for r in t.to_pylist() if r["file_id"] == fid)
    expect = fs.catalog.participant(fid[:3], fid[21:])
    assert row["extraversion_raw"] == (expect["extraversion_raw"] if expect else None)


def test_sql_error_is_one_line_with_position(indexed):
    fs, _ = indexed
    with pytest.raises(QueryError) as e:
        fs.query("SELECT * FORM files")
    assert "\n" not in str(e.value) and "(line 1, column 15)" in str(e.value)
    with pytest.raises(QueryError) as e:
        fs.query("SELECT file_id\nFROM files WHERE bogus = 1")
    assert "\n" not in str(e.value) and "(line 2, column 18)" in str(e.value) and "bogus" in str(e.value)


def test_output_formats(indexed):
    fs, _ = indexed
    t = fs.query("SELECT file_id, speech_s FROM file_stats ORDER BY file_id LIMIT 3")
    assert format_table(t, "ids").splitlines() == t["file_id"].to_pylist()
    assert format_table(t, "csv").splitlines()[0] == '"file_id","speech_s"'
    assert [json.loads(x)["file_id"] for x in format_table(t, "json").splitlines()] == t["file_id"].to_pylist()
    text = format_table(t, "table", max_rows=2)
    assert text.splitlines()[0].split() == ["file_id", "speech_s"] and "1 more rows" in text
    with pytest.raises(QueryError, match="file_id column"):
        format_table(fs.query("SELECT 1 AS x"), "ids")


def _cli_base(fs, tmp) -> list[str]:
    c = fs.config
    return ["--local-dir", str(tmp / "cli-data"), "--cdn-url", c.cdn_url, "--hf-url", c.hf_url, "--assets",
            c.assets, "-q"]


def test_cli_query_and_empty_download(indexed, capsys, monkeypatch):
    fs, tmp = indexed
    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(fs.config.cache_dir))
    base = _cli_base(fs, tmp)
    assert cli.main(["query", *base, "--ids", "SELECT file_id FROM file_stats WHERE vad_empty"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == fs.query("SELECT file_id FROM file_stats WHERE vad_empty")["file_id"].to_pylist()
    assert cli.main(["query", *base, "SELECT file_id FROM file_stats WHERE false"]) == 0
    assert "no rows" in capsys.readouterr().err
    assert cli.main(["download", *base, "--query", "SELECT file_id FROM file_stats WHERE false"]) == 0
    assert "nothing to download" in capsys.readouterr().out
    assert not (tmp / "cli-data").exists()
    assert cli.main(["query", *base, "SELEC 1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: SQL error (line 1, column 1)") and err.count("\n") == 1


def test_plan_picks_fastest_route_per_archive(indexed, sample_mirror):
    fs, _ = indexed
    link = LinkModel(latency_s=0.02, bandwidth_bps=2e6, connections=8)
    one = sample_mirror.movement[0]
    # one id's features: Range members beat the whole tar and the CDN's whole bundle
    plan = fs.plan_download([one], modalities=("npz", "json"), link=link)
    assert [a.route for a in plan.archives] == ["range"]
    # a missing archive can only go by the CDN, and the single-route totals say which are impossible
    plan = fs.plan_download(sample_mirror.missing_archive_ids + [one], link=link)
    routes = {a.ref: a.route for a in plan.archives}
    assert routes[tuple(sample_mirror.missing_archive)] == "cdn"
    assert plan.total("tar") is None and plan.total("cdn") is not None
    assert "not possible" in plan.summary()
    # over a whole split the plan is never slower than the best single route
    ids = [f for f in sample_mirror.file_ids if sample_mirror.files[f].label == "improvised"]
    plan = fs.plan_download(ids, link=link)
    singles = [t.seconds for t in (plan.total(r) for r in ROUTES) if t is not None]
    assert plan.total().seconds <= min(singles) + 1e-12
    for a in plan.archives:
        assert a.chosen.seconds == min(e.seconds for e in a.estimates.values())


def test_executed_plan_brings_the_members_home(tmp_path, sample_server, sample_mirror):
    cfg = DatasetConfig(local_dir=tmp_path / "data", cdn_url=sample_server.cdn_url, hf_url=sample_server.hf_url,
                        assets=sample_server.assets_url, cache_dir=tmp_path / "cache")
    one = sample_mirror.movement[0]
    ids = [one, *sample_mirror.missing_archive_ids]
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        plan = fs.plan_download(ids, modalities=("npz", "json"), link=LinkModel(0.02, 2e6, 8))
        fs.execute_plan(plan)
        for fid in ids:
            local = {Path(p).suffix[1:]: Path(p) for p in fs.get_path_list_for_file_id_local(fid)}
            assert {"npz", "json"} <= set(local)
            r = sample_mirror.files[fid]
            if (r.label, r.split, r.batch, r.archive) != tuple(sample_mirror.missing_archive):
                with tarfile.open(sample_mirror.hub_dir / hub_archive_path(r.label, r.split, r.batch, r.archive)) as t:
                    assert local["npz"].read_bytes() == t.extractfile(f"{fid}.npz").read()
                    assert local["json"].read_bytes() == t.extractfile(f"{fid}.json").read()
                assert "mp4" not in local  # only the members asked for


README_QUERIES = [
    """SELECT s.interaction_key, r.relationship_detail, s.duration_s, s.speech_share_a, s.n_interruptions
  FROM interaction_stats s JOIN files f ON f.file_id = s.file_id_a
  JOIN relationships r ON r.vendor = f.vendor AND r.session_id = f.session_id
  WHERE r.relationship_detail IN ('friends', 'dating/spouse/romantic_partner')
    AND s.duration_s > 300 AND s.speech_share_a BETWEEN 0.3 AND 0.7 AND s.n_interruptions >= 3""",
    "SELECT DISTINCT f.session_key FROM file_stats s JOIN files f USING (file_id) WHERE s.vad_empty",
    "SELECT file_id, frame_rate, video_rate FROM file_stats WHERE NOT frame_rate_ok",
]


def test_readme_questions_run(indexed, sample_mirror):
    fs, _ = indexed
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for sql in README_QUERIES:
        assert " ".join(sql.split()) in " ".join(readme.split())  # the README shows exactly these
        fs.query(sql)
    empty = fs.query(README_QUERIES[1])["session_key"].to_pylist()
    assert empty == sorted({f[:9] for f in sample_mirror.placeholder})
    # the 29.97 fps files of 1 s hold 29 frames: 29 Hz against 29.97 Hz is more than 1 % off
    off = set(fs.query(README_QUERIES[2])["file_id"].to_pylist())
    assert off == set(sample_mirror.non30fps)


def test_cli_ids_from_file_prints_a_plan(indexed, sample_mirror, capsys, monkeypatch, tmp_path):
    fs, tmp = indexed
    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(fs.config.cache_dir))
    ids = sample_mirror.movement[:2]
    listing = tmp_path / "ids.txt"
    listing.write_text("file_id\n" + "\n".join(ids) + "\n# a comment\n")
    argv = ["download", *_cli_base(fs, tmp), "--ids-from", str(listing), "--only", "npz,json", "--plan",
            "--latency", "0.01", "--bandwidth", "1e6"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"plan for {len(ids)} file ids") and "all tar" in out and "range" in out
    assert not (tmp / "cli-data").exists()  # --plan downloads nothing
    listing.write_text("not-an-id\n")
    assert cli.main(argv) == 2
    assert "not-an-id" in capsys.readouterr().err
