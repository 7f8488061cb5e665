"""Overview page: statistics and distribution plots of the catalog, with filters.

Every aggregate and figure is computed once per filter selection (``st.cache_data``), so a
navigation or a repeated selection only ships the small figures: the full 130,000-row catalog renders
as fast as the sample. Hours and the turn-taking distributions come from the conversation index
(``seamless-interaction index``) when it is built; without it, the turn-taking panel measures the
interactions on disk with the same module (:mod:`seamless_interaction.base.conversation`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from seamless_interaction.app import data
from seamless_interaction.catalog.tables import FLAG_COLUMNS, TRAIT_COLUMNS

logger = logging.getLogger(__name__)

LABEL_COLORS = {"improvised": "#1f77b4", "naturalistic": "#e8710a"}
REQUIRE = {"movement features": "has_imitator_movement", "1P annotations": "has_annotation_1p",
           "3P annotations": "has_annotation_3p"}
LAYOUT = dict(height=300, margin=dict(l=10, r=10, t=46, b=10), legend_title_text="")


def _bar(df: pd.DataFrame, title: str, *, categorical_x: bool = False, **kw) -> go.Figure:
    fig = px.bar(df, title=title, text_auto=True, **kw)
    fig.update_layout(**LAYOUT)
    if categorical_x:  # counts such as "2 participants" are categories, not a continuous axis
        fig.update_xaxes(type="category")
    return fig


def _selection(fl_all: pd.DataFrame, labels: tuple, splits: tuple, vendors: tuple, need: tuple) -> pd.DataFrame:
    fl = fl_all[fl_all["label"].isin(labels) & fl_all["split"].isin(splits) & fl_all["vendor"].isin(vendors)]
    for name in need:
        fl = fl[fl[REQUIRE[name]] == 1]
    return fl


@st.cache_resource(show_spinner=False, max_entries=64)  # shared, read-only: no unpickled copy per run
def _summary(stamp: tuple, labels: tuple, splits: tuple, vendors: tuple, need: tuple) -> dict[str, Any]:
    """Metrics and figures of one selection; ``stamp`` names the tables (catalog source, index state)."""
    t = data.tables()
    fl = _selection(t["files"], labels, splits, vendors, need)
    if fl.empty:
        return {"empty": True}
    per_interaction = fl.groupby("interaction_key").size()
    out: dict[str, Any] = {"empty": False, "metrics": {
        "Files": f"{len(fl):,}", "Interactions": f"{fl['interaction_key'].nunique():,}",
        "Sessions": f"{fl['session_key'].nunique():,}", "Participants": f"{fl['participant'].nunique():,}",
        "Complete pairs": f"{int((per_interaction == 2).sum()):,}"}}
    if "duration_s" in fl.columns and fl["duration_s"].notna().any():
        known = fl["duration_s"].notna()
        out["metrics"]["Hours"] = f"{fl['duration_s'].sum() / 3600:,.1f}"
        out["hours_note"] = f"Hours of the {int(known.sum()):,} indexed files of {len(fl):,}."
    else:
        out["metrics"]["Hours"] = "n/a"
        out["hours_note"] = ("Hours need the media durations: build the conversation index "
                             "(`seamless-interaction index`).")
    figs: list[go.Figure] = []
    by_ls = fl.groupby(["label", "split"]).size().reset_index(name="files")
    figs.append(_bar(by_ls, "Files by label and split", x="split", y="files", color="label", barmode="group",
                     color_discrete_map=LABEL_COLORS))
    if "duration_s" in fl.columns and fl["duration_s"].notna().any():
        hours = (fl.groupby(["vendor", "label"])["duration_s"].sum() / 3600).round(1).reset_index(name="hours")
        figs.append(_bar(hours, "Hours by vendor", x="vendor", y="hours", color="label",
                         color_discrete_map=LABEL_COLORS))
    else:
        by_vendor = fl.groupby(["vendor", "label"]).size().reset_index(name="files")
        figs.append(_bar(by_vendor, "Files by vendor", x="vendor", y="files", color="label",
                         color_discrete_map=LABEL_COLORS))
    sessions = fl.groupby("vendor")["session_key"].nunique().reset_index(name="sessions")
    figs.append(_bar(sessions, "Sessions per vendor", x="vendor", y="sessions"))
    ips = fl.groupby("session_key")["interaction_key"].nunique().value_counts().sort_index()
    ips = ips.rename_axis("interactions per session").reset_index(name="sessions")
    figs.append(_bar(ips, "Interactions per session", x="interactions per session", y="sessions", categorical_x=True))
    avail = fl.groupby("vendor")[list(FLAG_COLUMNS)].mean().reset_index()
    avail = avail.melt(id_vars="vendor", var_name="availability", value_name="share of files")
    avail["availability"] = avail["availability"].map({v: k for k, v in REQUIRE.items()})
    fig = px.bar(avail, x="vendor", y="share of files", color="availability", barmode="group",
                 title="Movement and annotation availability", text_auto=".0%")
    fig.update_layout(**LAYOUT, yaxis_tickformat=".0%")
    figs.append(fig)
    sizes = per_interaction.value_counts().rename_axis("participants").reset_index(name="interactions")
    figs.append(_bar(sizes, "Participants per interaction", x="participants", y="interactions", categorical_x=True))
    inter = t["interactions"]
    inter = inter[inter["interaction_key"].isin(per_interaction.index)]
    types = inter.groupby("interaction_type").size().reset_index(name="interactions")
    fig = px.pie(types, names="interaction_type", values="interactions", title="Interaction types", hole=0.4)
    fig.update_layout(**LAYOUT)
    figs.append(fig)
    rels = (inter.drop_duplicates("session_key").groupby("relationship_detail").size()
            .reset_index(name="sessions").sort_values("sessions"))
    fig = _bar(rels, "Relationship between the two participants", x="sessions", y="relationship_detail",
               orientation="h")
    fig.update_yaxes(automargin=True, title_text="")
    figs.append(fig)
    out["figs"] = figs
    out["traits"] = _traits_figure(fl)
    out["turns"] = _turns_figure(inter) if "n_turns" in inter.columns else None
    out["archives"] = (fl.groupby(["label", "split"])
                       .agg(batches=("batch_idx", "nunique"), files=("file_id", "size")).reset_index()
                       .merge(fl.drop_duplicates(["label", "split", "batch_idx", "archive_idx"])
                              .groupby(["label", "split"]).size().reset_index(name="archives"), on=["label", "split"]))
    return out


def _traits_figure(fl: pd.DataFrame) -> tuple[go.Figure | None, str]:
    people = data.catalog().table("participants").to_pandas()
    people = people.assign(participant=people["vendor"] + "_P" + people["participant_id"].astype(str))
    keys = fl.drop_duplicates("participant")[["participant"]]
    traits = keys.merge(people.drop_duplicates("participant"), on="participant", how="left")
    disclosed = traits.dropna(subset=list(TRAIT_COLUMNS), how="all")
    if not len(disclosed):
        return None, "No BFI-2 traits are disclosed for the participants in this selection."
    # Quartiles computed here: a box of thousands of raw points is slow to ship and to draw.
    fig = go.Figure()
    for k, col in enumerate(TRAIT_COLUMNS):
        v = disclosed[col].dropna()
        if v.empty:
            continue
        q1, med, q3 = (float(x) for x in v.quantile([0.25, 0.5, 0.75]))
        iqr = q3 - q1
        lo = float(v[v >= q1 - 1.5 * iqr].min())
        hi = float(v[v <= q3 + 1.5 * iqr].max())
        name = col.removesuffix("_raw")
        fig.add_trace(go.Box(name=name, x=[name], q1=[q1], median=[med], q3=[q3], lowerfence=[lo],
                             upperfence=[hi], mean=[float(v.mean())], marker_color=px.colors.qualitative.Plotly[k],
                             showlegend=False))
    fig.update_layout(**{**LAYOUT, "height": 320}, yaxis_range=[1, 5],
                      title=f"BFI-2 personality traits ({len(disclosed):,} of {len(traits):,} participants disclosed)")
    fig.update_xaxes(automargin=True, title_text="")
    return fig, ""


def _turns_figure(inter: pd.DataFrame) -> tuple[go.Figure, str] | None:
    from plotly.subplots import make_subplots

    m = inter.dropna(subset=["n_turns"])
    if m.empty:
        return None
    fig = make_subplots(rows=1, cols=4, subplot_titles=("Speaking share of A", "Median floor-transfer offset (s)",
                                                        "Overlap (% of time)", "Turns per minute"))
    share_overlap = (m["overlap_s"] / m["duration_s"] * 100).dropna()
    per_min = (m["n_turns"] / (m["duration_s"] / 60)).dropna()
    for k, values in enumerate((m["speech_share_a"].dropna(), m["fto_median_s"].dropna(), share_overlap, per_min)):
        fig.add_trace(go.Histogram(x=values, nbinsx=30, marker_color="#888", showlegend=False), row=1, col=k + 1)
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=40, b=10), bargap=0.05)
    return fig, f"{len(m):,} indexed interactions with both partners' VAD"


@st.cache_data(show_spinner=False, max_entries=4, ttl=30)
def _local_turns(root: str, stamp: tuple) -> pd.DataFrame:
    """Turn-taking of the complete pairs on disk, with the index's own functions (the hook while no index)."""
    from seamless_interaction.access.aligned import Participant
    from seamless_interaction.base import conversation as cv

    inv = data.inventory(Path(root))
    rows = []
    for key in sorted(inv.complete_interactions()):
        bundles = sorted((b for b in inv.bundles if b.interaction_key == key and b.complete), key=lambda b: b.file_id)
        if len(bundles) != 2:
            continue
        people = [Participant.from_paths(b.file_id, b.paths(root)) for b in bundles]
        try:
            vads = [p.vad_segments() for p in people]
            duration = max(p.duration_s for p in people)
        except Exception as exc:  # one damaged file must not blank the page; it is left out, and logged
            logger.warning("turn-taking of %s skipped: %s", key, exc)
            continue
        m = cv.interaction_measures(vads[0], vads[1], duration or None)
        rows.append({"interaction_key": key, **m.as_dict()})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ page
