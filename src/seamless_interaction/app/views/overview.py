"""Overview page: statistics and distribution plots of the catalog, with filters."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from seamless_interaction.app import data
from seamless_interaction.catalog.tables import FLAG_COLUMNS, TRAIT_COLUMNS

LABEL_COLORS = {"improvised": "#1f77b4", "naturalistic": "#e8710a"}


@st.cache_data(show_spinner="Preparing statistics…")
def _frames(assets: str, cache_dir: str) -> dict[str, pd.DataFrame]:
    cat = data.catalog(data.config())
    fl = cat.table("filelist").to_pandas()
    fl["participant"] = fl["vendor"] + "_P" + fl["file_id"].str.slice(21)
    fl["prompt_hash"] = fl["file_id"].str.slice(11, 19)
    for col in FLAG_COLUMNS:  # True/False/None (unknown in old filelists) -> 1.0/0.0/NaN
        fl[col] = fl[col].astype("float64")
    return {
        "filelist": fl,
        "interactions": cat.table("interactions").to_pandas(),
        "participants": cat.table("participants").to_pandas(),
        "relationships": cat.table("relationships").to_pandas(),
    }


def _bar(df: pd.DataFrame, title: str, *, categorical_x: bool = False, **kw):
    fig = px.bar(df, title=title, text_auto=True, **kw)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10), legend_title_text="")
    if categorical_x:  # counts such as "2 participants" are categories, not a continuous axis
        fig.update_xaxes(type="category")
    return fig


st.title(":material/bar_chart: Overview")
data.require_catalog()
cfg = data.config()
frames = _frames(str(cfg.assets), str(cfg.cache_dir))
fl_all = frames["filelist"]

with st.container(border=True):
    f1, f2, f3, f4 = st.columns([1, 1, 1, 1.3])
    labels = f1.multiselect("Label", sorted(fl_all["label"].unique()), default=sorted(fl_all["label"].unique()))
    splits = f2.multiselect("Split", sorted(fl_all["split"].unique()), default=sorted(fl_all["split"].unique()))
    vendors = f3.multiselect("Vendor", sorted(fl_all["vendor"].unique()), default=sorted(fl_all["vendor"].unique()))
    need = f4.multiselect("Require", ["movement features", "1P annotations", "3P annotations"],
                          help="Keep only files that have these")
fl = fl_all[fl_all["label"].isin(labels) & fl_all["split"].isin(splits) & fl_all["vendor"].isin(vendors)]
for name, col in zip(["movement features", "1P annotations", "3P annotations"], FLAG_COLUMNS):
    if name in need:
        fl = fl[fl[col] == 1]

if fl.empty:
    st.warning("No file matches these filters.")
    st.stop()

per_interaction = fl.groupby("interaction_key").size()
m = st.columns(5)
m[0].metric("Files", f"{len(fl):,}")
m[1].metric("Interactions", f"{fl['interaction_key'].nunique():,}")
m[2].metric("Sessions", f"{fl['session_key'].nunique():,}")
m[3].metric("Participants", f"{fl['participant'].nunique():,}")
m[4].metric("Complete pairs", f"{int((per_interaction == 2).sum()):,}")

c1, c2 = st.columns(2)
by_ls = fl.groupby(["label", "split"]).size().reset_index(name="files")
c1.plotly_chart(_bar(by_ls, "Files by label and split", x="split", y="files", color="label", barmode="group",
                     color_discrete_map=LABEL_COLORS), width="stretch")
by_vendor = fl.groupby(["vendor", "label"]).size().reset_index(name="files")
c2.plotly_chart(_bar(by_vendor, "Files by vendor", x="vendor", y="files", color="label",
                     color_discrete_map=LABEL_COLORS), width="stretch")

c3, c4 = st.columns(2)
sessions = fl.groupby("vendor")["session_key"].nunique().reset_index(name="sessions")
c3.plotly_chart(_bar(sessions, "Sessions per vendor", x="vendor", y="sessions"), width="stretch")
ips = fl.groupby("session_key")["interaction_key"].nunique().value_counts().sort_index()
ips = ips.rename_axis("interactions per session").reset_index(name="sessions")
c4.plotly_chart(_bar(ips, "Interactions per session", x="interactions per session", y="sessions",
                     categorical_x=True), width="stretch")

c5, c6 = st.columns(2)
avail = fl.groupby("vendor")[list(FLAG_COLUMNS)].mean().reset_index()
avail = avail.melt(id_vars="vendor", var_name="availability", value_name="share of files")
avail["availability"] = avail["availability"].map({"has_imitator_movement": "movement features",
                                                   "has_annotation_1p": "1P annotations",
                                                   "has_annotation_3p": "3P annotations"})
fig = px.bar(avail, x="vendor", y="share of files", color="availability", barmode="group",
             title="Movement and annotation availability", text_auto=".0%")
fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10), yaxis_tickformat=".0%", legend_title_text="")
c5.plotly_chart(fig, width="stretch")
sizes = per_interaction.value_counts().rename_axis("participants").reset_index(name="interactions")
c6.plotly_chart(_bar(sizes, "Participants per interaction", x="participants", y="interactions", categorical_x=True),
                width="stretch")

c7, c8 = st.columns(2)
prompts = frames["interactions"]
inter = fl.drop_duplicates("interaction_key")[["interaction_key", "prompt_hash"]]
inter = inter.merge(prompts[["prompt_hash", "interaction_type", "ipc_a"]], on="prompt_hash", how="left")
inter["interaction_type"] = inter["interaction_type"].replace("", None).fillna("unknown")
types = inter.groupby("interaction_type").size().reset_index(name="interactions")
fig = px.pie(types, names="interaction_type", values="interactions", title="Interaction types", hole=0.4)
fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10))
c7.plotly_chart(fig, width="stretch")
rel = frames["relationships"]
sess = fl.drop_duplicates("session_key")[["session_key"]].copy()
sess["vendor_id"], sess["session_id"] = sess["session_key"].str.slice(0, 3), sess["session_key"].str.slice(5, 9)
sess = sess.merge(rel[["vendor_id", "session_id", "relationship_detail"]], on=["vendor_id", "session_id"], how="left")
sess["relationship_detail"] = sess["relationship_detail"].replace("", None).fillna("unknown")
rels = sess.groupby("relationship_detail").size().reset_index(name="sessions").sort_values("sessions")
c8.plotly_chart(_bar(rels, "Relationship between the two participants", x="sessions", y="relationship_detail",
                     orientation="h"), width="stretch")

people = frames["participants"]
keys = fl.drop_duplicates("participant")[["participant"]].copy()
keys["vendor_id"] = keys["participant"].str.slice(1, 3)
keys["participant_id"] = keys["participant"].str.slice(5)
traits = keys.merge(people, on=["vendor_id", "participant_id"], how="left")
disclosed = traits.dropna(subset=list(TRAIT_COLUMNS), how="all")
if len(disclosed):
    long = disclosed.melt(value_vars=list(TRAIT_COLUMNS), var_name="trait", value_name="score").dropna()
    long["trait"] = long["trait"].str.removesuffix("_raw")
    fig = px.box(long, x="trait", y="score", color="trait", points=False,
                 title=f"BFI-2 personality traits ({len(disclosed):,} of {len(traits):,} participants disclosed)")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=50, b=10), showlegend=False, yaxis_range=[1, 5])
    st.plotly_chart(fig, width="stretch")
else:
    st.info("No BFI-2 traits are disclosed for the participants in this selection.")

with st.expander("Batches and archives per label and split"):
    arch = fl.groupby(["label", "split"]).agg(batches=("batch_idx", "nunique"),
                                              archives=("archive_idx", lambda s: len(set(zip(
                                                  fl.loc[s.index, "batch_idx"], s)))),
                                              files=("file_id", "size")).reset_index()
    st.dataframe(arch, hide_index=True, width="stretch")
