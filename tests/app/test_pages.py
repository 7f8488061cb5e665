"""Page logic with Streamlit's AppTest, against the loopback mirror (conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from seamless_interaction.app.launch import ENTRY_POINT
from seamless_interaction.app.local import scan_local_dir
from seamless_interaction.app.progress import format_bytes
from seamless_interaction.catalog.tables import Catalog

PAGES = {
    "views/welcome.py": "Seamless Interaction",
    "views/overview.py": "Overview",
    "views/download.py": "Download",
    "views/viewer.py": "Interaction viewer",
    "views/files.py": "File management",
}


def run_app(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
    at.query_params.update(query)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def by_label(widgets, label: str):
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r}; have {[w.label for w in widgets]}"
    return found[0]


def query(at: AppTest, name: str) -> str | None:
    value = at.query_params.get(name)
    return value[-1] if isinstance(value, list) else value


def catalog_of(setup) -> Catalog:
    return Catalog.load(setup.server.assets_url, setup.cache_dir)


def use_local_dir(monkeypatch: pytest.MonkeyPatch, path: Path) -> Path:
    monkeypatch.setenv("SEAMLESS_INTERACTION_LOCAL_DIR", str(path))
    return path


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders(app_env, page):
    at = run_app(page)
    assert_clean(at)
    assert PAGES[page] in at.title[0].value


def test_overview_counts_follow_the_filters(app_env):
    info = app_env.mirror
    at = run_app("views/overview.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Files"] == f"{len(info.file_ids):,}"
    assert metrics["Interactions"] == f"{len(info.interactions):,}"
    assert metrics["Complete pairs"] == f"{len(info.pairs):,}"
    by_label(at.multiselect, "Vendor").set_value(["V00"]).run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Files"] == f"{sum(1 for f in info.file_ids if f.startswith('V00')):,}"
    by_label(at.multiselect, "Require").set_value(["1P annotations"]).run()
    assert_clean(at)
    expected = sum(1 for f in info.file_ids if f.startswith("V00") and any(a.startswith("1P") for a in
                                                                        info.files[f].annotations))
    if expected:
        assert {m.label: m.value for m in at.metric}["Files"] == f"{expected:,}"
    else:
        assert at.warning and "No file matches" in at.warning[0].value


def test_viewer_opens_the_link_interaction_at_its_time(app_env):
    at = run_app("views/viewer.py", interaction=app_env.key, t="3.5")
    assert_clean(at)
    assert at.session_state["v_key"] == app_env.key
    html = at.get("iframe")[0].proto.srcdoc
    assert f'"key":"{app_env.key}"' in html and '"start":3.5' in html
    for fid in app_env.pair:
        assert fid in html
    assert query(at, "interaction") == app_env.key


def test_viewer_rejects_bad_links(app_env):
    at = run_app("views/viewer.py", interaction="V99_S0000_I00000000", t="soon")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "not in the catalog" in warnings and "not a number" in warnings


def test_viewer_navigation_lists_the_batch_and_random_picks_a_local_pair(app_env):
    cat = catalog_of(app_env)
    at = run_app("views/viewer.py")
    assert at.session_state["v_key"] == app_env.key  # the only interaction on disk
    by_label(at.checkbox, "Only interactions on disk (1)").uncheck().run()
    rec = cat.record(app_env.pair[0])
    by_label(at.selectbox, "Label").select(rec.label).run()
    by_label(at.selectbox, "Split").select(rec.split).run()
    by_label(at.selectbox, "Batch").select(rec.batch).run()
    options = by_label(at.selectbox, "Interaction").options
    expected = sorted({f[:19] for f in cat.file_ids(rec.label, rec.split, batch=rec.batch)})
    assert [o.split(" ")[0] for o in options] == expected
    other = next(k for k in expected if k != app_env.key)
    by_label(at.selectbox, "Interaction").select(other).run()
    assert_clean(at)
    assert at.session_state["v_key"] == other and query(at, "interaction") == other
    assert any("not (completely) on disk" in w.value for w in at.warning)
    # Random draws from what the filters leave: unticked "only on disk", the whole catalog.
    drawn = set()
    for _ in range(12):
        next(b for b in at.button if "Random" in b.label).click().run()
        drawn.add(at.session_state["v_key"])
    assert len(drawn) > 1 and drawn <= set(cat.interaction_keys())
    by_label(at.checkbox, "Only interactions on disk (1)").check().run()
    next(b for b in at.button if "Random" in b.label).click().run()
    assert at.session_state["v_key"] == app_env.key


def test_viewer_downloads_a_missing_pair(app_env, tmp_path, monkeypatch):
    root = use_local_dir(monkeypatch, tmp_path / "empty")
    info = app_env.mirror
    key = next(k for k in (p[0][:19] for p in info.pairs) if k != app_env.key)
    at = run_app("views/viewer.py", interaction=key)
    assert any("not (completely) on disk" in w.value for w in at.warning)
    next(b for b in at.button if b.label.startswith(f"Download {key}")).click().run()
    assert_clean(at)
    assert any("Downloaded pair" in s.value for s in at.success)
    assert scan_local_dir(root).complete_interactions() == {key}
    assert at.get("iframe"), "the player appears once the pair is on disk"


def test_download_page_shows_archive_size_then_downloads_it(app_env, tmp_path, monkeypatch):
    root = use_local_dir(monkeypatch, tmp_path / "data")
    info = app_env.mirror
    label, split, batch, archive = next(a for a in info.archives if a != info.missing_archive)
    at = run_app("views/download.py")
    by_label(at.selectbox, "Label").select(label).run()
    by_label(at.selectbox, "Split").select(split).run()
    by_label(at.selectbox, "Batch").select(batch).run()
    by_label(at.selectbox, "Archive").select(archive).run()
    tar = info.root / "hub" / label / split / f"{batch:04d}" / f"{archive:04d}.tar"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Archive size"] == format_bytes(tar.stat().st_size)
    assert metrics["File ids in it"] == str(len(info.archive_ids(label, split, batch, archive)))
    name = f"{label}/{split}/{batch:04d}/{archive:04d}.tar"
    next(b for b in at.button if b.label == f"Download {name}").click().run()
    assert_clean(at)
    assert any(s.value.startswith(f"Downloaded {name}") for s in at.success)
    assert scan_local_dir(root).complete_ids == set(info.archive_ids(label, split, batch, archive))
    files = run_app("views/files.py")
    assert {m.label: m.value for m in files.metric}["Complete"] == str(len(info.archive_ids(label, split, batch,
                                                                                               archive)))


def test_download_page_shows_errors(app_env, tmp_path, monkeypatch):
    use_local_dir(monkeypatch, tmp_path / "data")
    label, split, batch, archive = app_env.mirror.missing_archive
    at = run_app("views/download.py")
    by_label(at.selectbox, "Label").select(label).run()
    by_label(at.selectbox, "Split").select(split).run()
    by_label(at.selectbox, "Batch").select(batch).run()
    by_label(at.selectbox, "Archive").select(archive).run()
    assert not at.exception
    name = f"{label}/{split}/{batch:04d}/{archive:04d}.tar"
    # The typed error (MissingPartError, a TransferError) with the URL and the status, as the user sees it.
    assert any(name in e.value and "Error: HEAD http" in e.value and "404" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert next(b for b in at.button if b.label == f"Download {name}").disabled


def test_download_page_cdn_single_file(app_env, tmp_path, monkeypatch):
    root = use_local_dir(monkeypatch, tmp_path / "data")
    fid = app_env.mirror.movement[0]
    rec = app_env.mirror.files[fid]
    at = run_app("views/download.py")
    at.selectbox(key="cdn_label").select(rec.label).run()
    at.selectbox(key="cdn_split").select(rec.split).run()
    at.radio(key="cdn_mode").set_value("Single file").run()
    at.selectbox(key="cdn_file").select(fid).run()
    at.button(key="cdn_go").click().run()
    assert_clean(at)
    assert any(s.value.startswith(f"Downloaded {fid}") for s in at.success)
    assert scan_local_dir(root).complete_ids == {fid}


def test_files_page_lists_and_deletes(app_env, tmp_path, monkeypatch):
    root = use_local_dir(monkeypatch, tmp_path / "data")
    shutil.copytree(app_env.local_dir, root)
    at = run_app("views/files.py")
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Complete pairs"] == "1"
    table = at.dataframe[0].value
    assert sorted(table["file_id"]) == sorted(app_env.pair)
    assert set(table["status"]) == {"complete"}
    victim = app_env.pair[0]
    at.multiselect(key="files_delete").set_value([victim]).run()
    assert next(b for b in at.button if b.label == "Delete").disabled  # not confirmed yet
    at.checkbox(key="files_sure").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert_clean(at)
    assert any("Deleted 4 file(s) of 1 file id(s)" in s.value for s in at.success)
    assert scan_local_dir(root).file_ids == {app_env.pair[1]}
    assert sorted(at.dataframe[0].value["file_id"]) == [app_env.pair[1]]


def test_viewer_handles_dirty_pairs(app_env, tmp_path, monkeypatch):
    """A placeholder bundle (empty media), a missing transcript and a vendor without movement features."""
    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.fs import SeamlessInteractionFS

    info = app_env.mirror
    root = use_local_dir(monkeypatch, tmp_path / "data")
    dirty = {info.placeholder[0][:19], info.no_transcript[0][:19]}
    dirty.add(next(p[0][:19] for p in info.pairs if p[0] not in info.movement))
    cfg = DatasetConfig(local_dir=root, cdn_url=app_env.server.cdn_url, hf_url=app_env.server.hf_url,
                        assets=app_env.server.assets_url, cache_dir=app_env.cache_dir)
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        for key in sorted(dirty):
            fs.download_batch_from_s3(fs.get_interaction_pairs(interaction_keys=[key])[0])
    for key in sorted(dirty):
        at = run_app("views/viewer.py", interaction=key)
        assert_clean(at)
        html = at.get("iframe")[0].proto.srcdoc
        assert f'"key":"{key}"' in html
        notes = " ".join(c.value for c in at.caption)
        if key == info.no_transcript[0][:19]:
            assert '"words":[]' in html
        if not any(f.startswith(key) and f in info.movement for f in info.file_ids):
            assert "no movement features" in notes


def test_viewer_filters_narrow_the_table_and_random_and_a_row_opens(app_env):
    from seamless_interaction.app.finder import interaction_frame

    cat = catalog_of(app_env)
    frame = interaction_frame(cat)
    at = run_app("views/viewer.py")
    by_label(at.checkbox, "Only interactions on disk (1)").uncheck().run()
    table = next(d for d in at.dataframe if "interaction_key" in d.value.columns)
    assert len(table.value) == len(frame)
    rel = frame["relationship_detail"].value_counts().index[-1]  # the rarest relationship
    at.multiselect(key="f_rel").set_value([rel]).run()
    assert_clean(at)
    table = next(d for d in at.dataframe if "interaction_key" in d.value.columns)
    expected = sorted(frame.loc[frame["relationship_detail"] == rel, "interaction_key"])
    assert sorted(table.value["interaction_key"]) == expected and len(expected) < len(frame)
    at.checkbox(key="f_mov").check().run()
    table = next(d for d in at.dataframe if "interaction_key" in d.value.columns)
    assert set(table.value["interaction_key"]) <= set(expected)
    at.checkbox(key="f_mov").uncheck().run()
    for _ in range(6):
        next(b for b in at.button if "Random" in b.label).click().run()
        assert at.session_state["v_key"] in expected
    trait_rows = frame.dropna(subset=["openness_min"])
    at.multiselect(key="f_rel").set_value([]).run()
    at.selectbox(key="f_trait").select("openness").run()
    at.slider(key="f_trait_range").set_value((4.0, 5.0)).run()
    table = next(d for d in at.dataframe if "interaction_key" in d.value.columns)
    want = trait_rows[((trait_rows["openness_min"] >= 4) & (trait_rows["openness_min"] <= 5))
                      | ((trait_rows["openness_max"] >= 4) & (trait_rows["openness_max"] <= 5))]
    assert sorted(table.value["interaction_key"]) == sorted(want["interaction_key"])


def test_download_session_with_one_interaction_has_no_slider(app_env, tmp_path, monkeypatch):
    use_local_dir(monkeypatch, tmp_path / "data")
    cat = catalog_of(app_env)
    label, split = next((lab, spl) for lab, spl in cat.labels_splits()
                        if any(len(cat.session_interactions(k)) == 1 for k in cat.session_keys(lab, spl)))
    one = next(k for k in cat.session_keys(label, split) if len(cat.session_interactions(k)) == 1)
    at = run_app("views/download.py")
    at.selectbox(key="cdn_label").select(label).run()
    at.selectbox(key="cdn_split").select(split).run()
    at.radio(key="cdn_mode").set_value("Session").run()
    at.selectbox(key="cdn_session").select(one).run()
    assert_clean(at)
    assert not at.slider
    assert at.button(key="cdn_go").disabled is False


def test_download_results_stay_on_their_page_and_complete_archives_are_not_offered(app_env, tmp_path, monkeypatch):
    root = use_local_dir(monkeypatch, tmp_path / "data")
    info = app_env.mirror
    fid = info.movement[0]
    rec = info.files[fid]
    at = run_app("views/download.py")
    at.selectbox(key="cdn_label").select(rec.label).run()
    at.selectbox(key="cdn_split").select(rec.split).run()
    at.radio(key="cdn_mode").set_value("Single file").run()
    at.selectbox(key="cdn_file").select(fid).run()
    assert at.button(key="cdn_go").proto.type == "primary"
    at.button(key="cdn_go").click().run()
    assert any(s.value.startswith(f"Downloaded {fid}") for s in at.success)
    assert any("Already complete on disk" in s.value for s in at.success)
    assert at.button(key="cdn_go").proto.type == "secondary"
    at.switch_page("views/viewer.py").run()
    assert not any("Downloaded" in s.value for s in at.success)
    at.switch_page("views/download.py").run()
    assert not any("Downloaded" in s.value for s in at.success)
    # An archive whose every id is on disk: no red button.
    label, split, batch, archive = next(a for a in info.archives if a != info.missing_archive)
    ids = info.archive_ids(label, split, batch, archive)
    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.fs import SeamlessInteractionFS

    cfg = DatasetConfig(local_dir=root, cdn_url=app_env.server.cdn_url, hf_url=app_env.server.hf_url,
                        assets=app_env.server.assets_url, cache_dir=app_env.cache_dir)
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        fs.download_batch_from_s3(ids)
    at = run_app("views/download.py")
    by_label(at.selectbox, "Label").select(label).run()
    by_label(at.selectbox, "Split").select(split).run()
    by_label(at.selectbox, "Batch").select(batch).run()
    by_label(at.selectbox, "Archive").select(archive).run()
    name = f"{label}/{split}/{batch:04d}/{archive:04d}.tar"
    button = at.button(key="hub_go")
    assert button.label == f"Download {name} again" and button.proto.type == "secondary"


def test_files_page_delete_resets_the_selection_and_confirmation(app_env, tmp_path, monkeypatch):
    root = use_local_dir(monkeypatch, tmp_path / "data")
    shutil.copytree(app_env.local_dir, root)
    at = run_app("views/files.py")
    at.multiselect(key="files_delete").set_value([app_env.pair[0]]).run()
    at.checkbox(key="files_sure").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert_clean(at)
    assert at.multiselect(key="files_delete").value == []
    assert at.checkbox(key="files_sure").value is False
    assert next(b for b in at.button if b.label == "Delete").disabled


def test_viewer_exports_clip_elan_and_textgrid_with_the_export_writers(app_env, tmp_path):
    from seamless_interaction.base.formats import read_wav_info

    at = run_app("views/viewer.py", interaction=app_env.key)
    out = tmp_path / "exports"
    at.text_input(key="x_out").set_value(str(out)).run()
    at.checkbox(key="x_clip").check().run()
    at.slider(key="x_range").set_value((2.0, 5.0)).run()
    at.button(key="x_go").click().run()
    assert_clean(at)
    eafs = sorted((out / "elan").rglob("*.eaf"))
    grids = sorted((out / "textgrid").rglob("*.TextGrid"))
    wavs = sorted((out / "clip").rglob("*.wav"))
    assert len(eafs) == 1 and len(grids) == 1 and len(wavs) == 2
    assert all(app_env.key in p.name or app_env.key in str(p) for p in eafs + grids)
    for wav in wavs:
        info = read_wav_info(wav.read_bytes()[:4096])
        assert abs(info.duration_s - 3.0) < 0.05, (wav, info.duration_s)
    assert len(sorted((out / "clip").rglob("*.mp4"))) == 2
    assert any(b.label.endswith(".eaf") for b in at.get("download_button"))


def test_overview_and_finder_use_the_conversation_index_when_built(app_env, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.fs import SeamlessInteractionFS

    cache = tmp_path / "cache"
    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(cache))
    at = run_app("views/overview.py")
    assert {m.label: m.value for m in at.metric}["Hours"] == "n/a"  # no index yet
    cfg = DatasetConfig(local_dir=app_env.local_dir, cdn_url=app_env.server.cdn_url, hf_url=app_env.server.hf_url,
                        assets=app_env.server.assets_url, cache_dir=cache)
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        fs.build_index()
        folder = fs.index_folder
    files = pq.read_table(folder / "file_stats.parquet").to_pandas()
    inter = pq.read_table(folder / "interaction_stats.parquet").to_pandas()
    at = run_app("views/overview.py")
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Hours"] == f"{files['duration_s'].sum() / 3600:,.1f}"
    assert any("indexed interactions" in c.value for c in at.caption)
    # The viewer's finder gains the index's measures, and the viewer's own turn-taking numbers for the
    # pair on disk are the index's (one implementation, base/conversation.py).
    at = run_app("views/viewer.py", interaction=app_env.key)
    assert_clean(at)
    table = next(d for d in at.dataframe if "interaction_key" in d.value.columns).value
    assert "n_turns" in table.columns
    row = inter.set_index("interaction_key").loc[app_env.key]
    assert {m.label: m.value for m in at.metric}["Turns"] == str(int(row["n_turns"]))
    lo, hi = float(inter["duration_s"].min()), float(inter["duration_s"].max())
    if hi > lo:
        at.slider(key="f_duration_s").set_value((hi - 0.001, hi)).run()
        table = next(d for d in at.dataframe if "interaction_key" in d.value.columns).value
        assert set(table["interaction_key"]) == set(inter.loc[inter["duration_s"] >= hi - 0.001, "interaction_key"])
