"""``seamless_interaction.ray.download`` on a real local Ray (one session for the module) against the mirror."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray front end is the optional [ray] extra")

from seamless_interaction.base.errors import InvalidIdError
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.ray import (
    DownloadError,
    ResolveLimiter,
    download,
    plan_download,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote" / "faults"))
from faultserver import Fault, FaultServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every data file (toolkit state and temp files excluded)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".seamless_interaction" not in p.parts}


def first_archives(catalog, n: int) -> list[tuple[str, str, int, int]]:
    out = []
    for label, split in catalog.labels_splits():
        for b in catalog.batches(label, split):
            out += [(label, split, b, a) for a in catalog.archives(label, split, b)]
    return out[:n]


def test_plan_is_the_clis_one_task_per_archive_or_id_group(make_fs):
    fs = make_fs()
    refs = first_archives(fs.catalog, 3)
    ids = fs.catalog.archive_file_ids(*refs[0])
    jobs = plan_download(refs + ids, fs.catalog, ids_per_task=2)
    assert [j.route for j in jobs] == ["archive"] * 3 + ["cdn"] * ((len(ids) + 1) // 2)
    members = plan_download(refs[:1] + ids[:1], fs.catalog, only=("npz", "json"))
    assert [(j.route, j.file_ids, j.exts) for j in members] == [
        ("members", None, ("npz", "json")), ("members", (ids[0],), ("npz", "json"))]
    grouped = plan_download(refs + ids[:1], fs.catalog, only=("npz",), archives_per_task=2)
    assert [(j.route, j.archives, j.file_ids) for j in grouped] == [
        ("members", tuple(refs[:2]), None), ("members", None, None), ("members", None, (ids[0],))]
    assert grouped[1].archive == refs[2] and grouped[2].archive == refs[0]


def test_archives_and_ids_leave_the_clis_tree_and_verify_passes(ray_session, make_fs, tmp_path, mirror_config):
    fs_cli = make_fs(tmp_path / "cli")
    refs = first_archives(fs_cli.catalog, 2)
    ids = [f for f in fs_cli.catalog.archive_file_ids(*first_archives(fs_cli.catalog, 3)[2])][:2]
    for ref in refs:
        fs_cli.download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2])
    fs_cli.download_batch_from_s3(ids)

    dest = tmp_path / "ray"
    res = download(refs + ids, dest=dest, config=mirror_config(dest), ids_per_task=1, archives_per_task=1)
    assert res.tasks == len(refs) + len(ids)
    assert res.resolves == len(refs)  # one per archive, all granted by the job's limiter; the CDN needs none
    assert tree(dest) == tree(tmp_path / "cli")
    ours, theirs = Manifest(dest).entries(), Manifest(tmp_path / "cli").entries()
    assert {k: (e.url, e.size, e.sha256) for k, e in ours.items()} == \
        {k: (e.url, e.size, e.sha256) for k, e in theirs.items()} != {}
    with SeamlessInteractionFS(mirror_config(dest), quiet=True) as fs:
        report = fs.verify()
    assert report.ok, report.summary()


def test_archives_in_groups_through_one_engine_per_task(ray_session, make_fs, tmp_path, mirror_config):
    fs_cli = make_fs(tmp_path / "cli")
    refs = first_archives(fs_cli.catalog, 3)
    jobs = plan_download(refs, fs_cli.catalog, archives_per_task=2)
    assert [(j.archive, j.archives) for j in jobs] == [(None, tuple(refs[:2])), (refs[2], None)]
    with pytest.raises(InvalidIdError, match="archives_per_task=0"):
        plan_download(refs, fs_cli.catalog, archives_per_task=0)
    for ref in refs:
        fs_cli.download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2])
    dest = tmp_path / "ray"
    res = download(refs, dest=dest, config=mirror_config(dest), archives_per_task=2)
    assert res.tasks == 2 and res.files == len(refs)
    assert tree(dest) == tree(tmp_path / "cli") != {}
    ours, theirs = Manifest(dest).entries(), Manifest(tmp_path / "cli").entries()
    assert {k: (e.url, e.size, e.sha256) for k, e in ours.items()} == \
        {k: (e.url, e.size, e.sha256) for k, e in theirs.items()}
    with SeamlessInteractionFS(mirror_config(dest), quiet=True) as fs:
        assert fs.verify().ok
    # By default one group per node: this local Ray has one.
    again = download(refs, dest=tmp_path / "default", config=mirror_config(tmp_path / "default"))
    assert again.tasks == 1 and tree(tmp_path / "default") == tree(tmp_path / "cli")
    assert again.resolves == len(refs)  # the job's only task kept the job's limits itself, and counted them


def test_members_only_through_ray(ray_session, make_fs, tmp_path, mirror_config):
    fs_cli = make_fs(tmp_path / "cli")
    refs = first_archives(fs_cli.catalog, 2)
    fs_cli.fetch_members_for(archives=refs, modalities=("npz", "json"))
    dest = tmp_path / "ray"
    res = download(refs, only=("npz", "json"), dest=dest, config=mirror_config(dest))
    assert res.tasks == 1  # whole archives' members: one group per node, fetched as the CLI does
    assert tree(dest) == tree(tmp_path / "cli") != {}
    ours, theirs = Manifest(dest).entries(), Manifest(tmp_path / "cli").entries()
    assert res.records == len(ours) > 0
    assert {k: (e.url, e.size, e.sha256) for k, e in ours.items()} == \
        {k: (e.url, e.size, e.sha256) for k, e in theirs.items()}


def test_a_task_that_fails_once_is_retried_and_resumes_by_bytes(ray_session, make_fs, tmp_path, mirror_config,
                                                                sample_mirror):
    """The archive's first GET drops mid-body; with no engine retry the task fails, Ray reruns it, and
    the rerun continues the .part from the bytes already on disk."""
    fs = make_fs()
    ref = first_archives(fs.catalog, 1)[0]
    rel = f"{ref[0]}/{ref[1]}/{ref[2]:04d}/{ref[3]:04d}.tar"
    data = (sample_mirror.root / "hub" / rel).read_bytes()
    with FaultServer() as srv:
        base = "/datasets/facebook/seamless-interaction/resolve/main"
        res_ = srv.add(f"{base}/{rel}", data, faults=[Fault.ignore_range(),  # (the resolve HEAD takes the first)
                                                         Fault.drop(after=len(data) // 2)])
        dest = tmp_path / "ray"
        cfg = dataclasses.replace(mirror_config(dest), hf_url=srv.url(base))
        download([ref], dest=dest, config=cfg, transfer_options={"retries": 0, "segment_bytes": 1 << 30})
        gets = srv.requests(f"{base}/{rel}")
        assert not res_.faults  # the drop happened
        assert len(gets) == 2 and gets[1].headers.get("range", "").startswith(f"bytes={len(data) // 2}")
    ref_dir = tmp_path / "cli"
    make_fs(ref_dir).download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2])
    assert tree(dest) == tree(ref_dir)
    with SeamlessInteractionFS(mirror_config(dest), quiet=True) as fs2:
        assert fs2.verify().ok


def test_a_task_that_keeps_failing_is_reported_and_the_others_are_kept(ray_session, make_fs, tmp_path,
                                                                       mirror_config, sample_mirror):
    fs = make_fs()
    good, bad = first_archives(fs.catalog, 2)
    with FaultServer() as srv:
        base = "/datasets/facebook/seamless-interaction/resolve/main"
        for ref in (good, bad):
            rel = f"{ref[0]}/{ref[1]}/{ref[2]:04d}/{ref[3]:04d}.tar"
            r = srv.add(f"{base}/{rel}", (sample_mirror.root / "hub" / rel).read_bytes())
            if ref == bad:
                r.always = Fault.status(503)
        dest = tmp_path / "ray"
        with pytest.raises(DownloadError, match="1 of 2 download tasks failed \\(transfer errors after 1 retries\\)"):
            cfg = dataclasses.replace(mirror_config(dest), hf_url=srv.url(base))
            download([good, bad], dest=dest, config=cfg, retries=1, archives_per_task=1,
                     transfer_options={"retries": 0})
    assert any(k.startswith(f"{good[0]}/{good[1]}/{good[2]:04d}/{good[3]:04d}/") for k in Manifest(dest).entries())


def test_the_token_reaches_workers_by_their_environment_only(ray_session, tmp_path, mirror_config, monkeypatch):
    from seamless_interaction.ray.cluster import token_runtime_env

    assert token_runtime_env("hf_secret") == {"env_vars": {"HF_TOKEN": "hf_secret"}}

    @ray.remote
    def seen() -> str | None:
        from seamless_interaction.base.config import DatasetConfig

        return DatasetConfig().resolved().hf_token

    assert ray.get(seen.options(runtime_env=token_runtime_env("hf_secret")).remote()) == "hf_secret"


def test_resolve_limiter_grants_a_quota_per_window_and_pauses_everyone():
    lim = ResolveLimiter(quota=2, window_s=60)
    assert lim.acquire() == 0.0 and lim.acquire() == 0.0
    assert 59 < lim.acquire() <= 60
    lim2 = ResolveLimiter()
    lim2.pause(30)
    assert 29 < lim2.acquire() <= 30


def test_cli_download_with_ray(ray_session, make_fs, tmp_path, sample_server, monkeypatch, capsys):
    from seamless_interaction.cli import main

    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(tmp_path / "cache"))
    fs = make_fs(tmp_path / "cli")
    ref = first_archives(fs.catalog, 1)[0]
    fs.download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2])
    spec = f"{ref[0]}/{ref[1]}/{ref[2]}/{ref[3]}"
    argv = ["download", "--archive", spec, "--ray", "--local-dir", str(tmp_path / "ray"), "-q",
            "--hf-url", sample_server.hf_url, "--cdn-url", sample_server.cdn_url, "--assets", sample_server.assets_url]
    assert main(argv) == 0
    assert "from 1 Ray tasks" in capsys.readouterr().out
    assert tree(tmp_path / "ray") == tree(tmp_path / "cli")
    assert main(["download", "--ray", "--local-dir", str(tmp_path / "ray"), "--assets", sample_server.assets_url]) == 2
    assert capsys.readouterr().err.startswith("error: nothing to download")


def test_build_index_on_ray_equals_the_single_machine_index(ray_session, make_fs, tmp_path, mirror_config):
    """Parts built by the tasks, written by the driver: the final pass skips every archive (nothing
    re-read) and the tables equal a build on one machine."""
    import pyarrow.parquet as pq

    from seamless_interaction.operations.index import index_dir
    from seamless_interaction.ray import build_index

    one = make_fs(tmp_path / "one")
    single = one.build_index()
    cfg = dataclasses.replace(mirror_config(tmp_path / "ray"), cache_dir=tmp_path / "ray-cache")
    report = build_index(config=cfg, archives_per_task=3)
    assert not report.failed and report.indexed == 0 and report.skipped == single.indexed + single.skipped
    ours = index_dir(cfg.cache_dir, one.config.assets, one.config.hf_url)
    theirs = index_dir(one.config.cache_dir, one.config.assets, one.config.hf_url)
    for table in ("file_stats", "interaction_stats", "vad"):
        assert pq.read_table(ours / f"{table}.parquet").equals(pq.read_table(theirs / f"{table}.parquet")), table



def test_records_of_a_failed_attempt_come_back_with_the_retry(make_fs, tmp_path, mirror_config):
    """A member whose final path is taken (a folder) fails the attempt after its neighbours landed; the
    retry skips those (complete on disk) yet still returns their records, kept from the first attempt."""
    from seamless_interaction.base.ids import ArchiveRef
    from seamless_interaction.local.layout import archive_dir
    from seamless_interaction.ray.download import DownloadJob, _run_job

    fs = make_fs()
    ref = first_archives(fs.catalog, 1)[0]
    fid = fs.catalog.archive_file_ids(*ref)[0]
    dest = tmp_path / "ray"
    cfg = mirror_config(dest)
    job = DownloadJob("members", ref, None, ("npz", "json"))
    folder = archive_dir(dest, ArchiveRef(*ref))
    blocker = folder / f"{fid}.npz"
    blocker.mkdir(parents=True)
    with pytest.raises(OSError):
        _run_job(job, cfg, None, None, {"retries": 0})
    blocker.rmdir()
    out = _run_job(job, cfg, None, None, {"retries": 0})
    recorded = {rec["path"].rsplit("/", 1)[-1] for op, rec in out["records"] if op == "record"}
    on_disk = {p.name for p in folder.iterdir()}
    assert recorded == on_disk and f"{fid}.npz" in recorded and len(on_disk) > 2
    assert not list((dest / ".seamless_interaction" / "ray").glob("*.json"))  # the carry is gone


def test_cli_index_build_with_ray(ray_session, tmp_path, sample_server, monkeypatch, capsys):
    from seamless_interaction.cli import main

    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(tmp_path / "cache"))
    argv = ["index", "build", "--label", "improvised", "--split", "dev", "--ray", "-q", "--local-dir",
            str(tmp_path / "data"), "--hf-url", sample_server.hf_url, "--cdn-url", sample_server.cdn_url,
            "--assets", sample_server.assets_url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    import re

    files = re.search(r": (\d+) files, (\d+) interactions", out)
    assert files and int(files[1]) > 0 and int(files[2]) > 0, out
