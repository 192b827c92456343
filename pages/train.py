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
from core.backbones import BACKBONES, snap_image_size, weights_problem
from core.catalog import dataset_name, dataset_signature
from core.checks import can_download, data_warnings, launch_problems
from core.config import (
    CLASSIFIERS,
    HEAD_TRAINING,
    IMBALANCE_WARNING_RATIO,
    MONITORS,
    OPTIMIZERS,
    POOLINGS,
    PRESETS,
    SVM_KERNELS,
    ConfigError,
    TrainConfig,
    field_limits,
)
from core.data import DatasetError, imbalance_ratio, scan_dataset
from core.demo import workspace
from core.launch import launch_training
from core.plots import accuracy_figure, loss_figure
from core.progress_model import RunProgress, estimate, learned_rates, run_duration
from core.reports import (
    CLASSIFIER_NAMES,
    cache_line,
    describe_augment,
    format_duration,
    head_training_line,
    stage2_start,
    training_plan,
)
from core.runs import (
    COMPLETED,
    STOPPED,
    RunDir,
    RunError,
    active_run,
    list_runs,
    read_metrics,
    read_status,
    request_stop,
)
from core.text import code, md
from core.url_state import augment_from_param, augment_param, dataset_from_param, dataset_param
from ui.auto import auto_leaderboard

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
        format_func=lambda name: f"{name}: {BACKBONES[name].description}{missing_weights_note(name, preset)}",
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
    with st.expander("Advanced settings: input, head, optimiser, stages", icon=":material/tune:"):
        values.update(common_ui(preset, k))
        if values["mode"] == "auto":
            values["fine_tune_layers"] = 0  # auto decides about fine-tuning from its measurements
        elif values["mode"] == "features":
            values.update(features_ui(preset, k))
        else:
            values.update(finetune_ui(preset, k))
    return values


