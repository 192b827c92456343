"""Predict: classify uploaded photos, or one from the camera, with a trained run."""

from pathlib import Path

import streamlit as st

from core import config
from core.plots import probability_figure
from core.predict import CHECKPOINTS, Classifier, RunNotReadyError, checkpoint_path, load_classifier
from core.reports import predictable_runs
from core.runs import RunSummary, list_runs

IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"]


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_classifier(run_dir: str, checkpoint: str, mtime: float) -> Classifier:
    """One loaded model per (run, checkpoint, file mtime): a newer checkpoint is reloaded."""
    return load_classifier(run_dir, checkpoint)


def model_ui(runs: list[RunSummary]) -> tuple[RunSummary, str]:
    names = [r.name for r in runs]
    a, b = st.columns([3, 1])
    name = a.selectbox(
        "Run",
        names,
        format_func=lambda n: f"{n} ({runs[names.index(n)].state})",
        help="completed runs first, newest first",
    )
    run = runs[names.index(name)]
    available = [c for c in CHECKPOINTS if checkpoint_path(run.path, c).is_file()]
    checkpoint = b.radio("Checkpoint", available, horizontal=True, help="best: by the monitored metric")
    return run, checkpoint


def images_ui() -> list:
    """Uploaded files plus, when the camera is on, its photo."""
    files = st.file_uploader("Photos", type=IMAGE_TYPES, accept_multiple_files=True)
    sources = list(files or [])
    if st.toggle("Use the camera"):
        photo = st.camera_input("Take a photo")
        if photo is not None:
            sources.append(photo)
    return sources


def result_ui(source, result: dict) -> None:
    if "error" in result:
        st.warning(f"**{result['file']}** was skipped: {_reason(result['error'])}")
        return
    with st.container(border=True):
        left, right = st.columns([1, 2])
        left.image(source.getvalue(), caption=result["file"], width=240)
        confidence = result["probabilities"][result["label"]]
        right.markdown(f"### {result['label']}  \n{confidence:.1%} sure")
        right.plotly_chart(probability_figure(result["probabilities"]), key=f"probs_{result['index']}")


def _reason(error: str) -> str:
    if "UnidentifiedImageError" in error:  # its message repeats the upload object: say it plainly
        return "it is not an image this app can read."
    return error


st.title("Predict")
runs = predictable_runs(list_runs(config.RUNS_DIR))
if not runs:
    st.info("No trained model yet: train one on the Train page first.")
    st.stop()
run, checkpoint = model_ui(runs)
st.caption(f"Classes: {', '.join(run.classes)}")
sources = images_ui()
if not sources:
    st.info("Upload one or more photos, or turn on the camera.")
    st.stop()
path = checkpoint_path(run.path, checkpoint)
try:
    with st.spinner(f"Loading {run.name} ({checkpoint})..."):
        classifier = cached_classifier(str(run.path), checkpoint, path.stat().st_mtime)
except (RunNotReadyError, OSError) as exc:
    st.error(f"Cannot load this model: {exc}")
    st.stop()
except Exception as exc:  # a damaged or incompatible .keras file
    st.error(f"Cannot load {Path(path).name} of {run.name}: {type(exc).__name__}: {exc}")
    st.stop()
with st.spinner(f"Classifying {len(sources)} image(s)..."):
    results = classifier.predict(sources)
for index, (source, result) in enumerate(zip(sources, results)):
    result_ui(source, {**result, "index": index})
