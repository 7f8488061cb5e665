"""The app as an ASGI application: Streamlit's pages plus the media route on the same origin.

``streamlit run serve.py`` finds ``app`` and runs it with uvicorn (Streamlit >= 1.53's ``st.App``);
:func:`seamless_interaction.app.launch.streamlit_command` builds that command line. The media route
(:mod:`seamless_interaction.app.media`) lives next to Streamlit's own routes, so one address and
port carry the page, its websocket and every video and audio byte.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit import config as _st_config

from seamless_interaction.app.media import media_routes

__all__ = ["app"]

# No Deploy button and no developer menu for the people using the app, however it is started.
st.set_option("client.toolbarMode", "viewer")
# `streamlit run` loads the command line's options before it imports this module.
app = st.App(str(Path(__file__).with_name("Welcome.py")),
             routes=media_routes(base_path=_st_config.get_option("server.baseUrlPath") or ""))
