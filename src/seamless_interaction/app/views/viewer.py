"""Interaction viewer: pick an interaction (Label -> Split -> Batch -> Interaction, or at random) and watch it.

Under the two synchronized videos: transcript, VAD lanes and per-frame feature plots on one time
cursor (the player component, :mod:`seamless_interaction.app.player`), then the prompt, IPC codes,
relationship and BFI-2 traits, the file status of each participant, audio players and previews of
the JSON and NPZ files. ``?interaction=KEY&t=SECONDS`` opens the page on an interaction at a time.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from seamless_interaction.access.aligned import Participant
from seamless_interaction.app import data, ui
from seamless_interaction.app.player import (
    AU_NAMES,
    DEFAULT_AUS,
    PARTICIPANT_COLORS,
    build_payload,
    player_html,
)
from seamless_interaction.app.progress import format_bytes
from seamless_interaction.base import conversation as cv
from seamless_interaction.base.errors import SeamlessError
from seamless_interaction.base.ids import INTERACTION_KEY_RE

NAV_KEYS = ("v_label", "v_split", "v_batch", "v_key")
POOL_KEY, RESULT_KEYS = "_v_pool", "_v_result_keys"
RESULT_LIMIT = 500  # rows listed; the filters narrow the rest (Random draws from all matches)


@st.cache_data(show_spinner="Reading the interaction…", max_entries=16)
def _payload(root: str, key: str, signature: tuple, au_columns: tuple[int, ...]) -> dict[str, Any]:
    """Player data for one interaction; ``signature`` (paths, sizes, mtimes) invalidates it on change."""
    from seamless_interaction.access.aligned import Interaction

    root_p = Path(root)
    inv = data.inventory(root_p)
    people = []
    media: dict[str, dict[str, str]] = {}
    for fid in _pair_ids(key):
        bundle = inv.bundle(fid)
        if bundle is None:
            continue
        paths = bundle.paths(root_p)
        people.append(Participant.from_paths(fid, paths))
        media[fid] = {ext: data.media_url(paths[ext], root_p) for ext in ("mp4", "wav") if ext in paths}
    return build_payload(Interaction(key, people), media, au_columns=au_columns)


def _pair_ids(key: str) -> list[str]:
    return list(data.catalog().interaction_file_ids(key))


def _apply_link(cat) -> float:
    """Move the navigation to ``?interaction=KEY`` once per distinct link; return the ``t`` it asks for."""
    key = st.query_params.get("interaction")
    try:
        t = max(0.0, float(st.query_params.get("t", 0) or 0))
    except ValueError:
        st.warning(f"Ignoring the link's time {st.query_params.get('t')!r}: not a number of seconds.")
        t = 0.0
    if not key or st.session_state.get("_applied_link") == (key, t):
        return 0.0 if not key else st.session_state.get("_link_t", 0.0)
    st.session_state["_applied_link"] = (key, t)
    if not INTERACTION_KEY_RE.match(key):
        st.warning(f"Ignoring the link's interaction {key!r}: expected a key like V00_S0809_I00000582.")
        return 0.0
    ids = cat.interaction_file_ids(key) if key in set(cat.interaction_keys()) else []
    if not ids:
        st.warning(f"The link's interaction {key} is not in the catalog.")
        return 0.0
    rec = cat.record(ids[0])
    st.session_state.update({"v_label": rec.label, "v_split": rec.split, "v_batch": rec.batch, "v_key": key,
                             "v_only_local": False, "_link_t": t})
    return t


def _random(cat) -> None:
    """Button callback: a random interaction among those the filters (and "only on disk") leave."""
    pool = st.session_state.get(POOL_KEY) or []
    if not pool:
        st.session_state["_v_random_empty"] = True
        return
    _open(cat, random.Random().choice(sorted(pool)))


def _open(cat, key: str) -> None:
    rec = cat.record(cat.interaction_file_ids(key)[0])
    st.session_state.update({"v_label": rec.label, "v_split": rec.split, "v_batch": rec.batch, "v_key": key,
                             "_link_t": 0.0})


def _open_result(cat) -> None:
    """Table selection callback: open the selected row's interaction."""
    rows = st.session_state["v_results"].selection.rows
    keys = st.session_state.get(RESULT_KEYS) or []
    if rows and rows[0] < len(keys):
        _open(cat, keys[rows[0]])


