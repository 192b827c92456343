"""A run's Export tab on Checkpoints: export the best checkpoint in a chosen format, verified
against the Keras model, as a zip to download.

The export runs in the background (`core.launch.start_export`) and the page only watches it,
so the page answers meanwhile. What is shown is read from the run's exports folder for the
format chosen: another format's result never shows, and a result survives reruns and reloads.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from core.export import EXPORT_CHOICES, published_export
from core.launch import export_job, start_export
from core.runs import COMPLETED, RunError, RunSummary
from core.text import md
from ui.background import job_progress


def export_tab(run: RunSummary) -> None:
    """Choose a format, export it, and download the zip once it is verified."""
    if run.state != COMPLETED:
        st.info("Export a completed run.")
        return
    st.caption(
        "Each export is checked on validation images: it must agree with the Keras model on at "
        "least 99% of them. The zip holds the model, labels.json and a README on loading it."
    )
    choice = st.selectbox("Format", list(EXPORT_CHOICES), key=f"export_format_{run.name}")
    fmt, quantize = EXPORT_CHOICES[choice]
    job = export_job(run.path, fmt, quantize)
    running = bool(job and job.running)
    clicked = st.button(
        "Export and verify", icon=":material/package_2:", key=f"export_{run.name}", disabled=running
    )
    if clicked:
        try:
            start_export(run.path, fmt, quantize)
        except RunError as exc:
            st.error(f"Cannot export: {md(exc)}")
            return
        st.rerun()
    if running:  # the zip of an earlier export of this format is being replaced: no download now
        doing = f"Exporting {run.name} as {choice} and verifying it (TensorFlow loads first)"
        then = " You can keep using the page meanwhile."
        job_progress(functools.partial(export_job, run.path, fmt, quantize), doing, then)
        return
    if job and job.error:
        st.error(f"Cannot export: {md(job.error)}")
    result = published_export(run.path, fmt, quantize)
    if result:
        st.success(result.summary())
        st.download_button(
            "Download the zip",
            data=functools.partial(Path.read_bytes, result.path),
            file_name=result.path.name,
            mime="application/zip",
            icon=":material/download:",
            key=f"export_download_{run.name}",
        )
