"""Checkpoints: every run in a table; one run's details, evaluation and checkpoints; resume;
compare; export; delete.

Never imports Keras: evaluation and export run in `python -m core.evaluate` / `core.export`.
Each tab is a section in `ui/`; comparing and deleting, a few lines each, are here.
"""

import streamlit as st

from core.demo import demo_mode, workspace
from core.plots import compare_runs_figure
from core.reports import run_label, runs_table
from core.runs import RunDir, RunError, RunSummary, delete_run, list_runs
from core.text import md
from ui.evaluation import evaluation_tab
from ui.export import export_tab
from ui.navigation import run_through_navigation
from ui.run_details import FLASH_TRAIN_LINK, run_details
from ui.state import CHECKPOINTS_TAB, EVALUATION_TAB, FLASH, SHOW_RUN

run_through_navigation()

COMPARED_METRICS = ["val_accuracy", "val_loss", "val_macro_f1", "accuracy", "loss"]


def compare_tab(runs: list[RunSummary], selected: str) -> None:
    """One metric's curves for the runs chosen (the selected run to begin with)."""
    by_name = {r.name: r for r in runs}
    chosen = st.multiselect(
        "Runs to compare", list(by_name), default=[selected], format_func=lambda n: run_label(by_name[n])
    )
    metric = st.radio("Metric", COMPARED_METRICS, horizontal=True, key="compare_metric")
    curves = {run_label(by_name[name]): RunDir(by_name[name].path).metrics()[0] for name in chosen}
    st.plotly_chart(compare_runs_figure(curves, metric), key="compare_chart")


def delete_tab(run: RunSummary) -> None:
    """Delete the run and its checkpoints, once confirmed (never in the demo)."""
    if demo_mode():
        st.info("Deleting runs is turned off in this demo.")
        return
    confirmed = st.checkbox(f"Yes, delete {run.name} and its checkpoints", key=f"confirm_{run.name}")
    if st.button("Delete run", type="primary", disabled=not confirmed, icon=":material/delete:"):
        try:
            delete_run(run.path)
        except (RunError, OSError) as exc:
            st.error(f"Cannot delete: {md(exc)}")
            return
        st.session_state[FLASH] = f"Deleted {run.name}."
        st.rerun()


st.title("Checkpoints")
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))
    if st.session_state.pop(FLASH_TRAIN_LINK, False):
        st.page_link("pages/train.py", label="Follow it on the Train page", icon=":material/monitoring:")
space = workspace(st.session_state)  # in the demo, this visitor's own runs only
runs = list_runs(space.runs_dir)
if not runs:
    st.info(f"No runs in `{space.runs_dir}` yet: start one on the Train page.")
    st.stop()
st.dataframe(runs_table(runs), hide_index=True)
names = [r.name for r in runs]
if st.session_state.get(SHOW_RUN) in names:  # sent here from another page to see this run
    st.session_state["checkpoints_run"] = st.session_state.pop(SHOW_RUN)
selected = st.selectbox(
    "Run",
    names,
    format_func=lambda n: run_label(runs[names.index(n)]),
    help="newest first",
    key="checkpoints_run",
)
run = runs[names.index(selected)]
# Keyed and tracked, so a rerun (an evaluation finishing, a message above) keeps the tab open.
details, evaluation, compare, export, delete = st.tabs(
    ["Details", EVALUATION_TAB, "Compare runs", "Export", "Delete"], key=CHECKPOINTS_TAB, on_change="rerun"
)
with details:
    run_details(run)
with evaluation:
    evaluation_tab(run)
with compare:
    compare_tab(runs, selected)
with export:
    export_tab(run)
with delete:
    delete_tab(run)
