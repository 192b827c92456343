"""Train: a form of every knob, then the run's live progress and curves.

Two kinds of transfer learning: fine-tune (a Keras head, then optionally the backbone's
top layers) or feature extraction (a classical classifier on the embeddings). Before
Start the page says which path training will take; while it trains, what it is doing.

Training runs in its own process (`python -m core.train`, started by core.runs); this
page only writes a config and reads the run's files, so it never imports Keras.
"""

from pathlib import Path

import streamlit as st

from core import config
from core.auto import fine_tune_line, leaderboard_rows, read_auto
from core.backbones import BACKBONES
from core.config import (
    CLASSIFIERS,
    HEAD_TRAINING,
    MONITORS,
    OPTIMIZERS,
    POOLINGS,
    PRESETS,
    SVM_KERNELS,
    ConfigError,
    TrainConfig,
)
from core.demo import workspace
from core.plots import accuracy_figure, leaderboard_figure, learning_curve_figure, loss_figure
from core.reports import (
    CLASSIFIER_NAMES,
    Progress,
    cache_line,
    format_duration,
    head_training_line,
    run_progress,
    stage2_start,
    training_plan,
)
from core.runs import (
    COMPLETED,
    STOPPED,
    RunError,
    active_run,
    launch_training,
    list_runs,
    read_json,
    read_metrics,
    read_status,
    request_stop,
)
from core.text import code, md

PRESET_NOTES = {
    "seed": "the reference recipe: InceptionV3, Flatten, Dense(1024), RMSprop, 30 epochs (slow on a CPU)",
    "quick": "small and fast: MobileNetV2 x0.35 at 160 px, 5 epochs on cached embeddings (flips cached)",
}
ADVISOR = "advisor"  # the preset the Data page's strategy advisor recommended
KINDS = {
    "auto": "Auto (recommended): measure every candidate by cross-validation and keep the best",
    "finetune": "Fine-tune: train a Keras head on the frozen backbone, then optionally its top layers",
    "features": "Feature extraction: fit a classical classifier on the frozen backbone's embeddings",
}
HEAD_TRAINING_NOTES = {
    "auto": "auto: cached, unless live augmentation needs the images",
    "cached": "cached: the frozen base runs once, the head trains on stored embeddings",
    "live": "live: the base runs on every image every epoch",
}
KIND_NAMES = {"auto": "auto", "features": "feature extraction", "finetune": "fine-tune"}
POLL_SECONDS = 2


def preset_ui(dataset: str) -> tuple[str, dict]:
    """The preset to start from (the advisor's, once the Data page recommended one), as every
    TrainConfig field; its name keys the form's widgets, so another preset resets the form."""
    advised = st.session_state.get("advised")
    names = [*PRESETS, ADVISOR] if advised else list(PRESETS)
    default = ADVISOR if advised and st.session_state.get("preset_default") == ADVISOR else "quick"
    notes = (
        {**PRESET_NOTES, ADVISOR: f"{advised['strategy']} (advised for {advised['dataset_name']})"}
        if advised
        else PRESET_NOTES
    )
    name = st.selectbox(
        "Preset", names, index=names.index(default), format_func=lambda p: f"{p}: {notes.get(p, '')}"
    )
    if name == ADVISOR and advised["dataset"] != dataset:
        st.warning(f"The advisor's recommendation was for {code(advised['dataset'])}, not this dataset.")
    fields = advised["preset"] if name == ADVISOR else PRESETS[name]
    return name, {**TrainConfig().to_dict(), **fields}  # a preset may leave fields out


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
    values["mode"] = st.radio(
        "Transfer-learning kind",
        list(KINDS),
        index=list(KINDS).index(preset["mode"]),
        format_func=KINDS.get,
        key=k("mode"),
    )
    values.update(common_ui(preset, k))
    if values["mode"] == "auto":
        values["fine_tune_layers"] = 0  # auto decides about fine-tuning from its measurements
    elif values["mode"] == "features":
        values.update(features_ui(preset, k))
    else:
        values.update(finetune_ui(preset, k))
    return values


