"""Predict: classify uploaded photos, or one from the camera, with a trained run, and show
where the model looked (Grad-CAM)."""

from pathlib import Path

import numpy as np
import streamlit as st

from core.data import load_image
from core.demo import workspace
from core.plots import probability_figure
from core.predict import (
    CHECKPOINTS,
    Classifier,
    RunNotReadyError,
    images_in_zip,
    load_classifier,
    predictions_summary,
    results_csv,
    table_row,
)
from core.reports import predictable_runs, run_label
from core.runs import RunDir, RunSummary, list_runs
from core.text import md
from core.uploads import UploadError
from ui.navigation import run_through_navigation
from ui.state import SHOW_RUN

run_through_navigation()

IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"]
CARDS_UP_TO = 12  # more photos than this are shown as one table with a CSV download
GRADCAM_MAX_SIDE = 480  # the overlay is drawn on the photo shrunk to at most this many pixels


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_classifier(run_dir: str, checkpoint: str, mtime: float) -> Classifier:
    """One loaded model per (run, checkpoint, file mtime): a newer checkpoint is reloaded."""
    return load_classifier(run_dir, checkpoint)


def model_ui(runs: list[RunSummary]) -> tuple[RunSummary, str]:
    names = [r.name for r in runs]
    if st.session_state.get(SHOW_RUN) in names:  # sent here from the Train page
        st.session_state["predict_run"] = st.session_state.pop(SHOW_RUN)
    a, b = st.columns([3, 1])
    name = a.selectbox(
        "Run",
        names,
        key="predict_run",
        format_func=lambda n: f"{run_label(runs[names.index(n)])} ({runs[names.index(n)].state})",
        help="completed runs first, newest first",
    )
    run = runs[names.index(name)]
    available = [c for c in CHECKPOINTS if RunDir(run.path).checkpoint(c).is_file()]
    checkpoint = b.radio("Checkpoint", available, horizontal=True, help="best: by the monitored metric")
    return run, checkpoint


def images_ui() -> list:
    """Uploaded files, the photos of an uploaded zip, and, when the camera is on, its photo."""
    files = st.file_uploader("Photos", type=IMAGE_TYPES, accept_multiple_files=True)
    sources = list(files or [])
    archive = st.file_uploader("Or a zip of photos (a whole folder at once)", type="zip", key="photos_zip")
    if archive is not None:
        try:
            sources += images_in_zip(archive)
        except UploadError as exc:
            st.error(f"That zip cannot be used: {exc}")
    if st.toggle("Use the camera", key="camera"):
        photo = st.camera_input("Take a photo")
        if photo is not None:
            sources.append(photo)
    return sources