def common_ui(preset: dict, k) -> dict:
    """The knobs both kinds share: input, pooling, batches, split, monitor, weights.

    Number boxes here have no min/max of their own (the `None, None`): a widget's limits keep
    the old value silently, while an out-of-range value that reaches `TrainConfig.validate`
    disables Start with the engine's reason."""
    values = {}
    a, b, c = st.columns(3)  # filled row by row: a, b, c, a, b, c, ...
    values["image_size"] = int(
        a.number_input("Image size (px)", None, None, preset["image_size"], 32, key=k("image_size"))
    )
    values["pooling"] = b.radio(
        "Pooling", POOLINGS, POOLINGS.index(preset["pooling"]), horizontal=True, key=k("pooling")
    )
    values["batch_size"] = int(c.number_input("Batch size", None, None, preset["batch_size"], key=k("batch")))
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
    values["seed"] = int(c.number_input("Seed", None, None, preset["seed"], key=k("seed")))
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
            None,
            None,
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
            b.number_input("Neighbours (k)", None, None, preset["knn_neighbors"], key=k("knn"))
        )
    if values["classifier"] == "tree":
        values["tree_max_depth"] = int(
            b.number_input(
                "Maximum depth",
                None,
                None,
                preset["tree_max_depth"],
                key=k("depth"),
                help="0: grow until pure",
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
            "Dense units", None, None, preset["dense_units"], 64, key=k("dense"), help="0: no hidden layer"
        )
    )
    dropout = field_limits("dropout")
    values["dropout"] = b.slider(
        "Dropout", float(dropout.low), dropout.high, float(preset["dropout"]), 0.05, key=k("dropout")
    )
    values["optimizer"] = c.selectbox(
        "Optimizer", OPTIMIZERS, OPTIMIZERS.index(preset["optimizer"]), key=k("optimizer")
    )
    values["learning_rate"] = a.number_input(
        "Learning rate", None, None, float(preset["learning_rate"]), 1e-4, format="%.1e", key=k("lr")
    )
    values["epochs"] = int(b.number_input("Epochs", None, None, preset["epochs"], key=k("epochs")))
    values["patience"] = int(
        c.number_input(
            "Early-stopping patience",
            None,
            None,
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
            None,
            None,
            preset["fine_tune_layers"],
            key=k("ft_layers"),
            help="0: no stage 2. BatchNormalization layers stay frozen.",
        )
    )
    off = values["fine_tune_layers"] == 0
    values["fine_tune_epochs"] = int(
        b.number_input(
            "Stage-2 epochs", None, None, preset["fine_tune_epochs"], key=k("ft_epochs"), disabled=off
        )
    )
    values["fine_tune_lr_factor"] = c.number_input(
        "Stage-2 learning-rate factor",
        None,
        None,
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
            None,
            None,
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
    """The preset's augmentation unless the user picks the Data page's: previewing there never
    changes training by itself. Shows what the run will use, in words."""
    from_data = st.session_state.get("augment")
    options = ["preset", "Data page"] if from_data is not None else ["preset"]
    choice = st.radio(
        "Augmentation",
        options,
        horizontal=True,
        key=f"{key}:augment",
        format_func=lambda o: f"the Data page's ({describe_augment(from_data)})" if o == "Data page" else o,
        help="the preset's recipe, or the one set and previewed on the Data page",
    )
    augment = from_data if choice == "Data page" else preset["augment"]
    st.caption(f"This run will augment its training images with: **{describe_augment(augment)}**")
    return augment


def missing_weights_note(name: str, preset: dict) -> str:
    """ " · weights missing" for a backbone whose ImageNet weights are neither here nor downloadable."""
    if weights_problem(name, preset["image_size"], weights_downloadable()):
        return " · ImageNet weights missing here"
    return ""


@st.cache_data(ttl=300, show_spinner=False)
def weights_downloadable() -> bool:
    return can_download()


@st.cache_data(show_spinner=False, max_entries=16)
def dataset_counts(path: str, signature: float) -> dict:
    """{split: {class: n}} of the dataset (files listed, not decoded: a quick look)."""
    return scan_dataset(path, validate=False).counts()


def data_ui(dataset: str) -> str | None:
    """The Data page's warnings again, here where they matter; returns why the dataset cannot
    train (one class, an empty class), or None."""
    if not Path(dataset).is_dir():
        return None  # launch_problems says the folder is gone
    try:
        counts = dataset_counts(dataset, dataset_signature(dataset))
    except (DatasetError, OSError) as exc:
        return f"Dataset: {exc}"
    for warning in data_warnings(counts):
        st.warning(md(warning), icon=":material/warning:")
    return None


def start_ui(values: dict, notes: list[str], data_problem: str | None) -> None:
    """The Start button, disabled while anything would make the launch fail, with the reason
    beside it (the engine's own limits), or while another training runs (a wait, not an error)."""
    running = active_run(space.runs_dir)
    problems = ([data_problem] if data_problem else []) + launch_problems(values, weights_downloadable())
    button, reason = st.columns([1, 3], vertical_alignment="center")
    clicked = button.button(
        "Start training",
        type="primary",
        icon=":material/play_arrow:",
        disabled=bool(problems or running),
        help=problems[0] if problems else None,
    )
    if problems:
        reason.error(f"Cannot start: {md(problems[0])}", icon=":material/block:")
    elif running:
        reason.info(
            f"A training is already running: {running.name}. Stop it or wait.", icon=":material/hourglass:"
        )
    for note in notes:
        reason.info(md(note), icon=":material/straighten:")
    if clicked and not problems and not running:
        start(values)


def start(values: dict) -> None:
    """Launch; errors in the user's words."""
    try:
        train_config = TrainConfig.from_dict(values)
        train_config.validate()
        with st.spinner("Starting the training process..."):
            run_dir = launch_training(train_config, space.runs_dir, space.data_dir)
    except ConfigError as exc:
        st.error(f"Check the settings: {md(exc)}")
    except RunError as exc:
        st.error(f"Cannot start: {md(exc)}")
    else:
        st.session_state["train_run"] = str(run_dir)
        st.toast(f"Started {run_dir.name}", icon=":material/rocket_launch:")
        st.rerun()  # the form folds away: the run's progress comes into view


def watched_run() -> Path | None:
    """The active run, else the one started from this session, else the newest."""
    running = active_run(space.runs_dir)
    if running:
        return running
    mine = st.session_state.get("train_run")
    if mine and RunDir(mine).config_file.is_file():
        return Path(mine)
    runs = list_runs(space.runs_dir)
    return runs[0].path if runs else None


def live_view(run_dir: Path, polling: bool) -> None:
    """The run's phases, progress and results; redrawn every POLL_SECONDS while it trains."""
    status = read_status(run_dir)
    epochs, batches = read_metrics(run_dir)
    run_config = RunDir(run_dir).config()
    counts = RunDir(run_dir).dataset().get("counts") or {}
    rates = learned_rates(space.runs_dir, run_config.get("backbone", ""), run_config.get("image_size", 0))
    progress = estimate(status, run_config, counts, epochs, batches, rates)
    if polling and not progress.active:
        st.rerun()  # finished: redraw the whole page once, and stop polling
    st.subheader(f"Run {run_dir.name}")
    data = run_config.get("data", "?")
    st.caption(f"Dataset: **{md(dataset_name(data))}** ({code(data)})")
    features = run_config.get("mode") == "features"
    if progress.active:
        status_line(progress)
        if st.button("Stop", icon=":material/stop_circle:", key="stop"):
            request_stop(run_dir)
            st.info("Stop requested: the run stops after the current batch and keeps its checkpoints.")
    elif progress.state == COMPLETED:
        done = (
            f"{CLASSIFIER_NAMES.get(run_config.get('classifier'), 'classifier')} fitted on the embeddings"
            if features
            else f"{status['winner']} chosen and fitted"
            if status.get("winner")
            else f"{len(epochs)} epochs"
        )
        st.success(f"Completed: {done} in {format_duration(run_duration(status))}.")
        phases_caption(progress)
        next_steps_ui(run_dir)
    elif progress.state == STOPPED:
        st.warning(f"Stopped after {len(epochs)} epochs. Its checkpoints are kept.")
    else:
        st.error(f"The run {progress.state}: {md(status.get('error') or 'no reason recorded')}")
        if not epochs:
            log_ui(run_dir)
            return  # no curves to draw: the reason stands in their place
    details_line(status, run_config)
    auto_leaderboard(run_dir, key="live")
    if epochs:
        metrics_ui(epochs[-1], counts, features)
    if not features:  # feature extraction has no epochs: a curve would be one dot
        start2 = stage2_start(status, epochs)
        left, right = st.columns(2)
        left.plotly_chart(accuracy_figure(epochs, start2), key="accuracy_chart")
        right.plotly_chart(loss_figure(epochs, start2), key="loss_chart")
    log_ui(run_dir)


def next_steps_ui(run_dir: Path) -> None:
    """After a run: straight to its evaluation, or to classifying photos with it."""
    links = st.container(horizontal=True)
    links.button(
        "See its evaluation",
        icon=":material/fact_check:",
        on_click=_show_run,
        args=(run_dir, "pages/checkpoints.py", {"checkpoints_tab": "Evaluation"}),
        key="next_evaluation",
    )
    links.button(
        "Classify photos with it",
        icon=":material/image_search:",
        on_click=_show_run,
        args=(run_dir, "pages/predict.py", {}),
        key="next_predict",
    )
    if target := st.session_state.pop("next_page", None):
        st.switch_page(target)


def _show_run(run_dir: Path, page: str, state: dict) -> None:
    st.session_state.update({"show_run": run_dir.name, "next_page": page, **state})


def metrics_ui(last: dict, counts: dict, features: bool) -> None:
    """The latest scores; macro F1 first when the classes are imbalanced (accuracy can look
    good while a small class is mostly wrong)."""
    scores = {
        "Validation accuracy": last.get("val_accuracy"),
        "Validation macro F1": last.get("val_macro_f1"),
        "Validation loss": last.get("val_loss"),
    }
    lead_f1 = imbalance_ratio(counts) > IMBALANCE_WARNING_RATIO
    if lead_f1:
        scores = {k: scores[k] for k in ("Validation macro F1", "Validation accuracy", "Validation loss")}
    if not features:
        scores = {"Epoch": last.get("epoch"), **scores}
    for column, (label, value) in zip(st.columns(len(scores)), scores.items(), strict=True):
        column.metric(label, value if label == "Epoch" else _fmt(value))
    if lead_f1:
        st.caption(
            f"Macro F1 comes first: the classes are imbalanced ({imbalance_ratio(counts):.1f}x), so "
            "accuracy can look good while the small class is mostly wrong."
        )
    if features:
        st.caption(
            f"Feature extraction fits once, no epochs: on the training images accuracy "
            f"{_fmt(last.get('accuracy'))}, loss {_fmt(last.get('loss'))}."
        )


def log_ui(run_dir: Path) -> None:
    log = run_dir / "train.log"
    if log.is_file():
        with st.expander("Training log"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-40:]) or "(empty)", language=None)


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


