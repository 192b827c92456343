"""One run's Details tab on Checkpoints: how it trained, its curves, config, Resume, checkpoints."""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from core.launch import launch_resume
from core.plots import accuracy_figure, loss_figure
from core.reports import checkpoint_files, checkpoint_line, one_fit_line, run_kind_line, stage2_start
from core.runs import BROKEN, RESUMABLE_STATES, RunDir, RunError, RunSummary
from core.text import code, md
from ui.auto import auto_leaderboard
from ui.state import FLASH, TRAIN_RUN

FLASH_TRAIN_LINK = "flash_train_link"  # session key: the flash after Resume links to the Train page


def run_details(run: RunSummary) -> None:
    """One run: how it trained, its curves, config and checkpoints, with downloads."""
    if run.state == BROKEN:
        st.error(f"This run folder is broken: {run.error}. Delete it on the Delete tab.")
        return
    folder = RunDir(run.path)
    status = folder.status()
    epochs, _ = folder.metrics()
    st.caption(run_kind_line(run.mode, status))
    resume_button(run)
    auto_leaderboard(run.path, key="run")
    if run.mode == "features" and epochs:
        st.caption(one_fit_line(epochs[-1]))
    else:
        start2 = stage2_start(status, epochs)
        left, right = st.columns(2)
        left.plotly_chart(accuracy_figure(epochs, start2), key="run_accuracy")
        right.plotly_chart(loss_figure(epochs, start2), key="run_loss")
    with st.expander("Config"):
        st.json(folder.config())
        st.caption(f"Classes: {md(', '.join(run.classes)) or 'not known yet'} · folder {code(run.path)}")
    checkpoint_downloads(run)


def resume_button(run: RunSummary) -> None:
    """A Resume button for a fine-tune run that stopped, was interrupted or failed."""
    if run.state not in RESUMABLE_STATES:
        return
    refusal = RunDir(run.path).resume_refusal()
    if refusal:
        st.caption(f"This run cannot resume: {refusal}.")
        return
    if not st.button("Resume", icon=":material/resume:", key="resume", help="continue from last.keras"):
        return
    try:
        launch_resume(run.path)
    except RunError as exc:
        st.error(f"Cannot resume: {md(exc)}")
        return
    st.session_state[TRAIN_RUN] = str(run.path)
    st.session_state[FLASH] = f"Resuming {run.name} from its last checkpoint."
    st.session_state[FLASH_TRAIN_LINK] = True
    st.rerun()


def checkpoint_downloads(run: RunSummary) -> None:
    """Each checkpoint file, what it holds, and a button to download it."""
    checkpoints = checkpoint_files(run.path)
    if not checkpoints:
        st.info("This run has no checkpoint: it ended before its first epoch did.")
    for row in checkpoints:
        a, b = st.columns([3, 1], vertical_alignment="center")
        a.markdown(checkpoint_line(row))
        b.download_button(
            f"Download {row['checkpoint']}",
            data=functools.partial(Path.read_bytes, row["path"]),
            file_name=f"{run.name}-{row['checkpoint']}.keras",
            mime="application/octet-stream",
            key=f"download_{row['checkpoint']}",
            icon=":material/download:",
        )
