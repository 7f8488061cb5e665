"""The loopback server: real URL layouts, status codes, ranges, request log, throttling."""

from __future__ import annotations

import hashlib
import http.client
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from seamless_interaction.base import formats
from seamless_interaction.mirror import MirrorInfo, MirrorServer, serve
from seamless_interaction.remote.urls import cdn_parts, hub_archive_url


def first_wav(mirror: MirrorInfo) -> tuple[str, Path]:
    fid = mirror.movement[0]
    rec = mirror.files[fid]
    return f"{rec.label}/{rec.split}/audio/{fid}.wav", mirror.cdn_dir / rec.label / rec.split / "audio" / f"{fid}.wav"


def raw_get(srv: MirrorServer, path: str) -> tuple[int, bytes]:
    """GET with the path sent verbatim (httpx would normalise ``..`` away)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_cdn_serves_bytes_and_403_for_missing(mirror: MirrorInfo, srv: MirrorServer) -> None:
    rel, path = first_wav(mirror)
    with httpx.Client() as client:
        r = client.get(f"{srv.cdn_url}/{rel}")
        assert r.status_code == 200 and r.content == path.read_bytes()
        assert r.headers["accept-ranges"] == "bytes" and int(r.headers["content-length"]) == path.stat().st_size
        fid = mirror.no_transcript[0]
        rec = mirror.files[fid]
        missing = client.get(f"{srv.cdn_url}/{rec.label}/{rec.split}/metadata/transcript/{fid}.jsonl")
        assert missing.status_code == 403
        assert client.head(f"{srv.cdn_url}/{rec.label}/{rec.split}/movement_v4/is_valid/{fid}.npy").status_code == 403
        assert client.get(f"{srv.url}/nowhere").status_code == 404


def test_cdn_route_over_http_matches_hub_tar(mirror: MirrorInfo, srv: MirrorServer) -> None:
    """The lead's CDN route in miniature: fetch every part (403 = absent) and compare with the tar."""
    import tarfile

    fid = mirror.split_pairs[0][0]
    rec = mirror.files[fid]
    arrays, transcript, vad, ann, media = {}, None, None, {}, {}
    with httpx.Client() as client:
        for part in cdn_parts(srv.cdn_url, rec.label, rec.split, fid):
            r = client.get(part.url)
            if r.status_code == 403:
                continue
            r.raise_for_status()
            if part.kind == "feature":
                arrays[part.name] = np.load(io.BytesIO(r.content))
            elif part.kind == "transcript":
                transcript = formats.parse_jsonl(r.content)
            elif part.kind == "vad":
                vad = formats.parse_jsonl(r.content)
            elif part.kind == "annotation":
                ann[part.name.split(":")[1]] = formats.parse_jsonl(r.content)
            else:
                media[part.name] = r.content
        tar = client.get(hub_archive_url(srv.hf_url, rec.label, rec.split, rec.batch, rec.archive),
                         follow_redirects=True)
    assert tar.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    assert members[f"{fid}.npz"] == formats.encode_npz(arrays)
    assert members[f"{fid}.json"] == formats.encode_json(formats.bundle_json(fid, transcript, vad, ann or None))
    assert members[f"{fid}.wav"] == media["wav"] and members[f"{fid}.mp4"] == media["mp4"]


def test_hub_resolve_redirects_with_linked_headers(mirror: MirrorInfo, srv: MirrorServer) -> None:
    arch = mirror.archives[0]
    local = mirror.hub_dir / "/".join([arch[0], arch[1], f"{arch[2]:04d}", f"{arch[3]:04d}.tar"])
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    url = hub_archive_url(srv.hf_url, *arch)
    with httpx.Client() as client:
        head = client.head(url)
        assert head.status_code == 302
        assert head.headers["x-linked-size"] == str(local.stat().st_size)
        assert head.headers["x-linked-etag"] == f'"{sha}"'
        assert len(head.headers["x-repo-commit"]) == 40
        target = head.headers["location"]
        assert target.startswith(srv.url + "/")
        got = client.get(target)
        assert got.status_code == 200 and got.content == local.read_bytes()
        # Like a Xet target: an ETag of 64 hex digits that is not the sha256, and no ETag on the 302.
        etag = got.headers["etag"].strip('"')
        assert len(etag) == 64 and etag != sha and "etag" not in head.headers
        assert got.headers["accept-ranges"] == "bytes"
        assert client.get(url, follow_redirects=True).content == local.read_bytes()
        assert client.get(hub_archive_url(srv.hf_url, *mirror.missing_archive)).status_code == 404
        assert client.get(hub_archive_url(srv.hf_url, *mirror.extra_archive)).status_code == 302
        table = client.get(f"{srv.hf_url}/participants.csv")  # small repo files are not LFS: no redirect
        assert table.status_code == 200 and table.content == (mirror.assets_dir / "participants.csv").read_bytes()


def test_assets(mirror: MirrorInfo, srv: MirrorServer) -> None:
    with httpx.Client() as client:
        for name in ("filelist.csv", "interactions.csv", "participants.csv", "relationships.csv"):
            r = client.get(f"{srv.assets_url}/{name}")
            assert r.status_code == 200 and r.content == (mirror.assets_dir / name).read_bytes()
        assert client.get(f"{srv.assets_url}/nope.csv").status_code == 404


@pytest.mark.parametrize(("spec", "start", "end"), [
    ("bytes=10-99", 10, 99), ("bytes=100-", 100, None), ("bytes=-64", -64, None), ("bytes=0-999999999", 0, None),
])
def test_ranges(mirror: MirrorInfo, srv: MirrorServer, spec: str, start: int, end: int | None) -> None:
    rel, path = first_wav(mirror)
    data = path.read_bytes()
    expected = data[start:end + 1] if end is not None else data[start:]
    r = httpx.get(f"{srv.cdn_url}/{rel}", headers={"Range": spec})
    assert r.status_code == 206 and r.content == expected
    first = start if start >= 0 else len(data) + start
    assert r.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert srv.requests[-1].body_bytes == len(expected) and srv.requests[-1].range == spec


