"""The Train page's form: a preset, then every TrainConfig knob, returned as plain values.

The knobs' choices and labels come from core.config; number boxes have no limits of their own
(an out-of-range value reaches `TrainConfig.validate`, which disables Start with its reason).
"""

from __future__ import annotations

import streamlit as st

from core.backbones import BACKBONES, weights_problem
from core.checks import can_download
from core.config import (
    CLASSIFIERS,
    HEAD_TRAINING,
    MONITORS,
    OPTIMIZERS,
    POOLINGS,
    PRESETS,
    SVM_KERNELS,
    TrainConfig,
    field_limits,
)
from core.reports import CLASSIFIER_NAMES, describe_augment
from core.text import code
from ui.state import ADVISED, ADVISOR, AUGMENT, PRESET_DEFAULT

PRESET_NOTES = {
    "seed": "the reference recipe: InceptionV3, Flatten, Dense(1024), RMSprop, 30 epochs (slow on a CPU)",
    "quick": "small and fast: MobileNetV2 x0.35 at 160 px, 5 epochs on cached embeddings (flips cached)",
}
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


def preset_ui(dataset: str) -> tuple[str, dict]:
    """The preset to start from (the advisor's, once the Data page recommended one), as every
    TrainConfig field; its name keys the form's widgets, so another preset resets the form."""
    advised = st.session_state.get(ADVISED)
    names = [*PRESETS, ADVISOR] if advised else list(PRESETS)
    default = ADVISOR if advised and st.session_state.get(PRESET_DEFAULT) == ADVISOR else "quick"
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
    """K: how many augmented copies of each training image's embedding to cache."""
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


def augment_ui(preset: dict, key: str) -> dict:
    """The preset's augmentation unless the user picks the Data page's: previewing there never
    changes training by itself. Shows what the run will use, in words."""
    from_data = st.session_state.get(AUGMENT)
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
    """Whether Keras could download missing weights now (asked at most every 5 minutes)."""
    return can_download()