def _find(cat, frame, local_keys: set[str], only_local: bool, has_index: bool):
    """The "Find interactions" panel: metadata filters, then a table whose rows open the viewer."""
    from seamless_interaction.app.finder import (
        INDEX_MEASURES,
        TRAITS,
        Filters,
        apply_filters,
    )

    f = Filters(keys=set(local_keys) if only_local else None)
    with st.expander("Find interactions by metadata", icon=":material/filter_alt:", expanded=True):
        c = st.columns(4)
        f.interaction_types = c[0].multiselect("Interaction type", sorted(frame["interaction_type"].unique()),
                                               key="f_type")
        codes = sorted({x for col in ("ipc_a", "ipc_b") for x in frame[col].unique() if x})
        f.ipc_codes = c[1].multiselect("IPC code (either participant)", codes, key="f_ipc")
        f.relationships = c[2].multiselect("Relationship", sorted(frame["relationship_detail"].unique()), key="f_rel")
        f.vendors = c[3].multiselect("Vendor", sorted(frame["vendor"].unique()), key="f_vendor")
        c = st.columns(4)
        f.labels = c[0].multiselect("Label", sorted(frame["label"].unique()), key="f_label")
        f.splits = c[1].multiselect("Split", sorted(frame["split"].unique()), key="f_split")
        trait = c[2].selectbox("BFI-2 trait (either participant)", ["any", *TRAITS], key="f_trait")
        if trait != "any":
            f.trait = trait
            f.trait_range = c[3].slider(f"{trait} score", 1.0, 5.0, (1.0, 5.0), 0.25, key="f_trait_range")
        c = st.columns(4)
        f.movement = c[0].checkbox("Movement features (both)", key="f_mov")
        f.annotation_1p = c[1].checkbox("1P annotations", key="f_1p")
        f.annotation_3p = c[2].checkbox("3P annotations", key="f_3p")
        f.complete_pairs = c[3].checkbox("Complete pairs only", key="f_pairs")
        if has_index:
            c = st.columns(4)
            for k, col in enumerate(("duration_s", "n_turns", "speech_share_a", "fto_median_s")):
                vals = frame[col].dropna()
                if vals.empty:
                    continue
                lo, hi = float(vals.min()), float(vals.max())
                if hi > lo:
                    chosen = c[k].slider(col, lo, hi, (lo, hi), key=f"f_{col}")
                    if chosen != (lo, hi):
                        f.ranges[col] = chosen
        else:
            st.caption("Duration and turn-taking filters appear once the conversation index is built "
                       "(`seamless-interaction index`).")
        found = apply_filters(frame, f)
        st.session_state[POOL_KEY] = found["interaction_key"].tolist()
        shown = found.head(RESULT_LIMIT)
        st.session_state[RESULT_KEYS] = shown["interaction_key"].tolist()
        cols = ["interaction_key", "label", "split", "interaction_type", "ipc_a", "ipc_b", "relationship_detail",
                "vendor", "n_files", *[m for m in INDEX_MEASURES if m in shown.columns]]
        view = shown[cols].assign(on_disk=shown["interaction_key"].isin(local_keys))
        st.caption(f"{len(found):,} of {len(frame):,} interactions match"
                   + (f"; the first {RESULT_LIMIT:,} are listed" if len(found) > RESULT_LIMIT else "")
                   + ". Select a row to open it.")
        st.dataframe(view, hide_index=True, width="stretch", height=240, on_select=lambda: _open_result(cat),
                     selection_mode="single-row", key="v_results")
    return found


