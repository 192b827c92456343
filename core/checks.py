"""Checks before Start: what blocks a launch, and what the data should warn about.

The limits are the engine's own (`TrainConfig.validate`, the backbone registry, the dataset
scan), so the dashboard refuses exactly what `python -m core.train` would, before launching.
No TensorFlow, no Streamlit.
"""

from __future__ import annotations

import socket
from pathlib import Path

from core.backbones import BACKBONES, snap_image_size, weights_problem
from core.config import IMBALANCE_WARNING_RATIO, ConfigError, TrainConfig
from core.data import class_totals, imbalance_ratio

MIN_IMAGES_PER_CLASS = 10  # below this a class's validation score rests on one or two images
WEIGHTS_HOST = ("storage.googleapis.com", 443)  # where keras.applications downloads from
# The Train page's words for TrainConfig's fields, so a refusal names the box to fix.
FIELD_LABELS = {
    "image_size": "Image size",
    "batch_size": "Batch size",
    "learning_rate": "Learning rate",
    "epochs": "Epochs",
    "dense_units": "Dense units",
    "dropout": "Dropout",
    "patience": "Early-stopping patience",
    "seed": "Seed",
    "val_split": "Validation split",
    "classifier_c": "C (inverse regularisation)",
    "knn_neighbors": "Neighbours (k)",
    "tree_max_depth": "Maximum depth",
    "augment_views": "Augmented views (K)",
    "fine_tune_layers": "Layers to unfreeze",
    "fine_tune_epochs": "Stage-2 epochs",
    "fine_tune_lr_factor": "Stage-2 learning-rate factor",
    "feature_layer": "Feature layer",
    "data": "Dataset",
}


def config_problem(values: dict) -> str | None:
    """Why these settings cannot train, in the page's words ("Batch size: must be between 1
    and 1024, got -5"), or None. The message is `TrainConfig.validate`'s."""
    try:
        TrainConfig.from_dict(values).validate()
    except (ConfigError, TypeError) as exc:
        field, _, reason = str(exc).partition(": ")
        return f"{FIELD_LABELS.get(field, field)}: {reason}" if reason else str(exc)
    return None


def snap_to_weights(values: dict) -> tuple[dict, list[str]]:
    """The settings with the image size snapped to one the backbone has ImageNet weights for,
    and the note saying so (none when nothing moved, or when training from random weights)."""
    if values.get("weights") != "imagenet" or values.get("backbone") not in BACKBONES:
        return values, []
    size, why = snap_image_size(values["backbone"], values["image_size"])
    return {**values, "image_size": size}, [why] if why else []


def launch_problems(values: dict, downloadable: bool) -> list[str]:
    """Everything that would make a launch fail at once: a setting out of range, a dataset
    folder that is gone, ImageNet weights that are neither here nor downloadable."""
    problem = config_problem(values)
    if problem:
        return [problem]
    problems = []
    if not Path(values["data"]).is_dir():
        problems.append(f"Dataset: the folder is gone: {values['data']}")
    if values.get("weights") == "imagenet":
        missing = weights_problem(values["backbone"], values["image_size"], downloadable)
        if missing:
            problems.append(missing)
    return problems


def data_warnings(counts: dict[str, dict[str, int]]) -> list[str]:
    """What the Data page warns about a dataset, as sentences for the Train page too."""
    warnings = []
    ratio = imbalance_ratio(counts)
    if ratio > IMBALANCE_WARNING_RATIO:
        warnings.append(
            f"The classes are imbalanced (the largest has {ratio:.1f}x the images of the smallest): "
            "accuracy can look good while the small class is mostly wrong. Watch macro F1; consider "
            "class weights and monitoring val_macro_f1."
        )
    totals = class_totals(counts)
    small = sorted((n, name) for name, n in totals.items() if n < MIN_IMAGES_PER_CLASS)
    if small:
        listed = ", ".join(f"{name} ({n})" for n, name in small)
        warnings.append(
            f"Too few images per class: {listed}. With under {MIN_IMAGES_PER_CLASS} images a class is "
            "scored on one or two validation images; add more photos for a result you can trust."
        )
    return warnings


def can_download(host: tuple[str, int] = WEIGHTS_HOST, timeout_s: float = 1.5) -> bool:
    """Whether Keras could download weights now (a TCP connection to its host opens)."""
    try:
        with socket.create_connection(host, timeout=timeout_s):
            return True
    except OSError:
        return False
