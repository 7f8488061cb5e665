"""Download page: Hub archives (Label -> Split -> Batch -> Archive, size first) and CDN files, pairs, sessions.

Downloads run through :func:`seamless_interaction.app.ui.run_download`: a live progress bar (bytes, rate,
time left) and errors shown with their type, message and traceback, never swallowed.
"""

from __future__ import annotations

import time

import streamlit as st

from seamless_interaction.app import data, ui
from seamless_interaction.app.local import disk_free_bytes
from seamless_interaction.app.progress import format_bytes
from seamless_interaction.base.ids import ArchiveRef

PAGE = "download"
OPTION_LIMIT = 500  # options shown in one select box; the filter box narrows bigger lists


def _pick(label: str, options: list[str], key: str) -> str | None:
    """A select box over ``options`` with a substring filter in front for long lists."""
    if len(options) > OPTION_LIMIT:
        needle = st.text_input(f"Filter {label.lower()}s", key=f"{key}_filter",
                               placeholder="part of the id, e.g. S0809")
        shown = [o for o in options if needle.strip() in o][:OPTION_LIMIT]
        st.caption(f"{len(options):,} in all; showing {len(shown)}")
    else:
        shown = options
    return st.selectbox(label, shown, key=key, index=0 if shown else None)


st.title(":material/download: Download")
cat = data.require_catalog()
cfg = data.config()
root = data.local_dir()
free = disk_free_bytes(root)
st.info(f"Files are saved under `{root}` (change the folder in the sidebar)"
        + (f" · {format_bytes(free)} free" if free is not None else ""), icon=":material/folder:")
ui.show_result(PAGE)

pairs = cat.labels_splits()
labels = sorted({lab for lab, _ in pairs})

# Keyed, so that the rerun after a download comes back to the tab it was started from.
hub_tab, cdn_tab = st.tabs([":material/inventory_2: Archives (Hugging Face Hub)",
                            ":material/person_search: Files, pairs and sessions (CDN)"],
                           key="dl_tab", on_change="rerun")

with hub_tab:
    st.caption("Whole WebDataset archives (~1 GB and a few hundred files each in the full release), "
               "extracted into `label/split/batch/archive/`.")
    c = st.columns(4)
    label = c[0].selectbox("Label", labels, key="hub_label")
    splits = sorted({s for lab, s in pairs if lab == label})
    split = c[1].selectbox("Split", splits, key="hub_split")
    batches: list[int] = cat.batches(label, split) if label and split else []
    batch = c[2].selectbox("Batch", batches, key="hub_batch", format_func=lambda b: f"{b:04d}")
    archives: list[int] = cat.archives(label, split, batch) if batch is not None else []
    archive = c[3].selectbox("Archive", archives, key="hub_archive", format_func=lambda a: f"{a:04d}")
    if archive is not None:
        name = f"{ArchiveRef(label, split, batch, archive)}.tar"
        in_archive = cat.archive_file_ids(label, split, batch, archive)
        size = None
        try:
            size = data.archive_size(str(cfg.hf_url), label, split, batch, archive)
        except Exception as exc:
            st.error(f"Size of {name} unknown: {type(exc).__name__}: {exc}", icon=":material/error:")
        local = data.inventory().complete_ids
        m = st.columns(3)
        m[0].metric("Archive size", format_bytes(size) if size is not None else "unknown")
        m[1].metric("File ids in it", len(in_archive))
        m[2].metric("Already on disk", sum(1 for f in in_archive if f in local))
        with st.expander(f"File ids in {name}"):
            st.dataframe({"file_id": in_archive, "on disk": ["yes" if f in local else "" for f in in_archive]},
                         hide_index=True, width="stretch")
        extract = st.checkbox("Extract after download (and delete the .tar)", value=True, key="hub_extract")
        on_disk = bool(in_archive) and all(f in local for f in in_archive)
        if on_disk:
            st.success(f"Every file id of {name} is already complete on disk.", icon=":material/task_alt:")
        if st.button(f"Download {name} again" if on_disk else f"Download {name}", key="hub_go",
                     type="secondary" if on_disk else "primary", disabled=size is None):
            ui.run_download(name, lambda fs, rec: fs.download_archive_from_hf(
                archive, label=label, split=split, batch=batch, extract=extract)[1], page=PAGE)
            st.rerun()

with cdn_tab:
    st.caption("Single participants, interaction pairs or whole sessions, fetched part by part from the "
               "CDN and assembled into the same `.wav/.mp4/.npz/.json` bundles as the archives hold.")
    cols = st.columns([1, 1, 2])
    label_c = cols[0].selectbox("Label", labels, key="cdn_label")
    split_c = cols[1].selectbox("Split", sorted({s for lab, s in pairs if lab == label_c}), key="cdn_split")
    mode = cols[2].radio("What", ["Interaction pair", "Single file", "Session", "Random pair"], horizontal=True,
                      key="cdn_mode")
    ids: list[str] = []
    what = ""
    if mode == "Interaction pair":
        key = _pick("Interaction", cat.interaction_keys(label_c, split_c, complete_pairs_only=True), "cdn_pair")
        if key:
            ids, what = cat.interaction_file_ids(key), f"pair {key}"
    elif mode == "Single file":
        fid = _pick("File id", cat.file_ids(label_c, split_c), "cdn_file")
        if fid:
            ids, what = [fid], fid
    elif mode == "Session":
        skey = _pick("Session", cat.session_keys(label_c, split_c), "cdn_session")
        if skey:
            inter = cat.session_interactions(skey)
            if len(inter) > 1:
                n = st.slider("Interactions of the session", 1, len(inter), min(4, len(inter)), key="cdn_n")
            else:  # a slider needs min < max
                n = len(inter)
                st.caption(f"This session has {len(inter)} interaction.")
            ids = [f for k in inter[:n] for f in cat.interaction_file_ids(k)]
            what = f"session {skey} ({n} interaction(s))"
    else:
        st.caption("Draws one complete pair of the chosen label and split at random.")
    on_disk = False
    if ids:
        local = data.inventory().complete_ids
        on_disk = all(f in local for f in ids)
        st.write(f"{len(ids)} file id(s): " + ", ".join(f"`{f}`" + (" (on disk)" if f in local else "") for f in ids))
        if on_disk:
            st.success("Already complete on disk.", icon=":material/task_alt:")
    go = st.button("Download a random pair" if mode == "Random pair" else ("Check again" if on_disk else "Download"),
                   type="secondary" if on_disk else "primary", key="cdn_go", disabled=not ids and mode != "Random pair")
    if go:
        if mode == "Random pair":
            with data.make_fs() as fs0:
                drawn = fs0.get_interaction_pairs(num_pairs=1, label=label_c, split=split_c,
                                                  preferred_vendors_only=False, seed=time.time_ns())
            if not drawn:
                st.error(f"No complete pair in {label_c}/{split_c}.", icon=":material/error:")
                st.stop()
            ids, what = drawn[0], f"random pair {drawn[0][0][:19]}"
        ui.run_download(what, ui.gather_job(ids), units=len(ids), page=PAGE)
        st.rerun()
