"""Checkpoints: every run in a table; one run's details, evaluation and checkpoints; resume;
compare; delete.

Never imports Keras: a split is evaluated by `python -m core.evaluate` in a subprocess.
"""

import functools
import time
from pathlib import Path

import streamlit as st

from core.demo import demo_mode, workspace
from core.evaluate import cell_images, load_evaluation
from core.evaluation_plots import (
    confusion_matrix_figure,
    per_class_metrics_figure,
    pr_figure,
    reliability_figure,
    roc_figure,
    with_clickable_cells,
)
from core.launch import launch_resume, run_evaluation, run_export
from core.plots import (
    accuracy_figure,
    compare_runs_figure,
    loss_figure,
)
from core.reports import (
    EVALUATION_SPLITS,
    cache_line,
    checkpoint_files,
    evaluable_splits,
    gallery_caption,
    head_training_line,
    run_label,
    runs_table,
    stage2_start,
)
from core.runs import (
    ACTIVE_STATES,
    BROKEN,
    RESUMABLE_STATES,
    RunDir,
    RunError,
    RunSummary,
    delete_run,
    list_runs,
    read_metrics,
    read_status,
)
from core.text import code, md
from ui.auto import auto_leaderboard
from ui.state import CHECKPOINTS_TAB, EVALUATION_TAB, FLASH, SHOW_RUN, TRAIN_RUN

EVALUATE_TIMEOUT_S = 1800
GALLERY_COLUMNS = 6
CELL_PHOTOS = 24  # photos shown for one confusion-matrix cell


def run_ui(run: RunSummary) -> None:
    """One run: how it trained, its curves, config and checkpoints, with downloads."""
    if run.state == BROKEN:
        st.error(f"This run folder is broken: {run.error}. Delete it on the Delete tab.")
        return
    status = read_status(run.path)
    run_config = RunDir(run.path).config()
    epochs, _ = read_metrics(run.path)
    kinds = {"auto": "auto", "features": "feature extraction"}
    details = [f"Kind: **{kinds.get(run.mode, 'fine-tune')}**"]
    if head_training_line(status):
        details.append(f"head training: **{head_training_line(status)}**")
    if cache_line(status):
        details.append(f"embeddings: {cache_line(status)}")
    st.caption(" · ".join(details))
    resume_ui(run)
    auto_leaderboard(run.path, key="run")
    if run.mode == "features" and epochs:  # one fit, no epochs: a curve would be one dot
        last = epochs[-1]
        st.caption(
            f"One fit on the embeddings: validation accuracy {last.get('val_accuracy', 0):.3f}, "
            f"macro F1 {last.get('val_macro_f1', 0):.3f}; training accuracy {last.get('accuracy', 0):.3f}."
        )
    else:
        start2 = stage2_start(status, epochs)
        left, right = st.columns(2)
        left.plotly_chart(accuracy_figure(epochs, start2), key="run_accuracy")
        right.plotly_chart(loss_figure(epochs, start2), key="run_loss")
    with st.expander("Config"):
        st.json(run_config)
        st.caption(f"Classes: {md(', '.join(run.classes)) or 'not known yet'} · folder {code(run.path)}")
    checkpoints_ui(run)


def resume_ui(run: RunSummary) -> None:
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
    st.session_state["flash_train_link"] = True
    st.rerun()


def checkpoints_ui(run: RunSummary) -> None:
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


def evaluation_ui(run: RunSummary) -> None:
    """The run's evaluation per split, and a button for each split not evaluated yet."""
    evaluation = load_evaluation(run.path)
    done = [s for s in EVALUATION_SPLITS if s in evaluation]
    choice, actions = st.columns([2, 1], vertical_alignment="bottom")
    with actions:  # runs first: a new evaluation selects its split before the radio is drawn
        evaluate_ui(run, [s for s in evaluable_splits(run.path) if s not in done])
    if not done:
        st.info("This run has not been evaluated yet.")
        return
    with choice:
        split = st.radio("Split", done, horizontal=True, key="evaluation_split")
    result_ui(run.path, evaluation[split])


