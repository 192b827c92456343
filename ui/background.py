"""Watching a background job (`core.launch.BackgroundJob`: an export, Grad-CAM overlays) from
a page: how long it has run, then the whole page again once it has ended."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.launch import BackgroundJob
from core.reports import format_duration

JOB_POLL_S = 2.0  # how often a running background job is looked at


@st.fragment(run_every=JOB_POLL_S)
def job_progress(read_job: Callable[[], BackgroundJob | None], doing: str, then: str = "") -> None:
    """While `read_job()` runs, "<doing>: 12 s so far.<then>"; once it has ended, a rerun of
    the page, which shows the result or why it failed."""
    job = read_job()
    if not job or not job.running:
        st.rerun()
    st.info(f"{doing}: {format_duration(job.elapsed)} so far.{then}", icon=":material/hourglass_top:")
