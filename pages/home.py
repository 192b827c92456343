"""Home: what the app does, this machine, where files live, the embedding cache, and the full
dataset's download."""

import streamlit as st

from core import config, embeddings
from core.demo import demo_mode, workspace
from core.downloads import DownloadError, download_horse_or_human, horse_or_human_dir
from core.reports import format_bytes
from core.runs import active_run
from core.system import gpu_names
from core.text import md
from ui.navigation import run_through_navigation

run_through_navigation()


@st.cache_data(ttl=600, show_spinner=False)
def cached_gpu_names() -> list[str]:
    return gpu_names()


def steps_ui() -> None:
    steps = [
        (
            "pages/data.py",
            "1. Data",
            "Pick the bundled sample, a folder or a zip; check it, split it, preview the augmentation, "
            "and ask which transfer-learning strategy fits it.",
        ),
        (
            "pages/train.py",
            "2. Train",
            "Fine-tune a new head (and the backbone's top layers), or fit a classical classifier on "
            "the backbone's features; follow accuracy and loss live.",
        ),
        (
            "pages/predict.py",
            "3. Predict",
            "Upload photos or take one with the camera; see what the model thinks, class by class, "
            "and where it looked.",
        ),
    ]
    for column, (page, label, text) in zip(st.columns(3), steps):
        with column.container(border=True, height="stretch"):  # equal card heights
            st.page_link(page, label=label)
            st.caption(text)


def machine_ui() -> None:
    gpus = cached_gpu_names()
    if gpus:
        st.success(f"GPU found: {', '.join(gpus)}. Training uses it, with mixed precision.")
    else:
        st.info("No GPU found: training runs on the CPU. The **quick** preset trains in minutes there.")
    space = workspace(st.session_state)
    if space.isolated:
        st.markdown(
            "Your uploads, splits and runs are your own: other visitors cannot see them, and they "
            "are deleted after two hours without a visit."
        )
    else:
        st.markdown(
            f"- Datasets are looked for in `{config.DATA_ROOT}`\n- Runs are kept in `{config.RUNS_DIR}`"
        )
        st.caption("Move them with the environment variables TLS_DATA_ROOT and TLS_RUNS_DIR.")
    running = active_run(space.runs_dir)
    if running:
        st.info(f"A training is running: **{md(running.name)}**.")
        st.page_link("pages/train.py", label="Follow it on the Train page", icon=":material/monitoring:")


def cache_ui() -> None:
    """The embedding cache: where, how large, and a confirmed button that empties it."""
    if "cache_flash" in st.session_state:
        st.success(st.session_state.pop("cache_flash"))
    cache = embeddings.EmbeddingCache(embeddings.CACHE_DIR)  # read now: TLS_CACHE_DIR or a test moves it
    try:
        files = cache.files()
        size = sum(f.stat().st_size for f in files)
    except OSError as exc:  # a training deleting old entries at this moment
        st.warning(f"Cannot measure the cache right now: {md(exc)}")
        return
    st.write(
        "Feature extraction and cached head training keep every image's backbone embedding, so "
        "a later run on the same images skips the backbone. "
        f"**{len(files):,} embeddings, {format_bytes(size)}** in `{cache.root}` "
        f"(the oldest are deleted above {format_bytes(cache.limit_bytes)})."
    )
    if not files:
        return
    if demo_mode():  # shared by every visitor: one must not empty it for all the others
        st.caption("The cache is shared by every visitor of this demo, so it cannot be cleared here.")
        return
    confirmed = st.checkbox(f"Yes, delete all {len(files):,} cached embeddings", key="confirm_clear_cache")
    if active_run(workspace(st.session_state).runs_dir):
        st.caption("A training is running: it recomputes any embedding it needs that is deleted.")
    if st.button("Clear the embedding cache", disabled=not confirmed, icon=":material/delete_sweep:"):
        try:
            freed = cache.clear()
        except OSError as exc:
            st.error(f"Cannot clear the cache: {md(exc)}")
            return
        st.session_state["cache_flash"] = f"Cleared the embedding cache: {format_bytes(freed)} freed."
        st.rerun()


def download_ui() -> None:
    target = horse_or_human_dir(config.DATA_ROOT)
    if (target / "train").is_dir():
        st.success(f"Downloaded: `{target}`. Choose it on the Data page under *A folder*.")
    st.write(
        "The bundled sample has 100 photos. The full set has 1,027 training and 256 validation "
        "photos (about 150 MB)."
    )
    if not st.button("Download the full horse-or-human dataset", icon=":material/download:"):
        return
    bar = st.progress(0.0, text="Connecting...")
    try:
        path = download_horse_or_human(config.DATA_ROOT, progress=lambda f, text: bar.progress(f, text=text))
    except DownloadError as exc:
        bar.empty()
        st.error(f"The download failed: {md(exc)}")
        return
    bar.empty()
    st.success(f"Downloaded and unpacked into `{path}`. Choose it on the Data page under *A folder*.")


st.title("Transfer Learning Studio")
st.markdown(
    "Train an image classifier on your own photos without writing code. The studio reuses a "
    "network pretrained on ImageNet (the *backbone*), freezes it, and trains a small new head "
    "on your classes, or a classical classifier on its features: a few minutes on a CPU, and "
    "accurate with a few hundred photos per class. The Checkpoints page evaluates every run."
)
steps_ui()
st.subheader("This machine")
machine_ui()
st.subheader("Embedding cache")
cache_ui()
st.subheader("The full horse-or-human dataset")
download_ui()