def evaluate_ui(run: RunSummary, splits: list[str]) -> None:
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
    st.session_state["evaluation_split"] = split
    st.rerun()


def result_ui(run_dir: Path, result: dict) -> None:
    """One split's scores, confusion matrix, per-class scores, curves and galleries."""
    n, wrong = result["num_images"], result["num_misclassified"]
    columns = st.columns(5 if result.get("roc") else 4)
    columns[0].metric("Accuracy", f"{result['accuracy']:.3f}", help=f"{n - wrong} of {n} images right")
    columns[1].metric("Macro F1", f"{result['macro']['f1']:.3f}", help="the mean of the classes' F1")
    columns[2].metric("Loss", f"{result['loss']:.4f}", help="mean cross-entropy")
    columns[3].metric("Misclassified", f"{wrong} of {n}")
    if result.get("roc"):
        columns[4].metric("ROC AUC", f"{result['roc']['auc']:.3f}")
    evaluated = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.get("evaluated_at") or 0))
    skipped = f" · {len(result['skipped'])} unreadable image(s) left out" if result.get("skipped") else ""
    st.caption(f"The {result['checkpoint']} checkpoint on the {result['split']} split, {evaluated}{skipped}")
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
    cell_ui(run_dir, result, clicked)
    trust_ui(result)
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
    misclassified, top = result.get("misclassified") or [], result.get("top_losses") or []
    has_gradcam = any(entry.get("gradcam_thumbnail") for entry in misclassified + top)
    show_gradcam = has_gradcam and st.toggle("Show where the model looked (Grad-CAM)", key="gallery_gradcam")
    wrong_tab, loss_tab = st.tabs([f"Misclassified ({len(misclassified)})", f"Highest loss ({len(top)})"])
    with wrong_tab:
        gallery_ui(
            run_dir,
            misclassified,
            f"No image of the {result['split']} split was misclassified.",
            show_gradcam,
        )
    with loss_tab:
        st.caption("The images the model was least sure of, right or wrong.")
        gallery_ui(run_dir, top, "No images.", show_gradcam)


def cell_ui(run_dir: Path, result: dict, clicked) -> None:
    """The photos behind one confusion-matrix cell: the one clicked, or the one chosen below."""
    if not result.get("predictions"):
        return
    names = result["class_names"]
    points = (clicked or {}).get("selection", {}).get("points") or []
    click = (points[0].get("y"), points[0].get("x")) if points else None
    if click != st.session_state.get("cell_click") and set(click or ()) <= set(names):
        # A new click picks the cell; the boxes stay free to pick another until the next click.
        st.session_state["cell_click"] = click
        if click:
            st.session_state["cell_true"], st.session_state["cell_predicted"] = click
    with st.expander("The photos behind a cell (click one in the matrix, or choose)", expanded=bool(points)):
        a, b = st.columns(2)
        true = a.selectbox("True class", names, key="cell_true", index=None)
        predicted = b.selectbox("Predicted class", names, key="cell_predicted", index=None)
        if true is None or predicted is None:
            return
        cell = cell_images(result, names.index(true), names.index(predicted))
        which = f"**{md(true)}** predicted **{md(predicted)}**"
        st.caption(f"{len(cell)} photo(s) of {which}, least confident first.")
        columns = st.columns(GALLERY_COLUMNS)
        for i, entry in enumerate(cell[:CELL_PHOTOS]):
            column = columns[i % GALLERY_COLUMNS]
            if Path(entry["file"]).is_file():
                column.image(entry["file"], width="stretch")
            gradcam = _thumbnail(run_dir, entry.get("gradcam_thumbnail"))
            if gradcam:
                column.image(str(gradcam), caption="Grad-CAM: where it looked", width="stretch")
            column.caption(md(f"{Path(entry['file']).name}: {predicted} {entry['confidence']:.1%}"))
        if len(cell) > CELL_PHOTOS:
            st.caption(f"... and {len(cell) - CELL_PHOTOS} more.")


def trust_ui(result: dict) -> None:
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


