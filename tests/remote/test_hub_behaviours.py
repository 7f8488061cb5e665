"""The real Hub's and CDN's behaviours (issue 9), each switched on in the mirror, end to end.

Token scope, signed targets that expire, rate limits with ``RateLimit`` headers, listings for whole-split
scans, gated access and missing files: every route (CDN files, Hub archives, tar index, member reads, the
loader) runs against a mirror whose CDN and redirect targets live on another loopback address.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import (
    AccessDeniedError,
    MissingPartError,
    TransferError,
)
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.mirror import MirrorInfo, MirrorServer
from seamless_interaction.mirror.server import HubBehaviour
from seamless_interaction.remote.transfer import Transfer
from seamless_interaction.remote.urls import hub_archive_url
from seamless_interaction.routes import hub as hub_route

OTHER = "127.0.0.2"  # the CDN's and redirect targets' host: not the Hub's
TOKEN = "hf_mirrorTestToken0123456789"


def _serve(mirror: MirrorInfo, **kw: object) -> MirrorServer:
    return MirrorServer(mirror.root, behaviour=HubBehaviour(other_host=OTHER, **kw))  # type: ignore[arg-type]


def _config(srv: MirrorServer, tmp_path: Path, token: str | None = TOKEN) -> DatasetConfig:
    return DatasetConfig(local_dir=tmp_path / "data", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                         assets=srv.assets_url, cache_dir=tmp_path / "cache", hf_token=token)


def _archives(mirror: MirrorInfo) -> list[tuple[str, str, int, int]]:
    return [a for a in mirror.archives if a != mirror.missing_archive]


def _resolves(srv: MirrorServer) -> int:
    return sum(1 for r in srv.requests if "/resolve/" in r.path)


@pytest.fixture
def split_server(sample_mirror: MirrorInfo) -> Iterator[MirrorServer]:
    with _serve(sample_mirror) as srv:
        yield srv


def test_token_reaches_the_hub_only_on_every_route(sample_mirror, split_server, tmp_path):
    """Done when: no request to a host other than the Hub's carries the token."""
    srv = split_server
    hub_host = f"{srv.host}:{srv.port}"
    fid = sample_mirror.movement[0]
    label, split, batch, archive = _archives(sample_mirror)[0]
    with SeamlessInteractionFS(_config(srv, tmp_path), quiet=True) as fs:
        fs.gather_file_id_data_from_s3(fid)  # CDN, 403 = absent for optional parts
        fs.download_archive_from_hf(archive, label=label, split=split, batch=batch)  # Hub archive
        fs.fetch_members(*_archives(sample_mirror)[1])  # tar index + member reads
        fs.get_tar_archive_size(label, split, batch, archive)
        report = fs.verify(label=label, split=split, check_remote=True)  # sizes from the Hub's listing
        assert report is not None
        other = sample_mirror.root / "hub" / "improvised" / "dev"
        shards = sorted(str(p.relative_to(sample_mirror.root / "hub")) for p in other.rglob("*.tar"))[:1]
    pytest.importorskip("torch")
    from seamless_interaction.access.loader import WindowDataset

    loader_transfer = Transfer.from_config(_config(srv, tmp_path).resolved())
    try:
        list(WindowDataset([f"{srv.hf_url}/{s}" for s in shards], window_s=0.5, dyadic=False, transfer=loader_transfer))
    finally:
        loader_transfer.close()
    records = srv.requests
    elsewhere = [r for r in records if r.host != hub_host]
    assert elsewhere and any(r.path.startswith("/lfs/") for r in elsewhere)  # targets really live elsewhere
    assert any(r.path.startswith("/seamless_interaction/") for r in elsewhere)  # and so does the CDN
    assert [r for r in elsewhere if r.authorization is not None] == []
    assert all(r.status != 400 for r in elsewhere)  # the CDN host refuses Authorization: none was refused
    hub_calls = [r for r in records if r.host == hub_host and ("/resolve/" in r.path or "/api/" in r.path)]
    assert hub_calls and all(r.authorization == f"Bearer {TOKEN}" for r in hub_calls)


