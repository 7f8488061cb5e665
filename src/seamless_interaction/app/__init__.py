"""The browser app (Streamlit): explore, download and review dyadic interactions.

Start it with ``seamless-interaction app`` or :func:`~seamless_interaction.app.launch.launch_app`.
Importing this package does not import Streamlit.
"""

__all__ = ["launch_app"]


def __getattr__(name: str):
    if name == "launch_app":
        from seamless_interaction.app.launch import launch_app

        return launch_app
    raise AttributeError(name)
