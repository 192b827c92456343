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

from core.backbones import BACKBONES  # plain data: no TensorFlow

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
MAX_SEED = 2**32 - 1  # NumPy and TensorFlow take seeds in [0, 2**32)


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


@dataclass(frozen=True)
class Limits:
    """What one knob accepts. The one table of limits: `validate()`, the CLI's flags and the
    dashboard's widgets all read it (through `field_limits` and `check_field`)."""

    kind: type  # int, float, bool or str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, ...: low itself is refused
    high_open: bool = False  # ..., high): high itself is refused
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is accepted too

    @property
    def interval(self) -> str:
        """ "[0, 0.95]", "(0, 1]": the accepted range, for messages and help texts."""
        low, high = _show(self.low), _show(self.high)
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def knob(default: Any, kind: type, low: float | None = None, high: float | None = None, **limits: Any):
    """A dataclass field whose limits live in its metadata (see `Limits`)."""
    return field(default=default, metadata={"limits": Limits(kind, low, high, **limits)})


@dataclass
class AugmentConfig:
    """The reference recipe's augmentation knobs, applied to training batches only."""

    rotation: float = knob(0.0, float, 0, 180)  # degrees, images rotate by up to +/- this many
    width_shift: float = knob(0.0, float, 0, 0.9)  # fraction of the width
    height_shift: float = knob(0.0, float, 0, 0.9)  # fraction of the height
    shear: float = knob(0.0, float, 0, 0.9)  # shear factor, as in Keras's RandomShear
    zoom: float = knob(0.0, float, 0, 0.9)  # fraction; 0.2 zooms in or out by up to 20%
    horizontal_flip: bool = knob(False, bool)
    fill_mode: str = knob("nearest", str, choices=FILL_MODES)

    def validate(self) -> None:
        _raise_first_problem(self, "augment.")

    @property
    def is_identity(self) -> bool:
        return self == AugmentConfig(fill_mode=self.fill_mode)


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as the run's `config.json`."""

    data: str = ""  # a folder of class folders, or one split into train/ and validation/
    backbone: str = knob("mobilenet_v2", str, choices=tuple(BACKBONES))
    # "imagenet", or None to train from random weights (tests only)
    weights: str | None = knob("imagenet", str, choices=("imagenet",), optional=True)
    image_size: int = knob(224, int, 32, 1024)
    pooling: str = knob("avg", str, choices=POOLINGS)  # "avg" (global average) or "flatten" (the reference's)
    dense_units: int = knob(0, int, 0, 8192)  # a hidden Dense(relu) layer in the head; 0 means none
    dropout: float = knob(0.2, float, 0, 0.95)
    optimizer: str = knob("adam", str, choices=OPTIMIZERS)
    learning_rate: float = knob(1e-3, float, 0, 1, low_open=True)
    batch_size: int = knob(32, int, 1, 1024)
    epochs: int = knob(10, int, 1, 1000)
    patience: int = knob(5, int, 0, 1000)  # early stopping; 0 disables it
    monitor: str = knob("val_accuracy", str, choices=MONITORS)
    # used only when the dataset is not split already
    val_split: float = knob(0.2, float, 0, 1, low_open=True, high_open=True)
    seed: int = knob(42, int, 0, MAX_SEED)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Transfer-learning kind: "auto" measures the candidates below by cross-validation on the
    # training split and keeps the best (core/auto.py); "finetune" trains a Keras head (then
    # optionally the base's top); "features" fits a scikit-learn classifier on the embeddings.
    mode: str = knob("auto", str, choices=MODES)
    classifier: str = knob("logreg", str, choices=CLASSIFIERS)  # features mode
    classifier_c: float = knob(1.0, float, 0, 1_000_000, low_open=True)  # inverse regularisation
    svm_kernel: str = knob("rbf", str, choices=SVM_KERNELS)
    knn_neighbors: int = knob(5, int, 1, 1000)
    tree_max_depth: int = knob(0, int, 0, 1000)  # 0 = grow until pure
    # take features from this earlier backbone layer
    feature_layer: str | None = knob(None, str, optional=True)
    # Head training while the base is frozen: "cached" trains on cached embeddings (the base
    # runs once), "live" runs the base every epoch; "auto" picks cached unless live
    # augmentation needs the images (augment_views > 0 caches that many augmented views).
    head_training: str = knob("auto", str, choices=HEAD_TRAINING)
    augment_views: int = knob(0, int, 0, 50)
    # stage 2: unfreeze this many top backbone layers; 0 = no stage 2
    fine_tune_layers: int = knob(0, int, 0, 10000)
    fine_tune_epochs: int = knob(5, int, 1, 1000)
    fine_tune_lr_factor: float = knob(0.1, float, 1e-4, 1)  # stage 2 learning rate = learning_rate x this
    class_weights: bool = knob(False, bool)  # weight the loss by inverse class frequency (imbalanced data)

    def validate(self) -> None:
        """Raise `ConfigError` naming the first field that is out of range or of the wrong type."""
        if not self.data or not isinstance(self.data, str):
            raise ConfigError("data: choose a dataset folder")
        _raise_first_problem(self, "")
        if self.image_size < BACKBONES[self.backbone].min_size:
            minimum = BACKBONES[self.backbone].min_size
            raise ConfigError(
                f"image_size: {self.backbone} needs at least {minimum} px, got {self.image_size}"
            )
        if self.mode == "features" and self.fine_tune_layers:
            raise ConfigError("fine_tune_layers: fine-tuning needs mode 'finetune', not 'features'")
        if not isinstance(self.augment, AugmentConfig):
            raise ConfigError("augment: must be an object of augmentation settings")
        self.augment.validate()

    @property
    def total_epochs(self) -> int:
        """Epochs of both stages: the head's, plus fine-tuning's when there is a stage 2."""
        return self.epochs + (self.fine_tune_epochs if self.fine_tune_layers else 0)

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