def test_features_only_fetch_survives_expiring_and_flaky_targets(sample_mirror, tmp_path):
    """Done when: a features-only fetch of a split survives its redirect targets expiring."""
    with _serve(sample_mirror, target_ttl_s=1.0, flaky_target_403=0.15, seed=3) as srv:
        cfg = _config(srv, tmp_path, token=None)
        archives = _archives(sample_mirror)
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            fs.transfer.policy.backoff_s = fs.transfer.policy.max_backoff_s = 0.01
            for ref in archives:  # index every archive: each target resolved and read once
                fs.plan_members(archives=[ref])
            time.sleep(1.5)  # every signed target handed out so far has now expired
            paths = fs.fetch_members_for(archives=archives, modalities=("npz", "json"))
        refused = [r for r in srv.requests if r.path.startswith("/lfs/") and r.status == 403]
        assert refused  # expired (and flaky) targets were met, and re-resolved
    assert paths and all(p.suffix in (".npz", ".json") for p in paths)
    for ref in archives:
        tar_path = sample_mirror.root / "hub" / hub_archive_url("", *ref).lstrip("/")
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if m.name.endswith((".npz", ".json")):
                    local = tmp_path / "data" / ref[0] / ref[1] / f"{ref[2]:04d}" / f"{ref[3]:04d}" / m.name
                    assert local.read_bytes() == tar.extractfile(m).read()  # type: ignore[union-attr]


def test_a_403_from_the_cdn_is_absent_from_a_hub_target_it_is_not(sample_mirror, tmp_path):
    with _serve(sample_mirror, flaky_target_403=1.0) as srv, \
            Transfer(hub_url=srv.hf_url, retries=2, backoff_s=0.001, max_backoff_s=0.01) as t:
        fid = sample_mirror.no_transcript[0]
        rec = sample_mirror.files[fid]
        missing = f"{srv.cdn_url}/{rec.label}/{rec.split}/metadata/transcript/{fid}.jsonl"
        assert t.fetch(missing, tmp_path / "t.jsonl", optional=True) is None  # S3: 403 for a missing key
        url = hub_archive_url(srv.hf_url, *_archives(sample_mirror)[0])
        with pytest.raises(TransferError) as err:
            t.fetch(url, tmp_path / "a.tar", optional=True)  # optional, yet a refusing target is no absence
        assert not isinstance(err.value, MissingPartError) and "redirect target" in str(err.value)
        assert _resolves(srv) == 3  # one resolve per attempt: every refusal renews the target


