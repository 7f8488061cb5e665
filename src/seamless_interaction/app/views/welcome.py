"""Welcome page: what the dataset is, its modalities, links, citation and a quick start."""

from __future__ import annotations

import streamlit as st

from seamless_interaction.app import data

st.title(":material/diversity_3: Seamless Interaction")
st.markdown(
    "A large-scale multimodal dataset of **4,000+ hours** of face-to-face, two-person conversations "
    "from **4,000+ participants**, recorded for research on virtual agents, telepresence and the "
    "non-verbal side of communication. Each *interaction* is a dyad: two participants, each with "
    "their own video, audio and per-frame features, on one clock."
)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Hours", "4,000+")
c2.metric("Participants", "4,000+")
c3.metric("Files", "129,370")
c4.metric("Interactions", "~64,700")
st.caption("Figures of the full release. The Overview page counts what the configured catalog holds.")

st.subheader("How the data is organised")
st.markdown(
    "- **Labels**: `improvised` (actors following a prompt, e.g. an IPC scenario) and "
    "`naturalistic` (free conversation on a prompt), each split into `train`, `dev` and `test`.\n"
    "- **File id** `V00_S0809_I00000582_P0947`: vendor, session, prompt (interaction), participant. "
    "An interaction key (`V00_S0809_I00000582`) groups the two participants of one conversation.\n"
    "- **Two routes**: single files from the CDN (a participant, a pair, a session) or whole "
    "WebDataset archives from the Hugging Face Hub (`label/split/batch/archive.tar`, ~1 GB each)."
)

st.subheader("Modalities (one bundle per participant)")
st.table({
    "File": [".mp4", ".wav", ".json", ".npz", ".npz", ".npz", ".json"],
    "Content": [
        "Video, H.264, 30 / 29.97 fps",
        "Audio, 48 kHz, speaker-bleed denoised",
        "Transcript (WhisperX words with times) and voice activity segments",
        "SMPL-H body pose, boxes and 133 COCO-WholeBody keypoints (all vendors)",
        "Imitator movement features: emotion valence/arousal/scores, facial action units, head "
        "rotation, gaze, expression (vendor V00)",
        "Imitator v4 features (being rolled out, `movement_v4:*`)",
        "Annotations: 1P/3P internal state, rationale, visual (a subset of files)",
    ],
})

st.subheader("Explore")
cols = st.columns(4)
cols[0].page_link("views/overview.py", label="Overview: statistics", icon=":material/bar_chart:")
cols[1].page_link("views/download.py", label="Download data", icon=":material/download:")
cols[2].page_link("views/viewer.py", label="Watch an interaction", icon=":material/movie:")
cols[3].page_link("views/files.py", label="Manage local files", icon=":material/folder_open:")

st.subheader("Quick start")
st.code(
    """from seamless_interaction.fs import SeamlessInteractionFS, DatasetConfig

fs = SeamlessInteractionFS(DatasetConfig(label="improvised", split="dev"))
pair = fs.get_interaction_pairs(num_pairs=1)[0]       # two file ids of one conversation
fs.download_batch_from_s3(pair)                        # .wav .mp4 .npz .json per participant
fs.download_archive_from_hf(0, batch=0)                # or a whole ~1 GB archive

from seamless_interaction.access.aligned import open_interaction
it = open_interaction(fs.local_dir, pair[0][:19], fs.catalog)
window = it.window(10.0, 14.0)                         # audio, features, VAD, words on one clock""",
    language="python",
)
st.markdown("Command line: `seamless-interaction download --pair V00_S0809_I00000582` · "
            "`seamless-interaction app` · `seamless-interaction demo --app` (offline sample).")

st.subheader("Links")
st.markdown(
    "- Paper and project page: "
    "[ai.meta.com](https://ai.meta.com/research/publications/seamless-interaction-dyadic-audiovisual-motion-modeling-and-large-scale-dataset/)\n"
    "- Data on the Hugging Face Hub: "
    "[facebook/seamless-interaction](https://huggingface.co/datasets/facebook/seamless-interaction)\n"
    "- Official toolkit: [facebookresearch/seamless_interaction](https://github.com/facebookresearch/seamless_interaction)\n"
    "- License: CC-BY-NC 4.0 (non-commercial research use)."
)

st.subheader("How to cite")
st.code(
    """@article{seamless_interaction,
  title={Seamless Interaction: Dyadic Audiovisual Motion Modeling and Large-Scale Dataset},
  author={Vasu Agrawal and Akinniyi Akinyemi and Kathryn Alvero and others},
  url={https://ai.meta.com/research/publications/seamless-interaction-dyadic-audiovisual-motion-modeling-and-large-scale-dataset/},
  year={2025}
}""",
    language="bibtex",
)

cfg = data.config()
with st.expander("This session's settings"):
    st.write({"local folder": str(cfg.local_dir), "CDN": cfg.cdn_url, "Hub": cfg.hf_url,
              "metadata tables": cfg.assets, "cache": str(cfg.cache_dir)})