def test_head_and_unsatisfiable(mirror: MirrorInfo, srv: MirrorServer) -> None:
    rel, path = first_wav(mirror)
    size = path.stat().st_size
    with httpx.Client() as client:
        head = client.head(f"{srv.cdn_url}/{rel}")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(size)
        ranged_head = client.head(f"{srv.cdn_url}/{rel}", headers={"Range": "bytes=0-9"})
        assert ranged_head.status_code == 206 and ranged_head.headers["content-length"] == "10"
        bad = client.get(f"{srv.cdn_url}/{rel}", headers={"Range": f"bytes={size}-"})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
        # the connection stays usable after a 416 (keep-alive, correct framing)
        assert client.get(f"{srv.cdn_url}/{rel}", headers={"Range": "bytes=0-3"}).content == b"RIFF"
    assert [r.body_bytes for r in srv.requests] == [0, 0, 0, 4]


def test_request_log_counts_body_bytes(mirror: MirrorInfo, srv: MirrorServer) -> None:
    rel, path = first_wav(mirror)
    size = path.stat().st_size
    with httpx.Client() as client:
        client.get(f"{srv.cdn_url}/{rel}")
        client.get(f"{srv.cdn_url}/{rel}", headers={"Range": "bytes=0-99"})
        log = client.get(f"{srv.url}/_mirror/requests").json()  # out-of-process view; not itself logged
    records = srv.requests
    assert [(r.method, r.status, r.body_bytes) for r in records] == [("GET", 200, size), ("GET", 206, 100)]
    assert records[0].path == f"/seamless_interaction/{rel}" and records[0].range is None
    assert [(d["status"], d["body_bytes"]) for d in log] == [(200, size), (206, 100)]
    httpx.delete(f"{srv.url}/_mirror/requests")
    assert srv.requests == []


def test_aborted_download_counts_only_what_was_sent(tmp_path: Path, mirror: MirrorInfo) -> None:
    """A client that hangs up mid-body: the log records a partial count, not the full size."""
    with MirrorServer(mirror.root, bandwidth_bps=200_000) as srv:
        rel, path = first_wav(mirror)
        with httpx.stream("GET", f"{srv.cdn_url}/{rel}") as r:
            next(r.iter_raw(1024))
        deadline = time.monotonic() + 5
        while not srv.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.requests and 0 < srv.requests[0].body_bytes < path.stat().st_size


def test_traversal_rejected(mirror: MirrorInfo, srv: MirrorServer) -> None:
    for path in ("/seamless_interaction/../mirror.json", "/seamless_interaction/improvised/%2e%2e/%2e%2e/mirror.json",
                 "/assets/..%2Fmirror.json", "/lfs/../assets/filelist.csv",
                 "/datasets/facebook/seamless-interaction/resolve/main/../../../../mirror.json"):
        status, body = raw_get(srv, path)
        assert status in (400, 404), path
        assert b"generator_version" not in body


def test_latency_and_bandwidth(mirror: MirrorInfo) -> None:
    rel, path = first_wav(mirror)
    size = path.stat().st_size
    with MirrorServer(mirror.root, latency_s=0.2) as slow:
        t0 = time.monotonic()
        httpx.head(f"{slow.cdn_url}/{rel}")
        assert time.monotonic() - t0 >= 0.18
    bps = size * 4  # the file should take about 0.25 s
    with MirrorServer(mirror.root, bandwidth_bps=bps) as capped:
        t0 = time.monotonic()
        r = httpx.get(f"{capped.cdn_url}/{rel}")
        assert r.content == path.read_bytes()
        assert time.monotonic() - t0 >= 0.2


def test_total_bandwidth_is_shared(mirror: MirrorInfo) -> None:
    """A server-wide cap paces connections together: two parallel bodies take twice as long as one."""
    rel, path = first_wav(mirror)
    data = path.read_bytes()
    bps = len(data) * 8  # one body alone would take about 0.125 s
    with MirrorServer(mirror.root, total_bps=bps) as capped:
        with ThreadPoolExecutor(2) as pool:
            t0 = time.monotonic()
            bodies = list(pool.map(lambda _: httpx.get(f"{capped.cdn_url}/{rel}").content, range(2)))
            elapsed = time.monotonic() - t0
    assert bodies == [data, data]
    assert elapsed >= 0.2  # a lower bound only: 2 x size at the shared rate is 0.25 s


def test_concurrent_requests(mirror: MirrorInfo, srv: MirrorServer) -> None:
    rel, path = first_wav(mirror)
    data = path.read_bytes()
    results: list[bytes] = []

    def fetch() -> None:
        results.append(httpx.get(f"{srv.cdn_url}/{rel}").content)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [data] * 8 and len(srv.requests) == 8


def test_serve_prints_urls_and_blocks(mirror: MirrorInfo) -> None:
    out = io.StringIO()
    thread = threading.Thread(target=serve, args=(mirror.root, "127.0.0.1", 0), kwargs={"out": out}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while "Assets:" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = dict(line.split(":", 1) for line in out.getvalue().splitlines())
    cdn = lines["CDN"].strip()
    assert cdn.endswith("/seamless_interaction") and lines["Hub"].strip().endswith("/resolve/main")
    assert httpx.get(f"{lines['Assets'].strip()}/filelist.csv").status_code == 200
    assert thread.is_alive()  # daemon thread; it dies with the test process


def test_server_refuses_non_mirror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        MirrorServer(tmp_path)
