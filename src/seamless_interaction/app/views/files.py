"""File management: what is on disk, sizes, completeness per file id, previews, and deletion."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seamless_interaction.app import data
from seamless_interaction.app.local import delete_bundles, disk_free_bytes
from seamless_interaction.app.progress import format_bytes
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local.manifest import Manifest

DELETED_KEY = "files_deleted"

st.title(":material/folder_open: File management")
root = data.local_dir()
inv = data.inventory()
free = disk_free_bytes(root)

if DELETED_KEY in st.session_state:
    kind, message = st.session_state.pop(DELETED_KEY)
    if kind == "ok":
        st.success(message, icon=":material/delete:")
    else:
        st.error(message, icon=":material/error:")

complete = inv.complete_ids
m = st.columns(5)
m[0].metric("File ids on disk", len(inv.file_ids))
m[1].metric("Complete", len(complete))
m[2].metric("Complete pairs", len(inv.complete_interactions()))
m[3].metric("Size on disk", format_bytes(inv.size_bytes))
m[4].metric("Free space", format_bytes(free) if free is not None else "unknown")
st.caption(f"Folder: `{root}`")

if not inv.bundles and not inv.partial_files and not inv.tar_files:
    st.info("No dataset files here yet. Use the Download page, or point the sidebar at another folder.",
            icon=":material/inbox:")
    st.stop()

rows = []
for b in inv.bundles:
    row = {"file_id": b.file_id, "interaction": b.interaction_key, "folder": b.folder}
    for ext in BUNDLE_EXTENSIONS:
        row[ext] = format_bytes(b.sizes[ext]) if ext in b.sizes else "missing"
    row["total"] = format_bytes(b.size_bytes)
    row["status"] = "complete" if b.complete else "missing " + ", ".join(b.missing)
    rows.append(row)
table = pd.DataFrame(rows)

f1, f2 = st.columns([3, 1])
needle = f1.text_input("Filter", placeholder="part of a file id, interaction or folder", key="files_filter")
only_incomplete = f2.checkbox("Only incomplete", key="files_incomplete")
shown = table
if needle.strip() and not shown.empty:
    mask = shown["file_id"].str.contains(needle.strip(), regex=False) | \
        shown["folder"].str.contains(needle.strip(), regex=False)
    shown = shown[mask]
if only_incomplete and not shown.empty:
    shown = shown[shown["status"] != "complete"]

st.dataframe(shown, hide_index=True, width="stretch")

if inv.partial_files or inv.tar_files:
    with st.expander(f"Leftovers: {len(inv.partial_files)} partial download(s), {len(inv.tar_files)} .tar file(s)"):
        st.caption("Partial files resume on the next download of the same file; .tar files were fetched "
                   "without extraction.")
        st.dataframe(pd.DataFrame(inv.partial_files + inv.tar_files, columns=["path", "bytes"]),
                     hide_index=True, width="stretch")

st.subheader("Preview")
ids = [b.file_id for b in inv.bundles]
pick = st.selectbox("File id", ids, key="files_preview")
if pick:
    bundle = inv.bundle(pick)
    paths = bundle.paths(root)
    c0, c1, c2 = st.columns([1, 1.5, 2.5])
    with c0:
        if "mp4" in paths:
            # Same-origin URL paths: st.video/st.audio would read a path starting with "/" as a file.
            st.html(f'<video src="{data.media_url(paths["mp4"])}" controls preload="metadata" '
                    'style="width:100%;max-height:420px"></video>')
    with c1:
        if "wav" in paths:
            st.html(f'<audio src="{data.media_url(paths["wav"])}" controls preload="metadata" '
                    'style="width:100%"></audio>')
        st.markdown("\n".join(f"- `{pick}.{ext}`: {format_bytes(size)}" for ext, size in bundle.sizes.items()))
        st.caption(f"in `{bundle.folder}`" + ("" if bundle.complete else f" · missing: {', '.join(bundle.missing)}"))
    with c2:
        if "json" in paths:
            with st.expander(f"{pick}.json · {format_bytes(bundle.sizes['json'])}"):
                import json

                try:
                    st.json(json.loads(paths["json"].read_text(encoding="utf-8")), expanded=1)
                except (OSError, ValueError) as exc:
                    st.error(f"{paths['json']}: {type(exc).__name__}: {exc}")
        if "npz" in paths:
            with st.expander(f"{pick}.npz · {format_bytes(bundle.sizes['npz'])}"):
                from seamless_interaction.base.npz import NpzReader

                try:
                    members = NpzReader(paths["npz"], name=f"{pick}.npz").members
                    st.dataframe({"key": list(members), "shape": [str(m.shape) for m in members.values()],
                                  "dtype": [str(m.dtype) for m in members.values()]}, hide_index=True, width="stretch")
                except Exception as exc:
                    st.error(f"{paths['npz']}: {type(exc).__name__}: {exc}")

st.subheader("Delete")
incomplete = [b.file_id for b in inv.bundles if not b.complete]
st.button(f"Select the {len(incomplete)} incomplete file id(s)", disabled=not incomplete,
          on_click=lambda: st.session_state.update(files_delete=incomplete))
chosen = st.multiselect("File ids to delete", ids, key="files_delete")
chosen_bundles = [b for b in inv.bundles if b.file_id in set(chosen)]
sure = st.checkbox(f"Yes, delete {len(chosen_bundles)} file id(s) "
                   f"({format_bytes(sum(b.size_bytes for b in chosen_bundles))}) from disk", key="files_sure")


def _delete(bundles: list) -> None:
    """Button callback: widget state may only be reset before the widgets are drawn, i.e. here."""
    try:
        removed = delete_bundles(root, bundles, manifest=Manifest(root))
    except OSError as exc:
        st.session_state[DELETED_KEY] = ("error", f"Delete failed: {type(exc).__name__}: {exc}")
    else:
        st.session_state[DELETED_KEY] = ("ok", f"Deleted {len(removed)} file(s) of {len(bundles)} file id(s).")
    data.invalidate_inventory()
    st.session_state["files_delete"] = []
    st.session_state["files_sure"] = False
    if st.session_state.get("files_preview") in {b.file_id for b in bundles}:
        st.session_state.pop("files_preview", None)


st.button("Delete", type="primary", disabled=not (chosen_bundles and sure), on_click=_delete, args=(chosen_bundles,))