@st.cache_data(max_entries=64, show_spinner=False)
def cached_overlay(_classifier: Classifier, model_key: tuple, data: bytes, class_index: int) -> np.ndarray:
    """The photo with its Grad-CAM heatmap for `class_index` blended over it."""
    from PIL import Image

    from core.gradcam import gradcam, overlay

    image = Image.fromarray(load_image(data))
    image.thumbnail((GRADCAM_MAX_SIDE, GRADCAM_MAX_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(image)
    return overlay(pixels, gradcam(_classifier.model, pixels, class_index))


def result_ui(source, result: dict, explain: Classifier | None = None) -> None:
    """One photo: label and probabilities; with `explain`, its Grad-CAM overlay beside it."""
    if "error" in result:
        st.warning(f"**{md(result['file'])}** was skipped: {md(result['error'])}")
        return
    with st.container(border=True):
        columns = st.columns([1, 1, 1.5] if explain else [1, 2])
        columns[0].image(source.getvalue(), caption=result["file"], width="stretch" if explain else 240)
        if explain:
            gradcam_ui(columns[1], source, result, explain)
        right = columns[-1]
        confidence = result.get("confidence", result["probabilities"][result["label"]])
        if result.get("unknown"):
            right.markdown(f"### None of these  \n(closest: {md(result['label'])})")
            right.caption(
                "This photo is further from every training photo than 95% of the validation photos "
                f"are (distance {result['openset_score']:.3f}): it is probably none of the classes."
            )
        else:
            right.markdown(f"### {md(result['label'])}  \n{confidence:.1%} sure")
        right.plotly_chart(probability_figure(result["probabilities"]), key=f"probs_{result['index']}")


def gradcam_ui(column, source, result: dict, classifier: Classifier) -> None:
    index = classifier.class_names.index(result["label"])
    model_key = (str(classifier.run_dir), classifier.checkpoint, id(classifier.model))
    try:
        heat = cached_overlay(classifier, model_key, source.getvalue(), index)
    except Exception as exc:  # an explanation that fails must not hide the prediction
        column.warning(f"Grad-CAM failed for this image: {type(exc).__name__}: {md(exc)}")
        return
    column.image(heat, caption=f"Grad-CAM: where it saw {result['label']}", width="stretch")


def table_ui(classifier: Classifier, sources: list) -> None:
    """Many photos: one table (file, label, probability, unknown) with a CSV download."""
    key = (str(classifier.run_dir), classifier.checkpoint, tuple(_source_name(s) for s in sources))
    if st.session_state.get("table_for") != key:
        bar = st.progress(0.0, text=f"Classifying {len(sources)} photos...")
        progress = lambda done, total: bar.progress(done / total, text=f"Classified {done} of {total} photos")
        st.session_state["table"] = [table_row(r) for r in classifier.predict_many(sources, progress)]
        st.session_state["table_for"] = key
        bar.empty()
    rows = st.session_state["table"]
    st.caption(md(predictions_summary(rows)))
    st.dataframe(rows, hide_index=True, key="predictions_table",
                 column_config={"probability": st.column_config.NumberColumn(format="%.3f"),
                                "confidence": st.column_config.NumberColumn(format="%.3f"),
                                "openset_score": st.column_config.NumberColumn(format="%.3f")})  # fmt: skip
    st.download_button(
        "Download as CSV",
        data=results_csv(rows),
        file_name="predictions.csv",
        mime="text/csv",
        icon=":material/download:",
        key="predictions_csv",
    )


def _source_name(source) -> str:
    return f"{getattr(source, 'name', '?')}:{getattr(source, 'size', None) or len(source.getvalue())}"


st.title("Predict")
runs = predictable_runs(list_runs(workspace(st.session_state).runs_dir))
if not runs:
    st.info("No trained model yet: train one on the Train page first.")
    st.stop()
run, checkpoint = model_ui(runs)
st.caption(f"Classes: {md(', '.join(run.classes))}")
sources = images_ui()
explain = st.toggle(
    "Show where the model looked (Grad-CAM)",
    key="gradcam",
    help="a heatmap of the regions that raised the predicted class's score most",
)
if not sources:
    st.info("Upload one or more photos, or turn on the camera.")
    st.stop()
path = RunDir(run.path).checkpoint(checkpoint)
try:
    with st.spinner(f"Loading {run.name} ({checkpoint})..."):
        classifier = cached_classifier(str(run.path), checkpoint, path.stat().st_mtime)
except (RunNotReadyError, OSError) as exc:
    st.error(f"Cannot load this model: {md(exc)}")
    st.stop()
except Exception as exc:  # a damaged or incompatible .keras file
    st.error(f"Cannot load {Path(path).name} of {md(run.name)}: {type(exc).__name__}: {md(exc)}")
    st.stop()
if explain:
    from core.gradcam import gradcam_refusal  # imports Keras: only once the toggle is on

    reason = gradcam_refusal(classifier)
    if reason:
        st.info(f"Grad-CAM is not available for this classifier: {reason}.")
        explain = False
if len(sources) > CARDS_UP_TO:
    table_ui(classifier, sources)
    st.stop()
with st.spinner(f"Classifying {len(sources)} image(s)..."):
    results = classifier.predict(sources)
for index, (source, result) in enumerate(zip(sources, results)):
    result_ui(source, {**result, "index": index}, classifier if explain else None)