def gallery_ui(run_dir: Path, entries: list[dict], empty: str, show_gradcam: bool = False) -> None:
    if not entries:
        st.success(empty)
        return
    columns = st.columns(GALLERY_COLUMNS)
    for i, entry in enumerate(entries):
        column = columns[i % GALLERY_COLUMNS]
        thumbnail = _thumbnail(run_dir, entry.get("thumbnail"))
        gradcam = _thumbnail(run_dir, entry.get("gradcam_thumbnail")) if show_gradcam else None
        if thumbnail:
            column.image(str(thumbnail), caption=gallery_caption(entry), width="stretch")
        if gradcam:
            column.image(str(gradcam), caption="Grad-CAM: where it looked", width="stretch")
        else:
            column.caption(md(f"{Path(entry.get('file', '?')).name}: {gallery_caption(entry)}"))


def _thumbnail(run_dir: Path, relative: str | None) -> Path | None:
    """The thumbnail file, if it exists inside the run folder."""
    if not relative:
        return None
    path = (run_dir / relative).resolve()
    return path if path.is_relative_to(run_dir.resolve()) and path.is_file() else None


def compare_ui(runs: list[RunSummary], selected: str) -> None:
    names = [r.name for r in runs]
    chosen = st.multiselect(
        "Runs to compare", names, default=[selected], format_func=lambda n: run_label(runs[names.index(n)])
    )
    metric = st.radio(
        "Metric",
        ["val_accuracy", "val_loss", "val_macro_f1", "accuracy", "loss"],
        horizontal=True,
        key="compare_metric",
    )
    curves = {
        run_label(runs[names.index(name)]): read_metrics(runs[names.index(name)].path)[0] for name in chosen
    }
    st.plotly_chart(compare_runs_figure(curves, metric), key="compare_chart")


EXPORT_FORMATS = {
    "Keras (.keras)": ("keras", None),
    "TensorFlow SavedModel": ("savedmodel", None),
    "TFLite, float32": ("tflite", None),
    "TFLite, float16 (half the size)": ("tflite", "float16"),
    "TFLite, int8 (a quarter of the size; refused if it disagrees)": ("tflite", "int8"),
    "ONNX (onnxruntime and other ONNX runtimes)": ("onnx", None),
}


def export_ui(run: RunSummary) -> None:
    """Export the best checkpoint, verified against the Keras model, as a zip to download."""
    if run.state != "completed":
        st.info("Export a completed run.")
        return
    st.caption(
        "Each export is checked on validation images: it must agree with the Keras model on at "
        "least 99% of them. The zip holds the model, labels.json and a README on loading it."
    )
    choice = st.selectbox("Format", list(EXPORT_FORMATS), key=f"export_format_{run.name}")
    if st.button("Export and verify", icon=":material/package_2:", key=f"export_{run.name}"):
        fmt, quantize = EXPORT_FORMATS[choice]
        with st.spinner(f"Exporting {run.name} as {choice} and verifying it...", show_time=True):
            try:
                summary, zip_path = run_export(run.path, fmt, quantize, EVALUATE_TIMEOUT_S)
            except RunError as exc:
                st.error(f"Cannot export: {md(exc)}")
                return
        st.session_state[f"export_{run.name}_result"] = (choice, summary, str(zip_path))
    result = st.session_state.get(f"export_{run.name}_result")
    if result and result[0] == choice:  # a result for another format is not this one's
        _, summary, zip_path = result
        st.success(summary)
        st.download_button(
            "Download the zip",
            data=functools.partial(Path.read_bytes, Path(zip_path)),
            file_name=Path(zip_path).name,
            mime="application/zip",
            icon=":material/download:",
            key=f"export_download_{run.name}",
        )


def delete_ui(run: RunSummary) -> None:
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
    if st.session_state.pop("flash_train_link", False):
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
    run_ui(run)
with evaluation:
    evaluation_ui(run)
with compare:
    compare_ui(runs, selected)
with export:
    export_ui(run)
with delete:
    delete_ui(run)