st.title(":material/bar_chart: Overview")
data.require_catalog()
cfg = data.config()
tables = data.tables()
fl_all = tables["files"]

with st.container(border=True):
    f1, f2, f3, f4 = st.columns([1, 1, 1, 1.3])
    all_labels, all_splits = sorted(fl_all["label"].unique()), sorted(fl_all["split"].unique())
    all_vendors = sorted(fl_all["vendor"].unique())
    labels = f1.multiselect("Label", all_labels, default=all_labels)
    splits = f2.multiselect("Split", all_splits, default=all_splits)
    vendors = f3.multiselect("Vendor", all_vendors, default=all_vendors)
    need = f4.multiselect("Require", list(REQUIRE), help="Keep only files that have these")

folder = data.index_folder(cfg)
stamp = (str(cfg.assets), str(cfg.cache_dir), data.file_stamp(folder / "interaction_stats.parquet"))
summary = _summary(stamp, tuple(labels), tuple(splits), tuple(vendors), tuple(need))
if summary["empty"]:
    st.warning("No file matches these filters.")
    st.stop()

m = st.columns(6)
for col, (name, value) in zip(m, summary["metrics"].items()):
    col.metric(name, value, help=summary["hours_note"] if name == "Hours" else None)

figs = summary["figs"]
for k in range(0, len(figs), 2):
    cols = st.columns(2)
    for col, fig in zip(cols, figs[k:k + 2]):
        col.plotly_chart(fig, width="stretch", config={"displaylogo": False})