def _status_table(key: str, inv) -> list[dict[str, Any]]:
    rows = []
    for fid in _pair_ids(key):
        b = inv.bundle(fid)
        row: dict[str, Any] = {"file id": fid}
        for ext in ("mp4", "wav", "npz", "json"):
            row[ext] = format_bytes(b.sizes[ext]) if b is not None and ext in b.sizes else "missing"
        row["folder"] = b.folder if b is not None else ""
        row["complete"] = "yes" if b is not None and b.complete else "no"
        rows.append(row)
    return rows


def _facts(p: Participant) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["duration"] = f"{p.duration_s:.2f} s"
        out["frames"] = p.num_frames
        out["frame rate"] = f"{float(p.frame_rate):.3f} fps" if p.frame_rate else "unknown"
        out["placeholder"] = "yes (empty media)" if p.is_placeholder else "no"
        if p.has("json"):
            out["words"] = len(p.words())
            out["VAD segments"] = len(p.vad_segments())
            out["annotations"] = ", ".join(sorted(k for k, v in p.annotations().items() if v)) or "none"
        if p.has("npz"):
            out["npz arrays"] = len(p.feature_keys())
    except Exception as exc:  # a damaged file is reported in place
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def _npz_preview(p: Participant, fid: str, path: Path) -> None:
    from seamless_interaction.base.npz import NpzReader

    reader = NpzReader(path, name=f"{fid}.npz")
    members = reader.members
    st.dataframe({"key": list(members), "shape": [str(m.shape) for m in members.values()],
                  "dtype": [str(m.dtype) for m in members.values()],
                  "compressed": [m.compressed for m in members.values()]}, hide_index=True, width="stretch")
    plottable = [k for k, m in members.items() if m.shape and m.shape[0] > 0 and m.dtype.kind in "fiub"]
    if not plottable:
        return
    default = next((i for i, k in enumerate(plottable) if k.endswith("emotion_valence")), 0)
    key = st.selectbox("Plot an array", plottable, index=default, key=f"npz_key_{fid}")
    if key is None:
        return
    arr = reader.rows(key).astype(np.float64).reshape(members[key].shape[0], -1)
    step = max(1, arr.shape[0] // 1500)
    fig = go.Figure()
    rate = float(p.feature_rate(key)) if p.frame_rate else 1.0
    t = np.arange(0, arr.shape[0], step) / rate
    for j in range(min(arr.shape[1], 6)):
        fig.add_trace(go.Scatter(x=t, y=arr[::step, j], mode="lines", name=f"[{j}]"))
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="seconds",
                      title=f"{key} {members[key].shape}" + (" (first 6 columns)" if arr.shape[1] > 6 else ""))
    st.plotly_chart(fig, width="stretch", key=f"npz_plot_{fid}")