def common_ui(preset: dict, k) -> dict:
    """The knobs both kinds share: input, pooling, batches, split, monitor, weights."""
    values = {}
    a, b, c = st.columns(3)  # filled row by row: a, b, c, a, b, c, ...
    values["image_size"] = int(
        a.number_input("Image size (px)", 32, 1024, preset["image_size"], 32, key=k("image_size"))
    )
    values["pooling"] = b.radio(
        "Pooling", POOLINGS, POOLINGS.index(preset["pooling"]), horizontal=True, key=k("pooling")
    )
    values["batch_size"] = int(c.number_input("Batch size", 1, 1024, preset["batch_size"], key=k("batch")))
    values["monitor"] = a.selectbox(
        "Monitor",
        MONITORS,
        MONITORS.index(preset["monitor"]),
        key=k("monitor"),
        help="what best.keras and early stopping track; val_macro_f1 suits imbalanced classes",
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
    values["feature_layer"] = (
        a.text_input(
            "Feature layer",
            preset["feature_layer"] or "",
            key=k("feature_layer"),
            placeholder="the top of the backbone",
            help="take features from this earlier backbone layer (e.g. block_13_expand_relu); empty: the top",
        ).strip()
        or None
    )
    values["class_weights"] = b.checkbox(
        "Class weights",
        bool(preset["class_weights"]),
        key=k("class_weights"),
        help="weight each class by its inverse frequency: for imbalanced classes",
    )
    pretrained = c.checkbox(
        "Start from ImageNet weights",
        preset["weights"] == "imagenet",
        key=k("weights"),
        help="off: random weights, only for testing the plumbing",
    )
    values["weights"] = "imagenet" if pretrained else None
    return values


def features_ui(preset: dict, k) -> dict:
    """Feature extraction: the classifier, its main hyperparameter, and augmented views."""
    values = {"fine_tune_layers": 0}  # stage 2 needs a Keras head
    classifiers = list(CLASSIFIERS)
    a, b = st.columns(2)
    values["classifier"] = a.radio(
        "Classifier",
        classifiers,
        classifiers.index(preset["classifier"]),
        format_func=lambda c: CLASSIFIER_NAMES[c],
        key=k("classifier"),
    )
    if values["classifier"] in ("logreg", "svm"):
        values["classifier_c"] = b.number_input(
            "C (inverse regularisation)",
            1e-4,
            1e6,
            float(preset["classifier_c"]),
            format="%.4g",
            key=k("classifier_c"),
            help="smaller: a simpler, more regularised classifier",
        )
    if values["classifier"] == "svm":
        values["svm_kernel"] = b.radio(
            "Kernel", SVM_KERNELS, SVM_KERNELS.index(preset["svm_kernel"]), horizontal=True, key=k("kernel")
        )
    if values["classifier"] == "knn":
        values["knn_neighbors"] = int(
            b.number_input("Neighbours (k)", 1, 1000, preset["knn_neighbors"], key=k("knn"))
        )
    if values["classifier"] == "tree":
        values["tree_max_depth"] = int(
            b.number_input(
                "Maximum depth", 0, 1000, preset["tree_max_depth"], key=k("depth"), help="0: grow until pure"
            )
        )
    values["augment_views"] = views_ui(preset, k, b)
    return values


def finetune_ui(preset: dict, k) -> dict:
    """Fine-tuning: the head, how it trains while the base is frozen, and stage 2."""
    values = {}
    a, b, c = st.columns(3)
    values["dense_units"] = int(
        a.number_input(
            "Dense units", 0, 8192, preset["dense_units"], 64, key=k("dense"), help="0: no hidden layer"
        )
    )
    values["dropout"] = b.slider("Dropout", 0.0, 0.9, float(preset["dropout"]), 0.05, key=k("dropout"))
    values["optimizer"] = c.selectbox(
        "Optimizer", OPTIMIZERS, OPTIMIZERS.index(preset["optimizer"]), key=k("optimizer")
    )
    values["learning_rate"] = a.number_input(
        "Learning rate", 1e-6, 1.0, float(preset["learning_rate"]), 1e-4, format="%.5f", key=k("lr")
    )
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
    values["head_training"] = a.radio(
        "Head training",
        HEAD_TRAINING,
        HEAD_TRAINING.index(preset["head_training"]),
        format_func=lambda h: HEAD_TRAINING_NOTES[h].split(":")[0],
        key=k("head_training"),
        help="; ".join(HEAD_TRAINING_NOTES.values()),
    )
    values["augment_views"] = views_ui(preset, k, b)
    st.markdown("**Stage 2: fine-tune the backbone's top layers** (after the head has trained)")
    a, b, c = st.columns(3)
    values["fine_tune_layers"] = int(
        a.number_input(
            "Layers to unfreeze",
            0,
            10000,
            preset["fine_tune_layers"],
            key=k("ft_layers"),
            help="0: no stage 2. BatchNormalization layers stay frozen.",
        )
    )
    off = values["fine_tune_layers"] == 0
    values["fine_tune_epochs"] = int(
        b.number_input(
            "Stage-2 epochs", 1, 1000, preset["fine_tune_epochs"], key=k("ft_epochs"), disabled=off
        )
    )
    values["fine_tune_lr_factor"] = c.number_input(
        "Stage-2 learning-rate factor",
        1e-4,
        1.0,
        float(preset["fine_tune_lr_factor"]),
        0.05,
        format="%.4g",
        key=k("ft_factor"),
        disabled=off,
        help="stage 2 trains at the learning rate times this; about 0.1 keeps the pretrained features",
    )
    rate = values["learning_rate"] * values["fine_tune_lr_factor"]
    c.caption(
        f"Stage-2 learning rate: {values['learning_rate']:g} x {values['fine_tune_lr_factor']:g} = {rate:.2g}"
    )
    return values


def views_ui(preset: dict, k, column) -> int:
    return int(
        column.number_input(
            "Augmented views (K)",
            0,
            50,
            preset["augment_views"],
            key=k("views"),
            help="cache K augmented copies of each training image's embedding; 0: none",
        )
    )


def plan_ui(values: dict) -> None:
    """Before Start: which path the head training will take, and why."""
    try:
        plan = training_plan(TrainConfig.from_dict(values))
    except (ConfigError, TypeError):
        return
    st.info("  \n".join(plan), icon=":material/route:")


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
            run_dir = launch_training(train_config, space.runs_dir)
    except ConfigError as exc:
        st.error(f"Check the settings: {md(exc)}")
    except RunError as exc:
        st.error(f"Cannot start: {md(exc)}")
    else:
        st.session_state["train_run"] = str(run_dir)
        st.toast(f"Started {run_dir.name}", icon=":material/rocket_launch:")


def watched_run() -> Path | None:
    """The active run, else the one started from this session, else the newest."""
    running = active_run(space.runs_dir)
    if running:
        return running
    mine = st.session_state.get("train_run")
    if mine and Path(mine, "config.json").is_file():
        return Path(mine)
    runs = list_runs(space.runs_dir)
    return runs[0].path if runs else None


def live_view(run_dir: Path, polling: bool) -> None:
    """The run's state, progress and curves; redrawn every POLL_SECONDS while it trains."""
    status = read_status(run_dir)
    epochs, batches = read_metrics(run_dir)
    progress = run_progress(status, epochs, batches)
    if polling and not progress.active:
        st.rerun()  # finished: redraw the whole page once, and stop polling
    run_config = read_json(run_dir / "config.json", {}) or {}
    st.subheader(f"Run {run_dir.name}")
    if progress.active:
        status_line(progress)
        if st.button("Stop", icon=":material/stop_circle:", key="stop"):
            request_stop(run_dir)
            st.info("Stop requested: the run stops after the current batch and keeps its checkpoints.")
    elif progress.state == COMPLETED:
        done = (
            f"{CLASSIFIER_NAMES.get(run_config.get('classifier'), 'classifier')} fitted on the embeddings"
            if run_config.get("mode") == "features"
            else f"{status['winner']} chosen and fitted"
            if status.get("winner")
            else f"{progress.epoch} epochs"
        )
        st.success(f"Completed: {done} in {format_duration(_duration(status))}.")
    elif progress.state == STOPPED:
        st.warning(f"Stopped after {len(epochs)} epochs. Its checkpoints are kept.")
    else:
        st.error(f"The run {progress.state}: {md(status.get('error') or 'no reason recorded')}")
    details_line(status, run_config)
    auto_view(run_dir)
    if epochs:
        last = epochs[-1]
        a, b, c, d = st.columns(4)
        a.metric("Epoch", f"{len(epochs)} / {progress.epochs or '?'}")
        b.metric("Validation accuracy", _fmt(last.get("val_accuracy")))
        c.metric("Validation loss", _fmt(last.get("val_loss")))
        d.metric("Validation macro F1", _fmt(last.get("val_macro_f1")))
    start2 = stage2_start(status, epochs)
    left, right = st.columns(2)
    left.plotly_chart(accuracy_figure(epochs, start2), key="accuracy_chart")
    right.plotly_chart(loss_figure(epochs, start2), key="loss_chart")
    log = run_dir / "train.log"
    if log.is_file():
        with st.expander("Training log"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-40:]) or "(empty)", language=None)


