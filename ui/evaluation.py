"""A run's Evaluation tab on Checkpoints: per split, its scores, charts and trust numbers, and
a button for each split not evaluated yet (`python -m core.evaluate` runs in a subprocess)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.evaluate import load_evaluation
from core.evaluation_plots import (
    confusion_matrix_figure,
    per_class_metrics_figure,
    pr_figure,
    reliability_figure,
    roc_figure,
    with_clickable_cells,
)
from core.launch import run_evaluation
from core.reports import EVALUATION_SPLITS, evaluable_splits, evaluation_caption
from core.runs import ACTIVE_STATES, RunDir, RunError, RunSummary
from core.text import md
from ui.evaluation_photos import cell_photos, galleries
from ui.state import FLASH

EVALUATE_TIMEOUT_S = 1800
EVALUATION_SPLIT = "evaluation_split"  # session key: the split whose evaluation is shown


def evaluation_tab(run: RunSummary) -> None:
    """The run's evaluation per split, and a button for each split not evaluated yet."""
    evaluation = load_evaluation(run.path)
    done = [s for s in EVALUATION_SPLITS if s in evaluation]
    choice, actions = st.columns([2, 1], vertical_alignment="bottom")
    with actions:  # runs first: a new evaluation selects its split before the radio is drawn
        evaluate_buttons(run, [s for s in evaluable_splits(run.path) if s not in done])
    if not done:
        st.info("This run has not been evaluated yet.")
        return
    with choice:
        split = st.radio("Split", done, horizontal=True, key=EVALUATION_SPLIT)
    split_result(run.path, evaluation[split])


def evaluate_buttons(run: RunSummary, splits: list[str]) -> None:
    """'Evaluate on <split>' for each split; a click evaluates and reruns showing that split."""
    if not splits:
        return
    if run.state in ACTIVE_STATES:
        st.caption("The run is still training: evaluate it once it has finished.")
        return
    if not RunDir(run.path).checkpoint("best").is_file():
        st.caption("This run has no best checkpoint to evaluate.")
        return
    buttons = st.container(horizontal=True, horizontal_alignment="right")
    clicked = [
        s
        for s in splits
        if buttons.button(
            f"Evaluate on {s}",
            key=f"evaluate_{s}",
            icon=":material/fact_check:",
            help=f"classify every {s} image with the best checkpoint and measure how it did",
        )
    ]
    if not clicked:
        return
    split = clicked[0]
    with st.spinner(f"Evaluating the best checkpoint on {split} (TensorFlow loads first)...", show_time=True):
        try:
            message = run_evaluation(run.path, split, EVALUATE_TIMEOUT_S)
        except RunError as exc:
            st.error(f"Cannot evaluate on {split}: {md(exc)}")
            return
    st.session_state[FLASH] = f"Evaluated {md(message)}"
    st.session_state[EVALUATION_SPLIT] = split
    st.rerun()


def split_result(run_dir: Path, result: dict) -> None:
    """One split's scores, confusion matrix, per-class scores, curves and galleries."""
    n, wrong = result["num_images"], result["num_misclassified"]
    columns = st.columns(5 if result.get("roc") else 4)
    columns[0].metric("Accuracy", f"{result['accuracy']:.3f}", help=f"{n - wrong} of {n} images right")
    columns[1].metric("Macro F1", f"{result['macro']['f1']:.3f}", help="the mean of the classes' F1")
    columns[2].metric("Loss", f"{result['loss']:.4f}", help="mean cross-entropy")
    columns[3].metric("Misclassified", f"{wrong} of {n}")
    if result.get("roc"):
        columns[4].metric("ROC AUC", f"{result['roc']['auc']:.3f}")
    st.caption(evaluation_caption(result))
    left, right = st.columns(2)
    clicked = left.plotly_chart(
        with_clickable_cells(
            confusion_matrix_figure(result["confusion_matrix"], result["class_names"]), result["class_names"]
        ),
        key="confusion_matrix",
        on_select="rerun",
        selection_mode="points",
    )
    right.plotly_chart(per_class_metrics_figure(result["per_class"]), key="per_class_chart")
    cell_photos(run_dir, result, clicked)
    trust_metrics(result)
    st.dataframe(
        [{"class": name, **scores} for name, scores in result["per_class"].items()],
        hide_index=True,
        column_config={
            m: st.column_config.NumberColumn(format="%.3f") for m in ("precision", "recall", "f1")
        },
    )
    if result.get("roc") and result.get("pr"):
        positive = result["class_names"][1]
        st.caption(f"Curves for 2 classes: **{md(positive)}** is the positive class.")
        left, right = st.columns(2)
        left.plotly_chart(roc_figure(result["roc"]), key="roc_chart")
        right.plotly_chart(pr_figure(result["pr"]), key="pr_chart")
    galleries(run_dir, result)


def trust_metrics(result: dict) -> None:
    """Calibration (ECE before and after temperature scaling) and the open-set threshold."""
    calibration, openset = result.get("calibration"), result.get("openset")
    if not calibration or not openset:
        return
    a, b, c, d = st.columns(4)
    a.metric("Calibration error (ECE)", f"{calibration['ece_before']:.3f}", help="expected calibration error")
    b.metric("ECE, calibrated", f"{calibration['ece_after']:.3f}",
             help=f"after temperature scaling, T = {calibration['temperature']:.2f}")  # fmt: skip
    c.metric("'None of these' threshold", f"{openset['threshold']:.3f}",
             help="cosine distance to the nearest training photo above which a photo is unknown")  # fmt: skip
    d.metric("Rejected as unknown", f"{openset['rejected']:.1%}", help="of this split's photos")
    st.plotly_chart(reliability_figure(calibration), key="reliability_chart")