def _turn_taking(payload: dict[str, Any]) -> None:
    """Per-interaction turn-taking measures (CONVERSATION.md, the module the index uses) and the FTOs."""
    people = sorted(payload["participants"], key=lambda p: p["file_id"])  # A = first file id, as the index
    st.subheader("Turn-taking")
    if len(people) != 2:
        st.caption("Turn-taking needs both participants on disk.")
        return
    a, b = people
    m = cv.interaction_measures(a["vad"], b["vad"], payload["duration"] or None)
    sa, sb = cv.talkspurts(a["vad"]), cv.talkspurts(b["vad"])

    def fmt(v: float | None, unit: str = " s", digits: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}{unit}"

    share = m.speech_share_a
    c = st.columns(3) + st.columns(3)  # two rows: the values stay readable next to the player
    c[0].metric(f"Speaking share {a['short']} / {b['short']}",
                "n/a" if share is None else f"{share:.0%} / {1 - share:.0%}",
                help="Share of all speech time (talkspurts of the VAD), CONVERSATION.md")
    c[1].metric("Turns", m.n_turns if m.n_turns is not None else "n/a")
    c[2].metric("Overlap", fmt(m.overlap_s), help=f"{m.n_overlaps or 0} between-speaker overlaps, "
                                                  f"{m.n_interruptions or 0} interruptions")
    c[3].metric("Silence", fmt(m.silence_s))
    c[4].metric("Median floor-transfer offset", fmt(m.fto_median_s),
                help=f"10th-90th percentile {fmt(m.fto_p10_s)} to {fmt(m.fto_p90_s)}; positive = gap, "
                     "negative = overlap")
    c[5].metric("Backchannels", m.n_backchannels if m.n_backchannels is not None else "n/a")
    ftos = cv.floor_transfer_offsets(sa, sb)
    if ftos:
        fig = go.Figure(go.Histogram(x=ftos, xbins=dict(size=0.1), marker_color="#888"))
        fig.add_vline(x=0, line_color="#ff4b4b", line_dash="dot")
        fig.update_layout(height=200, margin=dict(l=50, r=10, t=30, b=40), title="Floor-transfer offsets",
                          xaxis_title="seconds (negative: overlap, positive: gap)", yaxis_title="transfers")
        st.plotly_chart(fig, width="stretch", key="fto_hist")


EXPORT_FORMATS = {"clip": "Clip of the range (both videos and WAVs, sliced npz/json)",
                  "elan": "ELAN .eaf (transcript, VAD, annotations)",
                  "textgrid": "Praat TextGrid (transcript, VAD, annotations)"}


def _export_panel(key: str, root: Path, duration: float) -> None:
    """Export this interaction with the export module's writers (one implementation with the CLI)."""
    from seamless_interaction.operations.export import export

    with st.expander("Export this interaction", icon=":material/ios_share:"):
        c = st.columns([2, 1])
        span = c[0].slider("Time range (s), for the clip", 0.0, max(duration, 0.1), (0.0, max(duration, 0.1)),
                           0.1, key="x_range")
        out = Path(c[1].text_input("Output folder (on the app's machine)", str(root / "exports"), key="x_out"))
        chosen = [f for f, text in EXPORT_FORMATS.items() if st.checkbox(text, value=f != "clip", key=f"x_{f}")]
        if not st.button("Export", key="x_go", disabled=not chosen, icon=":material/ios_share:"):
            return
        written: list[Path] = []
        for fmt in chosen:
            opts: dict[str, Any] = {"start_s": span[0], "end_s": span[1]} if fmt == "clip" else {}
            try:
                with st.spinner(f"Writing {fmt}…"):
                    res = export([key], to=fmt, out=out / fmt, local_dir=root, catalog=data.catalog(), **opts)
            except (SeamlessError, OSError, ValueError) as exc:
                st.error(f"Export to {fmt} failed: {type(exc).__name__}: {exc}", icon=":material/error:")
                continue
            written += res.paths
            if res.skipped:
                st.warning(f"{fmt}: nothing to export for {', '.join(res.skipped)}")
        if written:
            st.success(f"Wrote {len(written)} file(s) under `{out}`", icon=":material/check_circle:")
            st.code("\n".join(str(p) for p in written), language=None)
            # Files land on the app's machine; small ones are offered to the browser too (remote use).
            for k, path in enumerate(p for p in written if p.is_file() and p.stat().st_size < (32 << 20)):
                st.download_button(f"Download {path.name}", path.read_bytes(), file_name=path.name, key=f"x_dl_{k}")


