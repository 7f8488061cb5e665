"""Every public entry point that fetches, writes or verifies checks its arguments before any request or write,
and nothing is written outside ``local_dir``: run against a server that answers 200 (with a valid tar) to every
path, so an unchecked ``split='../../x'`` would be downloaded and land outside. (Catalog queries take any
label or split, as the official ones did, and match nothing for an unknown one: see tests/test_compat*.)"""

from __future__ import annotations

import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seamless_interaction.base.errors import InvalidIdError, SeamlessError, UnknownIdError
from seamless_interaction.catalog.tables import Catalog, FileRecord
from seamless_interaction.fs import DatasetConfig, SeamlessInteractionFS


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ext in ("json", "npz"):
            data = b'{"id": "V00_S0001_I00000001_P0001"}' if ext == "json" else b"x" * 100
            info = tarfile.TarInfo(f"V00_S0001_I00000001_P0001.{ext}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _YesServer:
    """Answers 200 with the same tar to any path (Range honoured), and logs the paths asked for."""

    def __init__(self) -> None:
        body = _tar_bytes()
        self.paths: list[str] = []
        log = self.paths

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, send_body: bool) -> None:
                log.append(self.path)
                data, status = body, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start, end = int(a), (int(b) if b else len(body) - 1)
                    data, status = body[start:end + 1], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", '"same"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{len(body)}")
                self.end_headers()
                if send_body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _YesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def yes():
    with _YesServer() as srv:
        yield srv


@pytest.fixture
def fs(yes, sample_mirror, tmp_path):
    """A facade whose endpoints all answer 200; the catalog is the sample's, already loaded."""
    catalog = Catalog.from_paths({p.name: p for p in sample_mirror.assets_dir.glob("*.csv")},
                                 cache_dir=tmp_path / "catcache")
    local = tmp_path / "a" / "data"
    local.mkdir(parents=True)
    cfg = DatasetConfig(local_dir=local, cdn_url=yes.url + "/cdn", hf_url=yes.url + "/hf",
                        assets=yes.url + "/assets", cache_dir=tmp_path / "a" / "cache")
    with SeamlessInteractionFS(cfg, catalog=catalog, quiet=True) as f:
        yield f


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


