"""The command line, run as a user runs it: a subprocess against the loopback mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture
def run(sample_server, tmp_path):
    env = {**os.environ, "SEAMLESS_INTERACTION_CDN_URL": sample_server.cdn_url,
           "SEAMLESS_INTERACTION_HF_URL": sample_server.hf_url,
           "SEAMLESS_INTERACTION_ASSETS": sample_server.assets_url,
           "SEAMLESS_INTERACTION_CACHE": str(tmp_path / "cache")}

    def run(*args, check=True):
        proc = subprocess.run([sys.executable, "-m", "seamless_interaction", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    return run


def test_sample_prints_ids(run, sample_mirror):
    out = run("sample", "-n", "2", "--seed", "3", "--all-vendors").stdout.split()
    assert len(out) == 2 and set(out) <= set(sample_mirror.file_ids)


def test_download_pair_by_cdn_route(run, sample_mirror, tmp_path):
    key = sample_mirror.split_pairs[0][0].rsplit("_P", 1)[0]
    run("download", "--pair", key, "--local-dir", str(tmp_path / "d"), "-q")
    for fid in sample_mirror.split_pairs[0]:
        assert len(list((tmp_path / "d").rglob(f"{fid}.*"))) == 4


def test_download_archive_and_dry_run(run, sample_mirror, tmp_path):
    rec = sample_mirror.files[sample_mirror.split_pairs[0][0]]
    spec = f"{rec.label}/{rec.split}/{rec.batch}/{rec.archive}"
    dry = run("download", "--archive", spec, "--local-dir", str(tmp_path / "d"), "--dry-run").stdout
    size = (sample_mirror.root / "hub" / rec.archive_path).stat().st_size
    assert f"({size} bytes)" in dry and not (tmp_path / "d").exists()
    dry_ids = run("download", rec.file_id, "--local-dir", str(tmp_path / "d"), "--dry-run").stdout
    assert "CDN objects present" in dry_ids
    run("download", "--archive", spec, "--local-dir", str(tmp_path / "d"), "-q")
    folder = tmp_path / "d" / rec.label / rec.split / f"{rec.batch:04d}" / f"{rec.archive:04d}"
    assert (folder / f"{rec.file_id}.npz").exists()


def test_info_joins_metadata(run, sample_mirror):
    key = sample_mirror.pairs[0][0].rsplit("_P", 1)[0]
    doc = json.loads(run("info", key).stdout)
    assert sorted(doc["interaction"]["file_ids"]) == sorted(sample_mirror.pairs[0])
    doc = json.loads(run("info", sample_mirror.pairs[0][0]).stdout)
    assert doc["file"]["file_id"] == sample_mirror.pairs[0][0]


@pytest.mark.parametrize("args,code,needle", [
    (("download", "V00_S0001_I0000001_P0001"), 2, "malformed file id"),
    (("download", "V00_S9999_I00000001_P0001"), 2, "V00_S9999_I00000001_P0001"),
    (("download", "--archive", "improvised/dev/x/1"), 2, "not an integer"),
    (("download",), 2, "nothing to download"),
    (("info", "S0809"), 2, "malformed key"),
    (("download", "--archive", "naturalistic/test/0/0", "-q"), 1, "404"),
])
def test_bad_input_exits_nonzero_with_one_line_error(run, args, code, needle, tmp_path):
    proc = run(*args, "--local-dir", str(tmp_path / "d"), check=False) if args[0] != "info" else run(*args, check=False)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and needle in lines[-1]
    assert "Traceback" not in proc.stderr


def test_mirror_build_refuses_non_mirror_folder(run, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("x")
    proc = run("mirror", "build", str(tmp_path / "precious"), check=False)
    assert proc.returncode != 0 and (tmp_path / "precious" / "thesis.tex").exists()


def test_demo_runs_end_to_end(run, tmp_path):
    proc = run("demo", "--dir", str(tmp_path / "demo"), "--duration", "1")
    assert "OK: both routes produced identical" in proc.stdout


def test_member_downloads_fetch_only_requested_members(run, sample_mirror, tmp_path):
    rec = sample_mirror.files[sample_mirror.split_pairs[0][0]]
    spec = f"{rec.label}/{rec.split}/{rec.batch}/{rec.archive}"
    d = tmp_path / "d"
    dry = run("download", "--archive", spec, "--only", "npz,json", "--local-dir", str(d), "--dry-run").stdout
    assert "instead of" in dry and not list(d.rglob("*.npz"))
    run("download", "--archive", spec, "--only", "npz,json", "--local-dir", str(d), "-q")
    exts = {p.suffix for p in d.rglob("V*") if p.is_file()}
    assert exts == {".npz", ".json"}
    fid = sample_mirror.split_pairs[1][0]
    run("download", fid, "--from", "hub", "--only", "wav", "--local-dir", str(d), "-q")
    assert [p.suffix for p in d.rglob(f"{fid}.*")] == [".wav"]
    run("download", "--split", "improvised/dev", "--only", "json", "--local-dir", str(d / "split"), "-q")
    got = {p.name.split(".")[0] for p in (d / "split").rglob("*.json")}
    expected = {f for f, r in sample_mirror.files.items() if (r.label, r.split) == ("improvised", "dev")}
    assert got == expected
    proc = run("download", "--archive", spec, "--only", "avi", "--local-dir", str(d), check=False)
    assert proc.returncode == 2 and "--only" in proc.stderr


def test_verify_reports_and_repairs(run, sample_mirror, tmp_path):
    d = tmp_path / "d"
    pair = sample_mirror.split_pairs[0]
    run("download", *pair, "--local-dir", str(d), "-q")
    clean = run("verify", "--local-dir", str(d), "--json")
    assert clean.returncode == 0
    counts = json.loads(clean.stdout)["counts"]
    assert all(counts.get(k, 0) == 0 for k in ("missing", "corrupt", "size_mismatch", "temp_file"))
    npz = next(d.rglob(f"{pair[0]}.npz"))
    good = npz.read_bytes()
    npz.write_bytes(good[: len(good) // 2])
    bad = run("verify", "--local-dir", str(d), check=False)
    assert bad.returncode == 1 and pair[0] in bad.stdout
    run("verify", "--local-dir", str(d), "--repair", "-q")
    assert npz.read_bytes() == good
    proc = run("verify", "--local-dir", str(d), "--batch", "0", check=False)
    assert proc.returncode == 2 and "batch needs label and split" in proc.stderr


SNIPPET = """
from pathlib import Path
from seamless_interaction.fs import SeamlessInteractionFS, DatasetConfig
config = DatasetConfig(label="improvised", split="dev", preferred_vendors_only=True,
                       local_dir=Path.cwd() / "datasets/seamless_interaction", num_workers=None, seed=None)