def status_line(progress: RunProgress) -> None:
    """The phases, then one bar over the whole run with the time left in all of it."""
    phases_caption(progress)
    eta = f" · about {format_duration(progress.eta_s)} left in all" if progress.eta_s is not None else ""
    st.progress(progress.fraction, text=f"{progress.label}: {progress.detail}{eta}")


def phases_caption(progress: RunProgress) -> None:
    """ "✓ Start-up 18 s → ● Embedding images → ○ Training → ○ Evaluation": where the run is."""
    marks = {"done": ":material/check_circle:", "current": ":material/pending:", "todo": ":material/circle:"}
    parts = []
    for i, phase in enumerate(progress.phases, 1):
        took = f" {format_duration(phase.seconds)}" if phase.state != "todo" and phase.seconds else ""
        name = f"**{phase.label}**" if phase.state == "current" else phase.label
        parts.append(f"{marks[phase.state]} {i}. {name}{took}")
    st.caption(" → ".join(parts))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def chosen_dataset() -> str:
    """The Data page's dataset (and augmentation), else the URL's (so a reload keeps them), else
    the sample; both written back to the URL."""
    state, params = st.session_state, st.query_params
    if not state.get("dataset"):
        allowed = space.datasets()  # in the demo, never another visitor's
        found = dataset_from_param(params.get("dataset"), config.DATA_ROOT, config.SAMPLE_DATASET, allowed)
        state["dataset"] = str(found or config.SAMPLE_DATASET)
    if state.get("augment") is None and augment_from_param(params.get("augment")):
        state["augment"] = augment_from_param(params.get("augment"))
    params["dataset"] = dataset_param(state["dataset"], config.DATA_ROOT, config.SAMPLE_DATASET)
    if state.get("augment") is not None:
        params["augment"] = augment_param(state["augment"])
    return state["dataset"]


