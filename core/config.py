"""Typed configuration for a training run, and the project's paths.

Nothing here imports TensorFlow, so the dashboard can build and validate a
`TrainConfig` without loading Keras.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJ_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATASET = PROJ_ROOT / "data" / "sample" / "horse-or-human"
# Where the dashboard looks for datasets and keeps runs; both can be moved with env vars.
DATA_ROOT = Path(os.environ.get("TLS_DATA_ROOT", PROJ_ROOT / "data")).resolve()
RUNS_DIR = Path(os.environ.get("TLS_RUNS_DIR", PROJ_ROOT / "runs")).resolve()

FILL_MODES = ("nearest", "reflect", "constant", "wrap")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
POOLINGS = ("avg", "flatten")
MONITORS = ("val_accuracy", "val_loss", "val_macro_f1")
IMBALANCE_WARNING_RATIO = 1.5  # largest class / smallest class above this: warn
MODES = ("auto", "finetune", "features")
CLASSIFIERS = ("logreg", "svm", "knn", "tree")
SVM_KERNELS = ("rbf", "linear", "poly")
HEAD_TRAINING = ("auto", "cached", "live")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


@dataclass
class AugmentConfig:
    """The reference recipe's augmentation knobs, applied to training batches only."""

    rotation: float = 0.0  # degrees, images rotate by up to +/- this many
    width_shift: float = 0.0  # fraction of the width
    height_shift: float = 0.0  # fraction of the height
    shear: float = 0.0  # shear factor, as in Keras's RandomShear
    zoom: float = 0.0  # fraction; 0.2 zooms in or out by up to 20%
    horizontal_flip: bool = False
    fill_mode: str = "nearest"

    def validate(self) -> None:
        check_types(self, "augment.")
        _check_range("augment.rotation", self.rotation, 0, 180)
        for name in ("width_shift", "height_shift", "shear", "zoom"):
            _check_range(f"augment.{name}", getattr(self, name), 0, 0.9)
        _check_choice("augment.fill_mode", self.fill_mode, FILL_MODES)

    @property
    def is_identity(self) -> bool:
        return self == AugmentConfig(fill_mode=self.fill_mode)


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as the run's `config.json`."""

    data: str = ""  # a folder of class folders, or one split into train/ and validation/
    backbone: str = "mobilenet_v2"
    weights: str | None = "imagenet"  # None trains from random weights (tests only)
    image_size: int = 224
    pooling: str = "avg"  # "avg" (global average pooling) or "flatten" (the reference's)
    dense_units: int = 0  # a hidden Dense(relu) layer in the head; 0 means none
    dropout: float = 0.2
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    patience: int = 5  # early stopping; 0 disables it
    monitor: str = "val_accuracy"
    val_split: float = 0.2  # used only when the dataset is not split already
    seed: int = 42
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Transfer-learning kind: "auto" measures the candidates below by cross-validation on the
    # training split and keeps the best (core/auto.py); "finetune" trains a Keras head (then
    # optionally the base's top); "features" fits a scikit-learn classifier on the embeddings.
    mode: str = "auto"
    classifier: str = "logreg"  # features mode: logreg, svm, knn or tree
    classifier_c: float = 1.0  # inverse regularisation of logreg and svm
    svm_kernel: str = "rbf"
    knn_neighbors: int = 5
    tree_max_depth: int = 0  # 0 = grow until pure
    feature_layer: str | None = None  # take features from this earlier backbone layer
    # Head training while the base is frozen: "cached" trains on cached embeddings (the base
    # runs once), "live" runs the base every epoch; "auto" picks cached unless live
    # augmentation needs the images (augment_views > 0 caches that many augmented views).
    head_training: str = "auto"
    augment_views: int = 0
    fine_tune_layers: int = 0  # stage 2: unfreeze this many top backbone layers; 0 = no stage 2
    fine_tune_epochs: int = 5
    fine_tune_lr_factor: float = 0.1  # stage 2 learning rate = learning_rate x this
    class_weights: bool = False  # weight the loss by inverse class frequency (imbalanced data)

    def validate(self) -> None:
        """Raise `ConfigError` naming the first field that is out of range."""
        from core.backbones import BACKBONES  # no TensorFlow: the registry is plain data

        check_types(self)
        if not self.data:
            raise ConfigError("data: choose a dataset folder")
        _check_choice("backbone", self.backbone, tuple(BACKBONES))
        if self.weights not in ("imagenet", None):
            raise ConfigError(f"weights: must be 'imagenet' or null, got {self.weights!r}")
        _check_range("seed", self.seed, 0, MAX_SEED)
        _check_range("image_size", self.image_size, 32, 1024)
        if self.image_size < BACKBONES[self.backbone].min_size:
            minimum = BACKBONES[self.backbone].min_size
            raise ConfigError(
                f"image_size: {self.backbone} needs at least {minimum} px, got {self.image_size}"
            )
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_range("dense_units", self.dense_units, 0, 8192)
        _check_range("dropout", self.dropout, 0, 0.95)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate: must be in (0, 1], got {self.learning_rate}")
        _check_range("batch_size", self.batch_size, 1, 1024)
        _check_range("epochs", self.epochs, 1, 1000)
        _check_range("patience", self.patience, 0, 1000)
        _check_choice("monitor", self.monitor, MONITORS)
        if not 0 < self.val_split < 1:
            raise ConfigError(f"val_split: must be between 0 and 1, got {self.val_split}")
        _check_choice("mode", self.mode, MODES)
        _check_choice("classifier", self.classifier, CLASSIFIERS)
        _check_choice("svm_kernel", self.svm_kernel, SVM_KERNELS)
        _check_choice("head_training", self.head_training, HEAD_TRAINING)
        if not 0 < self.classifier_c <= 1e6:
            raise ConfigError(f"classifier_c: must be in (0, 1e6], got {self.classifier_c}")
        _check_range("knn_neighbors", self.knn_neighbors, 1, 1000)
        _check_range("tree_max_depth", self.tree_max_depth, 0, 1000)
        _check_range("augment_views", self.augment_views, 0, 50)
        _check_range("fine_tune_layers", self.fine_tune_layers, 0, 10000)
        _check_range("fine_tune_epochs", self.fine_tune_epochs, 1, 1000)
        _check_range("fine_tune_lr_factor", self.fine_tune_lr_factor, 1e-4, 1)
        if self.mode == "features" and self.fine_tune_layers:
            raise ConfigError("fine_tune_layers: fine-tuning needs mode 'finetune', not 'features'")
        self.augment.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys so typos do not pass silently."""
        values = dict(values)
        augment = values.pop("augment", {}) or {}
        if not isinstance(augment, (dict, AugmentConfig)):
            raise ConfigError(f"augment: must be an object of augmentation settings, got {augment!r}")
        if isinstance(augment, AugmentConfig):
            augment = dataclasses.asdict(augment)
        _reject_unknown(cls, values, "")
        _reject_unknown(AugmentConfig, augment, "augment.")
        return cls(**values, augment=AugmentConfig(**augment))

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError("config must be a JSON object")
        return cls.from_dict(values)


def head_training_path(config: TrainConfig) -> tuple[str, str]:
    """("cached" or "live", why) for training the head while the base is frozen."""
    live_augment = not config.augment.is_identity and not config.augment_views
    if config.head_training == "live":
        return "live", "chosen in the config: the base runs on every image every epoch"
    if config.head_training == "cached" or not live_augment:
        views = f" plus {config.augment_views} augmented view(s) per image" if config.augment_views else ""
        return "cached", f"the frozen base runs once per image{views}; the head trains on cached embeddings"
    return "live", (
        "live augmentation changes every image every epoch, so embeddings cannot be "
        "cached; cache augmented views instead (augmented views > 0) to train on embeddings"
    )


REFERENCE_AUGMENT = AugmentConfig(
    rotation=40,
    width_shift=0.2,
    height_shift=0.2,
    shear=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)

PRESETS: dict[str, dict[str, Any]] = {
    # The reference tutorial: InceptionV3, Flatten -> Dense(1024) -> Dropout(0.2), RMSprop.
    "seed": dict(
        backbone="inception_v3",
        image_size=224,
        pooling="flatten",
        dense_units=1024,
        dropout=0.2,
        optimizer="rmsprop",
        learning_rate=1e-3,
        batch_size=16,
        epochs=30,
        patience=5,
        monitor="val_accuracy",
        augment=dataclasses.asdict(REFERENCE_AUGMENT),
        mode="finetune",  # the reference trains its head with live augmentation, as the tutorial did
    ),
    # Small and fast: for the bundled sample, demos and a laptop CPU.
    "quick": dict(
        backbone="mobilenet_v2_0.35",
        image_size=160,
        pooling="avg",
        dense_units=0,
        dropout=0.2,
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=16,
        epochs=5,
        patience=3,
        augment=dataclasses.asdict(AugmentConfig(horizontal_flip=True)),
        augment_views=1,  # the flips as one cached view: the head trains on embeddings, not live
    ),
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a named preset, with the given fields replaced."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return TrainConfig.from_dict({**PRESETS[name], **overrides})


MAX_SEED = 2**32 - 1  # NumPy and TensorFlow take seeds in [0, 2**32)
_TYPES = {  # a field's annotation -> the JSON values it accepts (bool is not a number here)
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "str | None": (str, type(None)),
}


def check_types(config: object, prefix: str = "") -> None:
    """Raise ConfigError naming the first field whose value has the wrong type: "1e-3" is
    not a number, "false" is not a boolean (and would be true), true is not a number."""
    for spec in dataclasses.fields(config):
        allowed, value = _TYPES.get(str(spec.type)), getattr(config, spec.name)
        if allowed is None:
            continue
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            kind = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(
                str(spec.type), "text" if str(spec.type) == "str" else "text or null"
            )
            raise ConfigError(f"{prefix}{spec.name}: must be {kind}, got {value!r}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: unknown value {value!r}; choose from {', '.join(choices)}")


def _reject_unknown(cls: type, values: dict[str, Any], prefix: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s): {', '.join(prefix + u for u in unknown)}")
