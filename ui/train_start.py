"""Before Start on the Train page: the data's warnings, the Start button with the reason it is
disabled beside it, and the plan of what the run will do."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.catalog import dataset_signature
from core.checks import data_warnings
from core.config import ConfigError, TrainConfig
from core.data import DatasetError, scan_dataset
from core.reports import training_plan
from core.text import md


@st.cache_data(show_spinner=False, max_entries=16)
def dataset_counts(path: str, signature: float) -> dict:
    """{split: {class: n}} of the dataset (files listed, not decoded: a quick look)."""
    return scan_dataset(path, validate=False).counts()


def data_ui(dataset: str) -> list[str]:
    """The Data page's warnings again, here where they matter; returns why the dataset cannot
    train (one class, an empty class), if it cannot."""
    if not Path(dataset).is_dir():
        return []  # launch_problems says the folder is gone
    try:
        counts = dataset_counts(dataset, dataset_signature(dataset))
    except (DatasetError, OSError) as exc:
        return [f"Dataset: {exc}"]
    for warning in data_warnings(counts):
        st.warning(md(warning), icon=":material/warning:")
    return []


def start_ui(problems: list[str], notes: list[str], running: Path | None) -> bool:
    """The Start button; True when it was clicked and may launch. Disabled while anything would
    make the launch fail, with the first reason beside it, or while `running` trains (a wait,
    not an error)."""
    button, beside = st.columns([1, 3], vertical_alignment="center")
    clicked = button.button(
        "Start training",
        type="primary",
        icon=":material/play_arrow:",
        disabled=bool(problems or running),
        help=problems[0] if problems else None,
    )
    # Always one element here, so the rerun that enables Start replaces the last run's reason
    # at once instead of leaving it on screen (stale) until the whole page has been redrawn.
    reason = beside.empty()
    if problems:
        reason.error(f"Cannot start: {md(problems[0])}", icon=":material/block:")
    elif running:
        reason.info(
            f"A training is already running: {running.name}. Stop it or wait.", icon=":material/hourglass:"
        )
    for note in notes:
        beside.info(md(note), icon=":material/straighten:")
    return clicked and not problems and not running


def plan_ui(values: dict) -> None:
    """Before Start: which path the training will take, and why."""
    try:
        plan = training_plan(TrainConfig.from_dict(values))
    except (ConfigError, TypeError):
        return
    st.info("  \n".join(plan), icon=":material/route:")