def snap_size(values: dict) -> list[str]:
    """Snap the image size to one the backbone has ImageNet weights for; the note saying so."""
    if values.get("weights") != "imagenet" or values["backbone"] not in BACKBONES:
        return []
    size, why = snap_image_size(values["backbone"], values["image_size"])
    values["image_size"] = size
    return [why] if why else []


st.title("Train")
space = workspace(st.session_state)  # in the demo, this visitor's own runs only
dataset = chosen_dataset()
st.caption(
    f"New runs train on **{md(dataset_name(dataset))}** ({code(dataset)}) · choose another on the Data page"
)
running = active_run(space.runs_dir)
with st.expander("New run", expanded=running is None):
    preset_name, preset = preset_ui(dataset)
    values = knobs_ui(preset, preset_name)
    values["augment"] = augment_ui(preset, preset_name)
    values = {**preset, **values, "data": dataset}  # fields without a widget keep the preset's
    notes = snap_size(values)
    data_problem = data_ui(dataset)
    start_ui(values, notes, data_problem)
    plan_ui(values)
    running = active_run(space.runs_dir)

# Below the form (folded while a run trains), so Start is in view without scrolling.
run_dir = watched_run()
if run_dir is None:
    st.info("No runs yet: start one above.")
else:
    polling = running is not None
    st.fragment(live_view, run_every=POLL_SECONDS if polling else None)(run_dir, polling)
