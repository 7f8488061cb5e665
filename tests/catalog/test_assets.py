"""Metadata table sources: local folders and http(s) URLs served by a real loopback server."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seamless_interaction.catalog.assets import load_tables, source_cache_dir
from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.constants import ASSET_TABLES
from seamless_interaction.base.errors import CatalogError

TABLES = {
    "filelist.csv": (
        "file_id,label,split,batch_idx,archive_idx,has_imitator_movement,has_annotation_1p,has_annotation_3p\n"
        "V00_S0809_I00000309_P0947,improvised,dev,0,0,1,0,0\n"
        "V00_S0809_I00000309_P0383,improvised,dev,0,40,1,0,0\n"
        "V03_S0809_I00000309_P0947A,naturalistic,test,2,7,0,1,1\n"
    ),
    "interactions.csv": (
        ",prompt_hash,prompt_id_unique,participant_a_prompt_text,participant_b_prompt_text,ipc_a,ipc_b,"
        "interaction_type\n0,00000309,P0309_x,\"Line one\nline two\",\"b text\",APCP,,ipc_conversation\n"
    ),
    "participants.csv": (
        "extraversion_raw,agreeableness_raw,conscientiousness_raw,neuroticism_raw,openness_raw,vendor_id,"
        "participant_id\n4.5,4.0,3.0,2.0,1.0,00,0947\nUndisclosed,Undisclosed,Undisclosed,Undisclosed,Undisclosed,"
        "03,0947A\n"
    ),
    "relationships.csv": "vendor_id,session_id,relationship,relationship_detail\nV00,0809,familiar,friends\n",
}


class _Server:
    """A threaded HTTP server over a folder that counts requests and can fail chosen paths."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str, dict]] = []
        self.status: dict[str, int] = {}  # path -> forced status
        self.truncate: set[str] = set()  # paths whose body is cut short
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                server.requests.append(("GET", self.path, dict(self.headers)))
                if self.path.startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/redirect"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = server.status.get(self.path)
                target = server.root / self.path.lstrip("/")
                if status is None and not target.is_file():
                    status = 404
                if status is not None:
                    body = b"nope"
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                body = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "served" / "assets"
    root.mkdir(parents=True)
    for name, text in TABLES.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def server(folder):
    srv = _Server(folder.parent)
    yield srv
    srv.close()


def test_local_folder_is_read_in_place(folder, tmp_path):
    paths = load_tables(str(folder), tmp_path / "cache")
    assert paths == {name: folder / name for name in ASSET_TABLES}
    assert not (tmp_path / "cache").exists()


def test_local_folder_missing_filelist_or_folder(folder, tmp_path, caplog):
    (folder / "relationships.csv").unlink()
    with caplog.at_level(logging.WARNING):
        paths = load_tables(str(folder), tmp_path)
    assert "relationships.csv" not in paths and "relationships.csv" in caplog.text
    (folder / "filelist.csv").unlink()
    with pytest.raises(CatalogError, match="filelist.csv"):
        load_tables(str(folder), tmp_path)
    with pytest.raises(CatalogError, match="nowhere"):
        load_tables(str(tmp_path / "nowhere"), tmp_path)


def test_url_source_downloads_once_then_serves_from_cache(server, tmp_path):
    base = server.url + "/assets"
    paths = load_tables(base, tmp_path / "cache", headers={"Authorization": "Bearer t0k"})
    assert {n: p.read_text() for n, p in paths.items()} == TABLES
    assert sorted(r[1] for r in server.requests) == sorted(f"/assets/{n}" for n in ASSET_TABLES)
    assert all(r[2].get("Authorization") == "Bearer t0k" for r in server.requests)
    assert all(p.parent == source_cache_dir(base, tmp_path / "cache") for p in paths.values())
    assert not list(paths["filelist.csv"].parent.glob("*.part"))

    server.requests.clear()
    again = load_tables(base, tmp_path / "cache")
    assert again == paths and server.requests == []


