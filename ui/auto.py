"""An auto run's leaderboard: live on the Train page, per run on Checkpoints."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.auto import AUTO_FILE, fine_tune_line, leaderboard_rows, read_auto
from core.plots import leaderboard_figure, learning_curve_figure
from core.text import md


def auto_leaderboard(run_dir: Path, key: str) -> None:
    """Why the winner won (or which candidate is being tried), every candidate, and what fine-tuning
    and more data would buy. `key` keeps the charts of two pages apart. A hand-edited or foreign
    auto.json that is not what a run writes is said, never a traceback."""
    try:
        _leaderboard(read_auto(run_dir), key)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
        st.warning(f"This run's {AUTO_FILE} is not as auto mode writes it ({md(problem)}): the run is fine.")


def _leaderboard(auto: dict | None, key: str) -> None:
    if not auto or not auto.get("candidates"):
        return
    winner = (auto.get("winner") or {}).get("name")
    if auto.get("reason"):
        st.markdown(f"**Chosen:** {auto['reason']}")
    elif auto.get("trying"):
        st.caption(f"Trying {auto['trying']}...")
    st.plotly_chart(leaderboard_figure(auto["candidates"], winner), key=f"{key}_leaderboard")
    if auto.get("learning_curve"):
        left, right = st.columns([3, 2], vertical_alignment="center")
        left.plotly_chart(learning_curve_figure(auto["learning_curve"]), key=f"{key}_learning_curve")
        right.caption(auto["learning_curve"]["reading"])
    if fine_tune_line(auto):
        st.caption(fine_tune_line(auto))
    with st.expander("Leaderboard"):
        st.dataframe(leaderboard_rows(auto), hide_index=True)
