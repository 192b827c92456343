"""Train: a form of every knob, then the run's live progress and curves.

Training runs in its own process (`python -m core.train`, started by core.runs); this
page only writes a config and reads the run's files, so it never imports Keras.
"""

from pathlib import Path

import streamlit as st

from core import config
from core.backbones import BACKBONES
from core.config import MONITORS, OPTIMIZERS, POOLINGS, PRESETS, ConfigError, TrainConfig
from core.plots import accuracy_figure, loss_figure
from core.reports import Progress, format_duration, run_progress
from core.runs import (
    COMPLETED,
    STOPPED,
    RunError,
    active_run,
    launch_training,
    list_runs,
    read_metrics,
    read_status,
    request_stop,
)

PRESET_NOTES = {
    "seed": "the reference recipe: InceptionV3, Flatten, Dense(1024), RMSprop, 30 epochs (slow on a CPU)",
    "quick": "small and fast: MobileNetV2 x0.35 at 160 px, 5 epochs (minutes on a CPU)",
}
POLL_SECONDS = 2


def knobs_ui(preset: dict, key: str) -> dict:
    """Every TrainConfig knob, starting from `preset`; returns the chosen values.

    Widget keys carry the preset's name, so choosing another preset resets the form to it.
    """
    k = lambda name: f"{key}:{name}"  # noqa: E731
    backbones = list(BACKBONES)
    values = {}
    values["backbone"] = st.selectbox(
        "Backbone",
        backbones,
        index=backbones.index(preset["backbone"]),
        format_func=lambda name: f"{name}: {BACKBONES[name].description}",
        key=k("backbone"),
        help="the network pretrained on ImageNet whose features the new head learns from",
    )
    a, b, c = st.columns(3)  # filled row by row: a, b, c, a, b, c, ...
    values["image_size"] = int(
        a.number_input("Image size (px)", 32, 1024, preset["image_size"], 32, key=k("image_size"))
    )
    values["pooling"] = b.radio(
        "Pooling", POOLINGS, POOLINGS.index(preset["pooling"]), horizontal=True, key=k("pooling")
    )
    values["dense_units"] = int(
        c.number_input(
            "Dense units", 0, 8192, preset["dense_units"], 64, key=k("dense"), help="0: no hidden layer"
        )
    )
    values["dropout"] = a.slider("Dropout", 0.0, 0.9, float(preset["dropout"]), 0.05, key=k("dropout"))
    values["optimizer"] = b.selectbox(
        "Optimizer", OPTIMIZERS, OPTIMIZERS.index(preset["optimizer"]), key=k("optimizer")
    )
    values["learning_rate"] = c.number_input(
        "Learning rate", 1e-6, 1.0, float(preset["learning_rate"]), 1e-4, format="%.5f", key=k("lr")
    )
    values["batch_size"] = int(a.number_input("Batch size", 1, 1024, preset["batch_size"], key=k("batch")))
    values["epochs"] = int(b.number_input("Epochs", 1, 1000, preset["epochs"], key=k("epochs")))
    values["patience"] = int(
        c.number_input(
            "Early-stopping patience",
            0,
            1000,
            preset["patience"],
            key=k("patience"),
            help="stop after this many epochs without improvement; 0 never stops early",
        )
    )
    values["monitor"] = a.selectbox(
        "Monitor",
        MONITORS,
        MONITORS.index(preset["monitor"]),
        key=k("monitor"),
        help="what best.keras and early stopping track",
    )
    values["val_split"] = b.slider(
        "Validation split",
        0.05,
        0.5,
        float(preset["val_split"]),
        0.05,
        key=k("val_split"),
        help="used only for a dataset that is not split already",
    )
    values["seed"] = int(c.number_input("Seed", 0, 2**31 - 1, preset["seed"], key=k("seed")))
    pretrained = st.checkbox(
        "Start from ImageNet weights",
        True,
        key=k("weights"),
        help="off: random weights, only for testing the plumbing",
    )
    values["weights"] = "imagenet" if pretrained else None
    return values


def augment_ui(preset: dict, key: str) -> dict:
    """The Data page's augmentation, or the preset's; returns it as a dict."""
    from_data = st.session_state.get("augment")
    options = ["Data page", "preset"] if from_data is not None else ["preset"]
    choice = st.radio(
        "Augmentation", options, horizontal=True, key=f"{key}:augment", help="set it on the Data page"
    )
    augment = from_data if choice == "Data page" else preset["augment"]
    shown = {k: v for k, v in augment.items() if v and v != "nearest"} or "none"
    st.caption(f"Augmentation: {shown}")
    return augment