def auto_view(run_dir: Path) -> None:
    """An auto run's leaderboard (live while candidates are tried) and its learning curve."""
    auto = read_auto(run_dir)
    if not auto or not auto.get("candidates"):
        return
    winner = (auto.get("winner") or {}).get("name")
    if auto.get("reason"):
        st.markdown(f"**Chosen:** {auto['reason']}")
    elif auto.get("trying"):
        st.caption(f"Trying {auto['trying']}...")
    st.plotly_chart(leaderboard_figure(auto["candidates"], winner), key="leaderboard_chart")
    if auto.get("learning_curve"):
        left, right = st.columns([3, 2], vertical_alignment="center")
        left.plotly_chart(learning_curve_figure(auto["learning_curve"]), key="learning_curve_chart")
        right.caption(auto["learning_curve"]["reading"])
        if fine_tune_line(auto):
            right.caption(fine_tune_line(auto))
    with st.expander("Leaderboard"):
        st.dataframe(leaderboard_rows(auto), hide_index=True)


def details_line(status: dict, run_config: dict) -> None:
    """How the run trains: its kind, the head-training path and why, the embedding cache."""
    kind = run_config.get("mode", "finetune")
    parts = [f"Kind: **{KIND_NAMES.get(kind, kind)}**"]
    if kind == "features" and run_config.get("classifier"):
        parts[0] += f" ({CLASSIFIER_NAMES.get(run_config['classifier'], run_config['classifier'])})"
    head = head_training_line(status)
    if head:
        parts.append(f"head training: **{head}**")
    cached = cache_line(status)
    if cached:
        parts.append(f"embeddings: {cached}")
    st.caption(" · ".join(parts))


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
space = workspace(st.session_state)  # in the demo, this visitor's own runs only
dataset = st.session_state.get("dataset") or str(config.SAMPLE_DATASET)
st.caption(f"Dataset: {code(dataset)} (choose another on the Data page)")
live_slot = st.container()  # drawn last, so a run started below shows at once
running = active_run(space.runs_dir)
with st.expander("New run", expanded=running is None):
    preset_name, preset = preset_ui(dataset)
    values = knobs_ui(preset, preset_name)
    values["augment"] = augment_ui(preset, preset_name)
    values = {**preset, **values, "data": dataset}  # fields without a widget keep the preset's
    plan_ui(values)
    if st.button("Start training", type="primary", icon=":material/play_arrow:"):
        start(values)
        running = active_run(space.runs_dir)

run_dir = watched_run()
with live_slot:
    if run_dir is None:
        st.info("No runs yet: start one below.")
    else:
        polling = running is not None
        st.fragment(live_view, run_every=POLL_SECONDS if polling else None)(run_dir, polling)
