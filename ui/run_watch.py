"""One run on the Train page: its phases and progress while it trains, then its result, scores,
curves, the auto leaderboard and the log; redrawn every POLL_SECONDS while it trains.

Everything is read from the run's files (TensorFlow stays in the training process).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.catalog import dataset_name
from core.plots import accuracy_figure, loss_figure
from core.progress_model import RunProgress, estimate, learned_rates
from core.reports import (
    completed_line,
    format_duration,
    progress_text,
    run_kind_line,
    score_tiles,
    stage2_start,
)
from core.runs import COMPLETED, STOPPED, RunDir, active_run
from core.text import code, md
from ui.auto import auto_leaderboard
from ui.state import CHECKPOINTS_TAB, EVALUATION_TAB, SHOW_RUN

POLL_SECONDS = 2
NEXT_PAGE = "next_page"  # where a "next step" button sends the user, on the rerun after its click
PHASE_MARKS = {
    "done": ":material/check_circle:",
    "current": ":material/pending:",
    "todo": ":material/circle:",
}


def watch_ui(run_dir: Path, runs_dir: Path, running: Path | None) -> None:
    """Show `run_dir`; while `running` (the page's one look at `active_run`) is a run, poll."""
    st.fragment(live_view, run_every=POLL_SECONDS if running else None)(run_dir, runs_dir, running)


def live_view(run_dir: Path, runs_dir: Path, running: Path | None) -> None:
    """The run's phases, progress and results. The page above was drawn with `running`; once
    `active_run` says otherwise, the whole page is redrawn (once), so its Start button and this
    view never disagree."""
    status = RunDir(run_dir).status()  # read before asking active_run: a run's state only moves forward
    epochs, batches = RunDir(run_dir).metrics()
    run_config = RunDir(run_dir).config()
    counts = RunDir(run_dir).dataset().get("counts") or {}
    rates = learned_rates(runs_dir, run_config.get("backbone", ""), run_config.get("image_size", 0))
    progress = estimate(status, run_config, counts, epochs, batches, rates)
    if running and active_run(runs_dir) != running:
        st.rerun()  # it ended (or another started): redraw the whole page, and stop polling
    st.subheader(f"Run {run_dir.name}")
    data = run_config.get("data", "?")
    st.caption(f"Dataset: **{md(dataset_name(data))}** ({code(data)})")
    features = run_config.get("mode") == "features"
    if progress.active:
        phases_caption(progress)
        st.progress(progress.fraction, text=progress_text(progress))
        if st.button("Stop", icon=":material/stop_circle:", key="stop"):
            RunDir(run_dir).request_stop()
            st.info("Stop requested: the run stops after the current batch and keeps its checkpoints.")
    elif progress.state == COMPLETED:
        st.success(completed_line(status, run_config, len(epochs)))
        phases_caption(progress)
        next_steps_ui(run_dir)
    elif progress.state == STOPPED:
        st.warning(f"Stopped after {len(epochs)} epochs. Its checkpoints are kept.")
    else:
        st.error(f"The run {progress.state}: {md(status.get('error') or 'no reason recorded')}")
        if not epochs:
            log_ui(run_dir)
            return  # no curves to draw: the reason stands in their place
    st.caption(run_kind_line(run_config.get("mode", "finetune"), status, run_config.get("classifier")))
    auto_leaderboard(run_dir, key="live")
    if epochs:
        scores_ui(epochs[-1], counts, features)
    if not features:  # feature extraction has no epochs: a curve would be one dot
        start2 = stage2_start(status, epochs)
        left, right = st.columns(2)
        left.plotly_chart(accuracy_figure(epochs, start2), key="accuracy_chart")
        right.plotly_chart(loss_figure(epochs, start2), key="loss_chart")
    log_ui(run_dir)


def phases_caption(progress: RunProgress) -> None:
    """ "✓ 1. Start-up 18 s → ● 2. Embedding images → ○ 3. Training → ○ 4. Evaluation"."""
    parts = []
    for i, phase in enumerate(progress.phases, 1):
        took = f" {format_duration(phase.seconds)}" if phase.state != "todo" and phase.seconds else ""
        name = f"**{phase.label}**" if phase.state == "current" else phase.label
        parts.append(f"{PHASE_MARKS[phase.state]} {i}. {name}{took}")
    st.caption(" → ".join(parts))


def next_steps_ui(run_dir: Path) -> None:
    """After a run: straight to its evaluation, or to classifying photos with it."""
    links = st.container(horizontal=True)
    evaluation = ("pages/checkpoints.py", {CHECKPOINTS_TAB: EVALUATION_TAB})
    links.button(
        "See its evaluation",
        icon=":material/fact_check:",
        on_click=_show_run,
        args=(run_dir, *evaluation),
        key="next_evaluation",
    )
    links.button(
        "Classify photos with it",
        icon=":material/image_search:",
        on_click=_show_run,
        args=(run_dir, "pages/predict.py", {}),
        key="next_predict",
    )
    if target := st.session_state.pop(NEXT_PAGE, None):
        st.switch_page(target)


def _show_run(run_dir: Path, page: str, state: dict) -> None:
    st.session_state.update({SHOW_RUN: run_dir.name, NEXT_PAGE: page, **state})


def scores_ui(last: dict, counts: dict, features: bool) -> None:
    """The latest scores as metric tiles, and what they mean."""
    tiles, notes = score_tiles(last, counts, features)
    for column, (label, value) in zip(st.columns(len(tiles)), tiles.items(), strict=True):
        column.metric(label, value)
    for note in notes:
        st.caption(note)


def log_ui(run_dir: Path) -> None:
    """The last 40 lines of the training process's output, folded."""
    log = RunDir(run_dir).train_log
    if log.is_file():
        with st.expander("Training log"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-40:]) or "(empty)", language=None)