def _traits_chart(meta: dict[str, Any]) -> go.Figure | None:
    fig = go.Figure()
    any_traits = False
    # The player's colours: one per speaker throughout, in file id order.
    for person, color in zip(sorted(meta["participants"], key=lambda p: p["file_id"]), PARTICIPANT_COLORS):
        traits = person.get("traits") or {}
        if not any(v is not None for v in traits.values()):
            continue
        any_traits = True
        names = [k.removesuffix("_raw") for k in traits]
        fig.add_trace(go.Bar(x=names, y=[traits[k] for k in traits], name=person["file_id"], marker_color=color))
    if not any_traits:
        return None
    fig.update_xaxes(automargin=True, tickangle=-30)
    fig.update_yaxes(automargin=True)
    fig.update_layout(barmode="group", height=280, margin=dict(l=10, r=10, t=30, b=10), yaxis_range=[1, 5],
                      title="BFI-2 domain means (1-5)", showlegend=True, legend=dict(orientation="h", y=-0.3))
    return fig


# ------------------------------------------------------------------------------------------ page
st.title(":material/movie: Interaction viewer")
cat = data.require_catalog()
root = data.local_dir()
inv = data.inventory()
known = set(cat.interaction_keys())
# Pairs on disk that this catalog does not list (another source's files in the same folder) cannot be opened.
local_keys = inv.complete_interactions() & known
link_t = _apply_link(cat)
ui.show_result("viewer")

pairs = cat.labels_splits()
nav = st.container(border=True)
top = nav.columns([1, 1, 1, 2.4, 1.1])
st.session_state.setdefault("v_only_local", bool(local_keys))
only_local = nav.checkbox(f"Only interactions on disk ({len(local_keys)})", key="v_only_local")
local_recs = {k: cat.record(cat.interaction_file_ids(k)[0]) for k in local_keys if k in known}
if only_local:
    pairs = sorted({(r.label, r.split) for r in local_recs.values()})
labels = sorted({lab for lab, _ in pairs})
if st.session_state.get("v_label") not in labels:
    st.session_state.pop("v_label", None)
label: str | None = top[0].selectbox("Label", labels, key="v_label")
splits = sorted({s for lab, s in pairs if lab == label})
if st.session_state.get("v_split") not in splits:
    st.session_state.pop("v_split", None)
split: str | None = top[1].selectbox("Split", splits, key="v_split")
if only_local:
    batches = sorted({r.batch for r in local_recs.values() if (r.label, r.split) == (label, split)})
else:
    batches = cat.batches(label, split) if label and split else []
if st.session_state.get("v_batch") not in batches:
    st.session_state.pop("v_batch", None)
batch = top[2].selectbox("Batch", batches, key="v_batch", format_func=lambda b: f"{b:04d}")
keys: list[str] = sorted({f[:19] for f in cat.file_ids(label, split, batch=batch)}) if batch is not None else []
if only_local:
    keys = [k for k in keys if k in local_keys]
if st.session_state.get("v_key") not in keys:
    st.session_state.pop("v_key", None)
key = top[3].selectbox("Interaction", keys, key="v_key",
                       format_func=lambda k: f"{k} · on disk" if k in local_keys else k)
top[4].markdown("<div style='height:1.75rem'></div>", unsafe_allow_html=True)
top[4].button(":material/casino: Random", on_click=_random, args=(cat,), width="stretch",
              help="A random interaction among those the filters below leave (and only on disk when ticked)")
if st.session_state.pop("_v_random_empty", False):
    st.warning("No interaction matches the filters: nothing to draw from.")
tables = data.tables()
_find(cat, tables["interactions"], local_keys, only_local, tables["index"])

if not key:
    if not local_keys:
        st.info("Nothing is on disk yet: pick an interaction above and download it, or use the Download page.")
    st.stop()

if st.query_params.get("interaction") != key:
    # The address bar follows the selection, so it can be bookmarked; that is not a new link to apply.
    st.query_params["interaction"] = key
    st.query_params.pop("t", None)
    st.session_state["_applied_link"] = (key, 0.0)
    st.session_state["_link_t"] = link_t = 0.0
meta = cat.interaction_metadata(key)
status = _status_table(key, inv)
complete = all(r["complete"] == "yes" for r in status)