ESCAPE = "../../x"
CALLS = {
    "download_archive_from_hf split": lambda fs: fs.download_archive_from_hf(0, label="improvised", split=ESCAPE),
    "download_archive_from_hf label": lambda fs: fs.download_archive_from_hf(0, label="../x", split="dev"),
    "download_archive_from_hf batch": lambda fs: fs.download_archive_from_hf(0, batch=-1),
    "download_archive_from_hf archive": lambda fs: fs.download_archive_from_hf("0/../../..", batch=0),
    "download_batch_from_hf split": lambda fs: fs.download_batch_from_hf(split=ESCAPE, batch_idx=0, archive_list=[0]),
    "download_batch_from_hf archives": lambda fs: fs.download_batch_from_hf(batch_idx=0, archive_list=[0, 10000]),
    "fetch_members split": lambda fs: fs.fetch_members("improvised", ESCAPE, 0, 0),
    "fetch_members batch": lambda fs: fs.fetch_members("improvised", "dev", -3, 0),
    "fetch_members modality": lambda fs: fs.fetch_members("improvised", "dev", 0, 0, modalities=("exe",)),
    "fetch_members file id": lambda fs: fs.fetch_members("improvised", "dev", 0, 0, file_ids=["../../x"]),
    "fetch_file_id": lambda fs: fs.fetch_file_id("../../V00_S0001_I00000001_P0001"),
    "fetch_file_id modality": lambda fs: fs.fetch_file_id("V00_S0001_I00000001_P0001", modalities=()),
    "fetch_interaction": lambda fs: fs.fetch_interaction("V00_S0001_I0000001/.."),
    "fetch_members_for archives": lambda fs: fs.fetch_members_for(archives=[("improvised", ESCAPE, 0, 0)]),
    "fetch_members_for splits": lambda fs: fs.fetch_members_for(splits=[("improvised", ESCAPE)]),
    "plan_members": lambda fs: fs.plan_members(archives=[("improvised", "dev", 0, -1)]),
    "gather_file_id_data_from_s3": lambda fs: fs.gather_file_id_data_from_s3("../../x"),
    "download_batch_from_s3": lambda fs: fs.download_batch_from_s3(["V00_S0001_I00000001_P0001", "../x"]),
    "get_tar_archive_size": lambda fs: fs.get_tar_archive_size("improvised", ESCAPE, 0, 0),
    "verify split": lambda fs: fs.verify(label="improvised", split=ESCAPE),
    "verify batch": lambda fs: fs.verify(label="improvised", split="dev", batch=-1),
    "verify only": lambda fs: fs.verify(only=("exe",)),
    "open_participant": lambda fs: fs.open_participant("../../x"),
    "open_interaction": lambda fs: fs.open_interaction("../../x"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_arguments_fail_before_any_request_or_write(name, fs, yes, tmp_path):
    before = _files(tmp_path)
    with pytest.raises(InvalidIdError) as err:
        CALLS[name](fs)
    assert isinstance(err.value, (SeamlessError, ValueError))
    assert yes.paths == [], f"{name} sent requests before checking its arguments"
    assert _files(tmp_path) == before, f"{name} wrote files"


def test_escaping_split_against_a_200_server_writes_nothing_outside_and_names_the_split(fs, yes, tmp_path):
    with pytest.raises(InvalidIdError, match=r"split '\.\./\.\./x' is not one of"):
        fs.download_archive_from_hf(0, label="improvised", split=ESCAPE, batch=0, extract=False)
    outside = {p for p in _files(tmp_path) if fs.local_dir not in p.parents and "catcache" not in p.parts}
    assert outside == set() and yes.paths == []


def test_the_same_archive_with_good_arguments_is_fetched_into_local_dir(fs, yes, tmp_path):
    """Control: the server does answer, so the refusals above are the checks, not a dead endpoint."""
    ok, path = fs.download_archive_from_hf(0, label="improvised", split="dev", batch=0, extract=False)
    assert ok and Path(path) == fs.local_dir / "improvised/dev/0000/0000.tar" and Path(path).is_file()
    assert yes.paths


def test_catalog_row_with_an_escaping_split_is_refused_before_writing(sample_mirror, yes, tmp_path):
    """The catalog comes from the network too: a filelist row naming split '../../x' cannot steer a write.
    The catalog drops the row at load; a record made by hand is refused by the layout."""
    assets = tmp_path / "assets"
    assets.mkdir()
    for p in sample_mirror.assets_dir.glob("*.csv"):
        (assets / p.name).write_bytes(p.read_bytes())
    fl = assets / "filelist.csv"
    lines = fl.read_text().splitlines()
    victim = lines[1].split(",")[0]
    lines[1] = lines[1].replace(",dev,", ",../../x,", 1).replace(",test,", ",../../x,", 1)
    fl.write_text("\n".join(lines) + "\n")
    local = tmp_path / "a" / "data"
    cfg = DatasetConfig(local_dir=local, cdn_url=yes.url + "/cdn", hf_url=yes.url + "/hf",
                        assets=str(assets), cache_dir=tmp_path / "cache")
    with SeamlessInteractionFS(cfg, quiet=True) as f:
        before = _files(tmp_path)
        assert victim not in f.catalog
        with pytest.raises(UnknownIdError):
            f.gather_file_id(victim)
        with pytest.raises(UnknownIdError):
            f.fetch_file_id(victim)
        assert _files(tmp_path) == before and yes.paths == []
    rec = FileRecord(victim, "improvised", "../../x", 0, 0, None, None, None)
    with pytest.raises(InvalidIdError, match="split"):
        _ = rec.ref  # the property validates the split


def test_routes_check_their_arguments_before_any_request(yes, transfer, tmp_path):
    from seamless_interaction.routes import hub, members

    local = tmp_path / "data"
    calls = [
        lambda: hub.download_archive(transfer, yes.url, local, "improvised", ESCAPE, 0, 0),
        lambda: hub.archive_size(transfer, yes.url, "improvised", "dev", -1, 0),
        lambda: members.fetch_archive_members(transfer, None, yes.url, local, "improvised", ESCAPE, 0, 0),
        lambda: members.fetch_archive_members(transfer, None, yes.url, local, "improvised", "dev", 0, 0,
                                              modalities=("npz", "../x")),
        lambda: members.plan_bytes(transfer, None, yes.url, archives=[("improvised", "dev", 0, "x")]),
    ]
    for call in calls:
        with pytest.raises(InvalidIdError):
            call()
    assert yes.paths == [] and not local.exists()
