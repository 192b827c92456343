"""Checkpoints: every run in a table; one run's config, curves and checkpoints; compare; delete."""

import functools
import time
from pathlib import Path

import streamlit as st

from core import config
from core.plots import accuracy_figure, compare_runs_figure, loss_figure
from core.reports import checkpoint_files, runs_table
from core.runs import RunError, RunSummary, delete_run, list_runs, read_json, read_metrics


def run_ui(run: RunSummary) -> None:
    """One run: its config, curves and checkpoints, with downloads."""
    epochs, _ = read_metrics(run.path)
    left, right = st.columns(2)
    left.plotly_chart(accuracy_figure(epochs), key="run_accuracy")
    right.plotly_chart(loss_figure(epochs), key="run_loss")
    with st.expander("Config"):
        st.json(read_json(run.path / "config.json", {}))
        st.caption(f"Classes: {', '.join(run.classes) or 'not known yet'} · folder `{run.path}`")
    checkpoints = checkpoint_files(run.path)
    if not checkpoints:
        st.info("This run has no checkpoint: it ended before its first epoch did.")
    for row in checkpoints:
        a, b = st.columns([3, 1], vertical_alignment="center")
        metric = (
            f" · {row['monitor']} {row['value']:.4f} at epoch {row['epoch']}" if row.get("monitor") else ""
        )
        modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["modified"]))
        a.markdown(f"**{row['checkpoint']}.keras** · {row['size_mb']:.1f} MB · saved {modified}{metric}")
        b.download_button(
            f"Download {row['checkpoint']}",
            data=functools.partial(Path.read_bytes, row["path"]),
            file_name=f"{run.name}-{row['checkpoint']}.keras",
            mime="application/octet-stream",
            key=f"download_{row['checkpoint']}",
            icon=":material/download:",
        )


def compare_ui(runs: list[RunSummary], selected: str) -> None:
    names = [r.name for r in runs]
    chosen = st.multiselect("Runs to compare", names, default=[selected])
    metric = st.radio(
        "Metric", ["val_accuracy", "val_loss", "accuracy", "loss"], horizontal=True, key="compare_metric"
    )
    curves = {name: read_metrics(runs[names.index(name)].path)[0] for name in chosen}
    st.plotly_chart(compare_runs_figure(curves, metric), key="compare_chart")


def delete_ui(run: RunSummary) -> None:
    confirmed = st.checkbox(f"Yes, delete {run.name} and its checkpoints", key=f"confirm_{run.name}")
    if st.button("Delete run", type="primary", disabled=not confirmed, icon=":material/delete:"):
        try:
            delete_run(run.path)
        except (RunError, OSError) as exc:
            st.error(f"Cannot delete: {exc}")
            return
        st.session_state["flash"] = f"Deleted {run.name}."
        st.rerun()


st.title("Checkpoints")
if "flash" in st.session_state:
    st.success(st.session_state.pop("flash"))
runs = list_runs(config.RUNS_DIR)
if not runs:
    st.info(f"No runs in `{config.RUNS_DIR}` yet: start one on the Train page.")
    st.stop()
st.dataframe(
    runs_table(runs),
    hide_index=True,
    column_config={"best val accuracy": st.column_config.NumberColumn(format="%.3f")},
)
names = [r.name for r in runs]
selected = st.selectbox("Run", names, help="newest first")
run = runs[names.index(selected)]
details, compare, delete = st.tabs(["Details", "Compare runs", "Delete"])
with details:
    run_ui(run)
with compare:
    compare_ui(runs, selected)
with delete:
    delete_ui(run)