def test_segments_share_one_resolve(sample_mirror, split_server, tmp_path):
    srv = split_server
    ref = max(_archives(sample_mirror), key=lambda a: (sample_mirror.root / "hub" / hub_archive_url("", *a)
                                                       .lstrip("/")).stat().st_size)
    url = hub_archive_url(srv.hf_url, *ref)
    size = (sample_mirror.root / "hub" / hub_archive_url("", *ref).lstrip("/")).stat().st_size
    with Transfer(hub_url=srv.hf_url, segment_bytes=max(4096, size // 16), segments_per_file=8) as t:
        res = t.fetch(url, tmp_path / "a.tar")
    assert res is not None and res.sha256 == hashlib.sha256((tmp_path / "a.tar").read_bytes()).hexdigest()
    gets = [r for r in srv.requests if r.path.startswith("/lfs/") and r.method == "GET"]
    assert len(gets) >= 4 and _resolves(srv) == 1


def test_rate_limit_waits_as_told_without_spending_retries(sample_mirror, tmp_path, caplog):
    """Resolves over a 4-per-window quota: 429 + RateLimit t=N, waited out, retries=0 still succeeds."""
    with _serve(sample_mirror, resolve_quota=4, window_s=1.0) as srv, Transfer(retries=0) as t:
        caplog.set_level(logging.WARNING)
        refs = _archives(sample_mirror)
        urls = [hub_archive_url(srv.hf_url, *r) for r in refs] * 3  # each head() asks the Hub afresh
        infos = [t.head(u) for u in urls]
        limited = [r for r in srv.requests if r.status == 429]
    assert all(i is not None and i.sha256 for i in infos)
    assert limited and t.http.gate.waits >= 1
    waits = [r.getMessage() for r in caplog.records if "Hub rate limit" in r.getMessage()]
    assert waits and all("set HF_TOKEN for a higher quota" in m and "\n" not in m for m in waits)


def test_whole_split_scan_of_10000_archives_under_quota(tmp_path):
    """Done when: 10,000 synthetic archives scanned under a 3,000-per-window quota with <= 50 resolves."""
    root = tmp_path / "mirror"
    (root / "hub").mkdir(parents=True)
    synthetic = {}
    for i in range(10_000):
        batch, archive = divmod(i, 500)
        digest = hashlib.sha256(str(i).encode()).hexdigest()
        synthetic[f"improvised/train/{batch:04d}/{archive:04d}.tar"] = (1_000_000 + i, digest)
    beh = HubBehaviour(other_host=OTHER, resolve_quota=3000, api_quota=4, window_s=1.0, synthetic=synthetic)
    with MirrorServer(root, behaviour=beh) as srv, \
            Transfer(hub_url=srv.hf_url, cache_dir=tmp_path / "cache") as t:
        sizes = {}
        for path in synthetic:
            batch, archive = int(path.split("/")[2]), int(path.split("/")[3][:4])
            sizes[path] = hub_route.archive_size(t, srv.hf_url, "improvised", "train", batch, archive)
        api_calls = [r for r in srv.requests if "/api/" in r.path]
        assert _resolves(srv) <= 50
        assert any(r.status == 429 for r in api_calls)  # the API quota was hit and waited out
    assert sizes == {p: s for p, (s, _) in synthetic.items()}
    # Cached by commit: a new engine scans again without a single request.
    with MirrorServer(root, port=srv.port, behaviour=beh) as srv2, \
            Transfer(hub_url=srv2.hf_url, cache_dir=tmp_path / "cache") as t2:
        assert hub_route.archive_size(t2, srv2.hf_url, "improvised", "train", 3, 7) == synthetic[
            "improvised/train/0003/0007.tar"][0]
        assert [r.path.split("/")[5] for r in srv2.requests] == ["revision"]  # main -> commit, then the cache


@pytest.mark.parametrize(("token", "hint"), [
    (None, "set HF_TOKEN"),
    ("hf_notGranted", "accept the dataset's terms on its page"),
])
def test_gated_answers_are_one_actionable_line(sample_mirror, tmp_path, token, hint):
    with _serve(sample_mirror, gated=True, granted_tokens=frozenset({TOKEN})) as srv:
        ref = _archives(sample_mirror)[0]
        with SeamlessInteractionFS(_config(srv, tmp_path, token=token), quiet=True) as fs, \
                pytest.raises(AccessDeniedError) as err:
            fs.download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2])
        msg = str(err.value)
        assert hint in msg and "\n" not in msg and f"{ref[3]:04d}.tar" in msg
        if token:
            assert token not in msg
        with SeamlessInteractionFS(_config(srv, tmp_path / "ok", token=TOKEN), quiet=True) as fs:
            ok, path = fs.download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2])
        assert ok and Path(path).is_dir()


def test_missing_file_is_one_line_entry_not_found(sample_mirror, split_server, tmp_path):
    srv = split_server
    url = hub_archive_url(srv.hf_url, *sample_mirror.missing_archive)
    for t in (Transfer(hub_url=srv.hf_url), Transfer()):  # from the listing, and from a resolve
        with t:
            with pytest.raises(MissingPartError) as err:
                t.head(url)
            assert "EntryNotFound" in str(err.value) and "\n" not in str(err.value)
            assert t.head(url, optional=True) is None