def head_training_choice(config: TrainConfig) -> tuple[str, str]:
    """How the head trains while the base is frozen: ("cached" or "live", why)."""
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


def metric_rises(monitor: str) -> bool:
    """True when a higher value of `monitor` is better (accuracy, F1), False for a loss."""
    return monitor.endswith("accuracy") or monitor.endswith("f1")


def field_limits(name: str) -> Limits | None:
    """The limits of a TrainConfig field ("dropout") or an augmentation one ("augment.rotation");
    None for a field without limits (data, augment)."""
    cls, short = (
        (AugmentConfig, name[len("augment.") :]) if name.startswith("augment.") else (TrainConfig, name)
    )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if short not in fields:
        raise KeyError(f"no config field {name!r}")
    return fields[short].metadata.get("limits")


def check_field(name: str, value: Any) -> str | None:
    """Why `value` is not acceptable for the field `name` (one line naming it), or None."""
    limits = field_limits(name)
    if limits is None or (value is None and limits.optional):
        return None
    if limits.kind is bool and not isinstance(value, bool):
        return f"{name}: must be true or false, got {value!r}"
    if limits.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{name}: must be a whole number, got {value!r}"
    if limits.kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{name}: must be a number, got {value!r}"
    if limits.kind is str and not isinstance(value, str):
        return f"{name}: must be text{' or null' if limits.optional else ''}, got {value!r}"
    if limits.choices and value not in limits.choices:
        return f"{name}: unknown value {value!r}; choose from {', '.join(limits.choices)}"
    if limits.low is None:
        return None
    above = value > limits.low if limits.low_open else value >= limits.low
    below = value < limits.high if limits.high_open else value <= limits.high
    if above and below:  # False for NaN too
        return None
    if limits.low_open or limits.high_open:
        return f"{name}: must be in {limits.interval}, got {value}"
    return f"{name}: must be between {_show(limits.low)} and {_show(limits.high)}, got {value}"


def _show(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _raise_first_problem(config: Any, prefix: str) -> None:
    for f in dataclasses.fields(config):
        if "limits" in f.metadata:
            problem = check_field(prefix + f.name, getattr(config, f.name))
            if problem:
                raise ConfigError(problem)


def _reject_unknown(cls: type, values: dict[str, Any], prefix: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s): {', '.join(prefix + u for u in unknown)}")