def start(values: dict) -> None:
    """Validate and launch; errors in the user's words."""
    try:
        train_config = TrainConfig.from_dict(values)
        train_config.validate()
        if not Path(train_config.data).is_dir():
            raise ConfigError(f"data: the dataset folder is gone: {train_config.data}")
        with st.spinner("Starting the training process..."):
            run_dir = launch_training(train_config, config.RUNS_DIR)
    except ConfigError as exc:
        st.error(f"Check the settings: {exc}")
    except RunError as exc:
        st.error(f"Cannot start: {exc}")
    else:
        st.session_state["train_run"] = str(run_dir)
        st.toast(f"Started {run_dir.name}", icon=":material/rocket_launch:")


def watched_run() -> Path | None:
    """The active run, else the one started from this session, else the newest."""
    running = active_run(config.RUNS_DIR)
    if running:
        return running
    mine = st.session_state.get("train_run")
    if mine and Path(mine, "config.json").is_file():
        return Path(mine)
    runs = list_runs(config.RUNS_DIR)
    return runs[0].path if runs else None


def live_view(run_dir: Path, polling: bool) -> None:
    """The run's state, progress and curves; redrawn every POLL_SECONDS while it trains."""
    status = read_status(run_dir)
    epochs, batches = read_metrics(run_dir)
    progress = run_progress(status, epochs, batches)
    if polling and not progress.active:
        st.rerun()  # finished: redraw the whole page once, and stop polling
    st.subheader(f"Run {run_dir.name}")
    if progress.active:
        status_line(progress)
        if st.button("Stop", icon=":material/stop_circle:", key="stop"):
            request_stop(run_dir)
            st.info("Stop requested: the run stops after the current batch and keeps its checkpoints.")
    elif progress.state == COMPLETED:
        st.success(f"Completed: {progress.epoch} epochs in {format_duration(_duration(status))}.")
    elif progress.state == STOPPED:
        st.warning(f"Stopped after {len(epochs)} epochs. Its checkpoints are kept.")
    else:
        st.error(f"The run {progress.state}: {status.get('error') or 'no reason recorded'}")
    if epochs:
        last = epochs[-1]
        a, b, c = st.columns(3)
        a.metric("Epoch", f"{len(epochs)} / {progress.epochs or '?'}")
        b.metric("Validation accuracy", _fmt(last.get("val_accuracy")))
        c.metric("Validation loss", _fmt(last.get("val_loss")))
    left, right = st.columns(2)
    left.plotly_chart(accuracy_figure(epochs), key="accuracy_chart")
    right.plotly_chart(loss_figure(epochs), key="loss_chart")
    log = run_dir / "train.log"
    if log.is_file():
        with st.expander("Training log"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-40:]) or "(empty)", language=None)


def status_line(progress: Progress) -> None:
    if progress.phase:
        st.progress(progress.fraction, text=f"{progress.phase[0].upper()}{progress.phase[1:]}...")
        return
    if progress.state == "starting" or not progress.batches:
        st.progress(0.0, text="Starting: loading TensorFlow, the dataset and the backbone...")
        return
    eta = f" · about {format_duration(progress.eta_s)} left" if progress.eta_s is not None else ""
    stage = " · fine-tuning the backbone" if progress.stage == 2 else ""
    text = f"Epoch {progress.epoch}/{progress.epochs} · batch {progress.batch}/{progress.batches}{stage}{eta}"
    st.progress(progress.fraction, text=text)


def _duration(status: dict) -> float | None:
    start, end = status.get("started_at"), status.get("ended_at")
    return end - start if start and end else None


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


st.title("Train")
dataset = st.session_state.get("dataset") or str(config.SAMPLE_DATASET)
st.caption(f"Dataset: `{dataset}` (choose another on the Data page)")
live_slot = st.container()  # drawn last, so a run started below shows at once
running = active_run(config.RUNS_DIR)
with st.expander("New run", expanded=running is None):
    preset_name = st.selectbox(
        "Preset",
        list(PRESETS),
        index=list(PRESETS).index("quick"),
        format_func=lambda p: f"{p}: {PRESET_NOTES.get(p, '')}",
    )
    preset = {**TrainConfig().to_dict(), **PRESETS[preset_name]}  # a preset may leave fields out
    with st.form("train"):
        values = knobs_ui(preset, preset_name)
        values["augment"] = augment_ui(preset, preset_name)
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if submitted:
        start({**preset, **values, "data": dataset})  # fields without a widget keep the preset's
        running = active_run(config.RUNS_DIR)

run_dir = watched_run()
with live_slot:
    if run_dir is None:
        st.info("No runs yet: start one below.")
    else:
        polling = running is not None
        st.fragment(live_view, run_every=POLL_SECONDS if polling else None)(run_dir, polling)
