"""Every page runs inside the entrypoint's navigation, also when it is a fresh server's first request.

Streamlit decides, when its first session starts, that an app with a `pages/` folder is a
legacy multipage app, and keeps thinking so until the entrypoint has called `st.navigation`
once. Until then a deep link such as `/checkpoints` runs `pages/checkpoints.py` alone:
without our navigation, page titles or wide layout. A shared link to a restarted demo is
exactly that request.
"""

import runpy
from pathlib import Path

import streamlit as st

ENTRYPOINT = Path(__file__).resolve().parents[1] / "streamlit_app.py"


def run_through_navigation() -> None:
    """Call first in every page: in a legacy run, run the entrypoint instead, and stop.

    The entrypoint's navigation finds the page that was asked for (both derive its page hash
    from the file name) and runs it inside the app, in this same script run, so nothing the
    user did (a click, a link's query) is lost. From then on Streamlit runs the entrypoint
    itself: `st.navigation` ends the legacy mode for the whole server.
    """
    from streamlit.runtime.pages_manager import PagesManager  # no public switch for this

    if PagesManager.uses_pages_directory:
        runpy.run_path(str(ENTRYPOINT))
        st.stop()