def test_cli_prints_one_error_line_for_a_gated_dataset(sample_mirror, tmp_path, capsys, monkeypatch):
    from seamless_interaction.cli import main

    with _serve(sample_mirror, gated=True) as srv:
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.setenv("SEAMLESS_INTERACTION_HF_URL", srv.hf_url)
        monkeypatch.setenv("SEAMLESS_INTERACTION_CDN_URL", srv.cdn_url)
        monkeypatch.setenv("SEAMLESS_INTERACTION_ASSETS", srv.assets_url)
        monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(tmp_path / "c"))
        label, split, batch, archive = _archives(sample_mirror)[0]
        code = main(["download", "--archive", f"{label}/{split}/{batch:04d}/{archive:04d}",
                     "--local-dir", str(tmp_path / "d"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("error:") and "set HF_TOKEN" in err[0]


def test_loader_over_http_rides_through_refusing_targets(sample_mirror, tmp_path):
    """The loader's reads use the engine: a refused (expired) target is resolved again, nothing is lost."""
    pytest.importorskip("torch")
    from seamless_interaction.access.loader import WindowDataset

    hub_dir = sample_mirror.root / "hub"
    shards = sorted(p.relative_to(hub_dir).as_posix() for p in (hub_dir / "improvised" / "dev").rglob("*.tar"))
    local = list(WindowDataset([str(hub_dir / s) for s in shards], window_s=0.5, dyadic=False))
    with _serve(sample_mirror, flaky_target_403=0.3, seed=5) as srv, \
            Transfer(hub_url=srv.hf_url, retries=8, backoff_s=0.001, max_backoff_s=0.01) as t:
        remote = list(WindowDataset([f"{srv.hf_url}/{s}" for s in shards], window_s=0.5, dyadic=False, transfer=t))
        refused = [r for r in srv.requests if r.path.startswith("/lfs/") and r.status == 403]
    assert refused and local
    assert [(i["file_ids"], i["start_s"]) for i in remote] == [(i["file_ids"], i["start_s"]) for i in local]


def test_loader_with_one_connection_reads_members_while_its_shard_streams(sample_mirror, split_server):
    """A stream takes no connection slot; a Range read of a member (the mp4 for video) while the shard
    streams must not wait on an HTTP pool that the stream itself fills (it hung with one connection)."""
    pytest.importorskip("torch")
    from seamless_interaction.access.loader import WindowDataset

    hub_dir = sample_mirror.root / "hub"
    shards = sorted(p.relative_to(hub_dir).as_posix() for p in (hub_dir / "improvised" / "dev").rglob("*.tar"))[:2]
    mods = ("features", "audio", "video")
    local = list(WindowDataset([str(hub_dir / s) for s in shards], modalities=mods, window_s=0.5, dyadic=False,
                               video_size=16))
    with Transfer(hub_url=split_server.hf_url, max_connections=1, timeout_s=5, retries=1, backoff_s=0.001) as t:
        remote = list(WindowDataset([f"{split_server.hf_url}/{s}" for s in shards], modalities=mods, window_s=0.5,
                                    dyadic=False, video_size=16, transfer=t))
    assert local and [(i["file_ids"], i["start_s"]) for i in remote] == [(i["file_ids"], i["start_s"]) for i in local]


def test_a_rate_limit_wait_stops_on_cancel_and_leaves_nothing_half_written(sample_mirror, tmp_path):
    from seamless_interaction.base.errors import TransferCancelled

    stop = threading.Event()
    refs = _archives(sample_mirror)
    with _serve(sample_mirror, resolve_quota=1, window_s=600.0) as srv, Transfer(cancel=stop) as t:
        t.head(hub_archive_url(srv.hf_url, *refs[0]))  # the window's only resolve
        timer = threading.Timer(0.3, stop.set)  # the Stop button, pressed during the wait
        timer.start()
        try:
            with pytest.raises(TransferCancelled):
                t.fetch(hub_archive_url(srv.hf_url, *refs[1]), tmp_path / "a.tar")  # told to wait ~600 s
        finally:
            timer.cancel()
        assert [r.status for r in srv.requests if "/resolve/" in r.path] == [302, 429]
    assert list(tmp_path.iterdir()) == []  # no part, no lock: a later run starts clean