def test_refresh_refetches(server, folder, tmp_path):
    base = server.url + "/assets"
    load_tables(base, tmp_path)
    changed = TABLES["filelist.csv"] + "V01_S0001_I00000001_P0001,improvised,dev,1,0,0,0,0\n"
    (folder / "filelist.csv").write_text(changed)
    assert load_tables(base, tmp_path)["filelist.csv"].read_text() == TABLES["filelist.csv"]
    server.requests.clear()
    assert load_tables(base, tmp_path, refresh=True)["filelist.csv"].read_text() == changed
    assert len(server.requests) == len(ASSET_TABLES)


def test_mirrors_do_not_share_a_cache_folder(server, tmp_path):
    a = load_tables(server.url + "/assets", tmp_path)
    b = load_tables(server.url + "/redirect/assets", tmp_path)  # redirects are followed
    assert a["filelist.csv"].parent != b["filelist.csv"].parent
    assert a["filelist.csv"].read_bytes() == b["filelist.csv"].read_bytes()


def test_missing_filelist_raises_naming_url_and_status(server, tmp_path):
    server.status["/assets/filelist.csv"] = 404
    with pytest.raises(CatalogError) as err:
        load_tables(server.url + "/assets", tmp_path / "cache")
    assert f"{server.url}/assets/filelist.csv" in str(err.value) and "404" in str(err.value)
    assert not list((tmp_path / "cache").rglob("filelist.csv*"))


def test_optional_table_absent_is_remembered(server, tmp_path, caplog):
    server.status["/assets/participants.csv"] = 403
    with caplog.at_level(logging.WARNING):
        paths = load_tables(server.url + "/assets", tmp_path)
    assert "participants.csv" not in paths and "403" in caplog.text
    server.requests.clear()
    assert load_tables(server.url + "/assets", tmp_path) == paths
    assert server.requests == []  # offline after the first load, even with a table missing
    del server.status["/assets/participants.csv"]
    assert "participants.csv" in load_tables(server.url + "/assets", tmp_path, refresh=True)


@pytest.mark.parametrize("path", ["/assets/relationships.csv", "/assets/filelist.csv"])
def test_server_error_raises_and_writes_nothing(server, tmp_path, path):
    server.status[path] = 503
    with pytest.raises(CatalogError, match="503"):
        load_tables(server.url + "/assets", tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob(Path(path).name))


def test_truncated_body_never_reaches_the_final_path(server, tmp_path):
    server.truncate.add("/assets/filelist.csv")
    with pytest.raises(CatalogError, match="filelist.csv"):
        load_tables(server.url + "/assets", tmp_path / "cache")
    cache = tmp_path / "cache"
    assert not list(cache.rglob("filelist.csv")) and not list(cache.rglob("*.part"))


def test_unreachable_server_raises_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="127.0.0.1:9"):
        load_tables("http://127.0.0.1:9/assets", tmp_path, timeout_s=5)


def test_catalog_load_over_http_then_offline(server, tmp_path):
    base = server.url + "/assets"
    cat = Catalog.load(base, tmp_path)
    assert cat.source == base and len(cat) == 3
    assert cat.record("V03_S0809_I00000309_P0947A").archive == 7
    server.close()  # the second load must need no server at all
    warm = Catalog.load(base, tmp_path)
    meta = warm.interaction_metadata("V00_S0809_I00000309")
    assert meta["participant_a_prompt_text"] == "Line one\nline two" and meta["ipc_b"] is None
    assert meta["relationship"]["relationship_detail"] == "friends"
    assert [p["traits"]["extraversion_raw"] if p["traits"] else None for p in meta["participants"]] == [None, 4.5]
    assert warm.participant("V03", "P0947A")["openness_raw"] is None
    assert list(source_cache_dir(base, tmp_path).glob("filelist.*.arrow"))