if not complete:
    st.warning(f"{key} is not (completely) on disk under `{root}`.", icon=":material/inbox:")
    if st.button(f"Download {key} ({len(status)} file ids) by the CDN route", type="primary"):
        ui.run_download(f"pair {key}", ui.gather_job([r["file id"] for r in status]), units=len(status),
                        page="viewer")
        st.rerun()

bundles = [inv.bundle(r["file id"]) for r in status]
if any(b is not None for b in bundles):
    sig = data.file_signature([p for b in bundles if b is not None for p in b.paths(root).values()])
    with st.popover("Plot options"):
        aus = st.multiselect("Facial action units (movement:FAUValue columns)", list(range(len(AU_NAMES))),
                             default=list(DEFAULT_AUS), format_func=lambda c: f"AU{c} {AU_NAMES[c]}",
                             key="v_aus", help="Column names follow the official README; the column order is "
                                               "not documented.")
    try:
        payload = dict(_payload(str(root), key, sig, tuple(sorted(aus))))
    except (SeamlessError, OSError, ValueError) as exc:
        st.error(f"Cannot read {key}: {type(exc).__name__}: {exc}", icon=":material/error:")
        st.stop()
    payload["start"] = min(link_t, payload["duration"])
    st.iframe(player_html(payload, video_px=460), height="content", alt="seamless-player")
    notes = [f"{p['file_id']}: {n}" for p in payload["participants"] for n in p["notes"]]
    if notes:
        st.caption(" · ".join(notes))
    _turn_taking(payload)
    _export_panel(key, root, float(payload["duration"]))

st.subheader("Conversation")
c1, c2 = st.columns([3, 2])
with c1:
    st.markdown(f"**Type:** {meta.get('interaction_type') or 'unknown'} · **IPC codes:** "
                f"A `{meta.get('ipc_a') or '-'}`, B `{meta.get('ipc_b') or '-'}` · **Prompt** `{meta['prompt_hash']}`")
    pa, pb = st.columns(2)
    pa.markdown("**Prompt for participant A**")
    pa.write(meta.get("participant_a_prompt_text") or "_no prompt text_")
    pb.markdown("**Prompt for participant B**")
    pb.write(meta.get("participant_b_prompt_text") or "_no prompt text_")
    st.caption("The dataset does not record which participant received prompt A or B (upstream issue #23).")
with c2:
    rel = meta.get("relationship")
    st.markdown("**Relationship:** " + (f"{rel['relationship']} ({rel['relationship_detail']})" if rel else "unknown"))
    fig = _traits_chart(meta)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key="traits")
    else:
        st.caption("No BFI-2 traits disclosed for these participants.")

st.subheader("Files")
st.dataframe(status, hide_index=True, width="stretch")
cols = st.columns(max(1, len(status)))
for col, row, bundle in zip(cols, status, bundles):
    with col:
        fid = row["file id"]
        st.markdown(f"**{fid}**")
        if bundle is None:
            st.caption("not on disk")
            continue
        paths = bundle.paths(root)
        p = Participant.from_paths(fid, paths)
        st.markdown("\n".join(f"- **{k}:** {v}" for k, v in _facts(p).items()))
        if "json" in paths:
            with st.expander(f"JSON · {format_bytes(bundle.sizes['json'])}"):
                try:
                    st.json(p.json, expanded=1)
                except Exception as exc:
                    st.error(f"{fid}.json: {type(exc).__name__}: {exc}")
        if "npz" in paths:
            with st.expander(f"NPZ · {format_bytes(bundle.sizes['npz'])}"):
                try:
                    _npz_preview(p, fid, paths["npz"])
                except Exception as exc:
                    st.error(f"{fid}.npz: {type(exc).__name__}: {exc}")
        ann = p.annotations() if "json" in paths else {}
        if any(ann.values()):
            with st.expander("Annotations"):
                for kind, records in ann.items():
                    st.markdown(f"**{kind}**")
                    st.dataframe(records, hide_index=True, width="stretch")
