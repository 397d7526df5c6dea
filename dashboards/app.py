"""The SRE app: `streamwatch dashboards` runs `streamlit run dashboards/app.py`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# Not `pages/`: Streamlit would also discover that folder as a v1 multipage app and, for a
# first visit straight to a page URL, run the page without this navigation (no wide layout).
PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="streamwatch · SRE", layout="wide")
nav = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="QoE overview", default=True),
        st.Page(PAGES / "incidents.py", title="Incidents"),
        st.Page(PAGES / "pipeline.py", title="Pipeline health"),
        st.Page(PAGES / "capacity.py", title="Capacity"),
        st.Page(PAGES / "control_plane.py", title="Control plane"),
    ]
)
nav.run()
