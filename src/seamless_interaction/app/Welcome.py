"""Entry point of the browser app: ``streamlit run src/seamless_interaction/app/Welcome.py``.

Registers the pages (``views/``) with ``st.navigation`` and draws the shared sidebar: the local
folder every page works on and where the data comes from. ``seamless-interaction app`` runs this
file through :func:`seamless_interaction.app.launch.launch_app`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from seamless_interaction.app import data
from seamless_interaction.app.progress import format_bytes

# A local icon: a Material icon as page_icon is fetched from fonts.gstatic.com, which a tunnel or an
# offline cluster node cannot reach.
st.set_page_config(page_title="Seamless Interaction", page_icon=str(Path(__file__).with_name("icon.svg")),
                   layout="wide")

_VIEWS = Path(__file__).parent / "views"
pages = [
    st.Page(_VIEWS / "welcome.py", title="Welcome", icon=":material/home:", default=True),
    st.Page(_VIEWS / "overview.py", title="Overview", icon=":material/bar_chart:", url_path="overview"),
    st.Page(_VIEWS / "download.py", title="Download", icon=":material/download:", url_path="download"),
    st.Page(_VIEWS / "viewer.py", title="Interaction viewer", icon=":material/movie:", url_path="viewer"),
    st.Page(_VIEWS / "files.py", title="File management", icon=":material/folder_open:", url_path="files"),
]
page = st.navigation(pages)

with st.sidebar:
    data.local_dir()  # seeds the widget's state from the launch setting on the first run
    st.text_input("Local dataset folder", key=data.LOCAL_DIR_KEY,
                  help="Where downloads go and where the viewer and file manager look.")
    cfg = data.config()
    inv = data.inventory()
    st.caption(f"{len(inv.complete_ids)} complete file id(s), {format_bytes(inv.size_bytes)} on disk")
    if data.is_mirror(cfg):
        st.caption(f"Data source: mirror at `{str(cfg.cdn_url).rsplit('/', 1)[0]}`")
    else:
        st.caption("Data source: dl.fbaipublicfiles.com (files) and huggingface.co (archives)")

page.run()