fig, note = summary["traits"]
if fig is not None:
    st.plotly_chart(fig, width="stretch", config={"displaylogo": False})
else:
    st.info(note)

st.subheader("Turn-taking across the selection")
if summary["turns"] is not None:
    fig, note = summary["turns"]
    st.plotly_chart(fig, width="stretch", config={"displaylogo": False})
    st.caption(note + " (CONVERSATION.md; A is the first file id of the pair).")
else:
    inv = data.inventory()
    local = _local_turns(str(cfg.local_dir), (len(inv.complete_ids), inv.size_bytes))
    if len(local) and local["n_turns"].notna().any():
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=3, subplot_titles=("Speaking share of A", "Median floor-transfer offset (s)",
                                                            "Turns"))
        for k, measure in enumerate(("speech_share_a", "fto_median_s", "n_turns")):
            fig.add_trace(go.Histogram(x=local[measure].dropna(), nbinsx=20, marker_color="#888", showlegend=False),
                          row=1, col=k + 1)
        fig.update_layout(height=220, margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, width="stretch", config={"displaylogo": False})
    st.caption(f"Measured on the {len(local)} complete pair(s) on disk. For the whole selection, build the "
               "conversation index: `seamless-interaction index` (its interaction_stats are used here once present).")

with st.expander("Batches and archives per label and split"):
    st.dataframe(summary["archives"], hide_index=True, width="stretch")