fs = SeamlessInteractionFS(config=config)
file_ids = fs.sample_random_file_ids(num_samples=1)
fs.gather_file_id_data_from_s3(file_ids[0])
fs.download_batch_from_hf(batch_idx=0, archive_list=[0])
print(file_ids[0], len(fs.get_path_list_for_file_id_local(file_ids[0])))
"""


def test_official_snippet_against_mirror_serve_subprocess(sample_mirror, tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "seamless_interaction", "mirror", "serve",
                               str(sample_mirror.root), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SEAMLESS_INTERACTION_CDN_URL": f"{base}/seamless_interaction",
               "SEAMLESS_INTERACTION_HF_URL": f"{base}/datasets/facebook/seamless-interaction/resolve/main",
               "SEAMLESS_INTERACTION_ASSETS": f"{base}/assets", "SEAMLESS_INTERACTION_CACHE": str(tmp_path / "c")}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        proc = subprocess.run([sys.executable, "-c", SNIPPET], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        fid, n = proc.stdout.split()
        assert fid in sample_mirror.file_ids and n == "4"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_features_only_download_then_verify_is_clean(run, sample_mirror, tmp_path):
    rec = sample_mirror.files[sample_mirror.split_pairs[0][0]]
    d = tmp_path / "d"
    run("download", "--archive", f"{rec.label}/{rec.split}/{rec.batch}/{rec.archive}", "--only", "npz,json",
        "--local-dir", str(d), "-q")
    report = json.loads(run("verify", "--local-dir", str(d), "--json").stdout)
    assert report["ok"] and report["counts"]["missing"] == 0 and report["files_checked"] > 0
    repaired = run("verify", "--local-dir", str(d), "--repair", "-q")
    assert "repaired" not in repaired.stdout and not list(d.rglob("*.mp4")) and not list(d.rglob("*.wav"))
    npz = next(d.rglob("*.npz"))
    npz.write_bytes(b"junk")
    assert run("verify", "--local-dir", str(d), "--only", "json", check=False).returncode == 0
    assert run("verify", "--local-dir", str(d), "--only", "npz", check=False).returncode == 1


@pytest.mark.parametrize("case,needle", [("missing", "does not exist"), ("file", "is a file"),
                                         ("batch", "not in the catalog"), ("only", "--only")])
def test_verify_bad_scope_is_a_one_line_error(run, tmp_path, case, needle):
    target = tmp_path / "d"
    target.mkdir()
    extra: tuple[str, ...] = ()
    if case == "missing":
        target = tmp_path / "nowhere"
    elif case == "file":
        target = tmp_path / "f"
        target.write_text("x")
    elif case == "batch":
        extra = ("--label", "improvised", "--split", "dev", "--batch", "42")
    else:
        extra = ("--only", "avi")
    proc = run("verify", "--local-dir", str(target), *extra, check=False)
    assert proc.returncode != 0 and "no problems" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
# ---- small input errors: one `error:` line, non-zero exit, nothing fetched
def _one_error_line(proc, code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _archive_spec(mirror) -> str:
    rec = mirror.files[mirror.split_pairs[0][0]]
    return f"{rec.label}/{rec.split}/{rec.batch}/{rec.archive}"


@pytest.mark.parametrize("case", [
    "only_empty", "negative_archive", "negative_batch", "huge_archive", "from_cdn_archive", "from_cdn_only",
    "keep_tar_pair", "keep_tar_only", "local_dir_empty", "workers_zero",
])
def test_download_refuses_what_it_would_ignore(case, run, sample_mirror, tmp_path):
    spec = _archive_spec(sample_mirror)
    key = sample_mirror.split_pairs[0][0].rsplit("_P", 1)[0]
    d = str(tmp_path / "d")
    args, needle = {
        "only_empty": (("--archive", spec, "--only", ""), "--only ''"),
        "negative_archive": (("--archive", "improvised/dev/0/-1"), "in 0..9999"),
        "negative_batch": (("--batch", "improvised/dev/-1"), "in 0..9999"),
        "huge_archive": (("--archive", "improvised/dev/0/10000"), "0..9999"),
        "from_cdn_archive": (("--archive", spec, "--from", "cdn"), "--from cdn"),
        "from_cdn_only": ((sample_mirror.split_pairs[0][0], "--from", "cdn", "--only", "npz"), "--from cdn"),
        "keep_tar_pair": (("--pair", key, "--keep-tar"), "--keep-tar"),
        "keep_tar_only": (("--archive", spec, "--only", "npz", "--keep-tar"), "--keep-tar"),
        "local_dir_empty": (("--pair", key, "--local-dir", ""), "empty path"),
        "workers_zero": (("--pair", key, "--workers", "0"), "at least 1"),
    }[case]
    if "--local-dir" not in args:
        args = (*args, "--local-dir", d)
    _one_error_line(run("download", *args, check=False), 2, needle)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("args,needle", [
    (("sample", "-n", "-3"), "at least 1"),
    (("sample", "-n", "0"), "at least 1"),
    (("sample", "-n", "x"), "whole number"),
    (("sample", "-n", "100"), "only"),
    (("verify", "--label", "improvised", "--split", "dev", "--batch", "-1"), "0 to 9999"),
    (("mirror", "serve", ".", "--port", "70000"), "0-65535"),
    (("mirror", "serve", ".", "--port", "-1"), "0-65535"),
    (("app", "--port", "65536"), "0-65535"),
    (("app", "--local-dir", ""), "empty path"),
    (("demo", "--duration", "nan"), "seconds"),
])
def test_other_commands_refuse_bad_numbers_with_one_line(run, args, needle):
    _one_error_line(run(*args, check=False), 2, needle)


def test_sample_exactly_as_many_as_exist(run, sample_mirror):
    proc = run("sample", "-n", "100", "--all-vendors", check=False)
    n = int(proc.stderr.split("only ")[1].split()[0])
    assert 0 < n < 100
    assert len(run("sample", "-n", str(n), "--all-vendors").stdout.split()) == n


def test_mirror_serve_on_a_used_port_fails_before_saying_serving(run, sample_mirror):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run("mirror", "serve", str(sample_mirror.root), "--port", str(port), check=False)
    assert "serving" not in proc.stdout and "CDN:" not in proc.stdout
    _one_error_line(proc, 1, f"127.0.0.1:{port}")


def test_member_downloads_show_progress(run, sample_mirror, tmp_path):
    spec = _archive_spec(sample_mirror)
    proc = run("download", "--archive", spec, "--only", "npz,json", "--local-dir", str(tmp_path / "d"))
    assert "1 archive(s)" in proc.stderr and "B/s" in proc.stderr, proc.stderr
    fid = sample_mirror.split_pairs[1][0]
    proc = run("download", fid, "--from", "hub", "--only", "wav", "--local-dir", str(tmp_path / "d"))
    assert "1 archive(s)" in proc.stderr and "B/s" in proc.stderr, proc.stderr
    quiet = run("download", fid, "--from", "hub", "--only", "npz", "--local-dir", str(tmp_path / "d"), "-q")
    assert "B/s" not in quiet.stderr
