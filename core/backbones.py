"""The registry of ImageNet-pretrained backbones.

The registry itself is plain data (no TensorFlow import), so the dashboard can list
backbones and their default sizes cheaply; `build_backbone` imports Keras.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Backbone:
    """How to build one `keras.applications` model and prepare its input."""

    application: str  # the constructor's name in keras.applications
    default_size: int
    preprocess: str  # mode of ImagePreprocess: "tf", "torch", "caffe" or "none"
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(
        "MobileNetV2", 224, "tf", {"alpha": 1.0}, "MobileNetV2 (3.5M params): a fast, accurate default"
    ),
    "mobilenet_v2_0.35": Backbone(
        "MobileNetV2", 224, "tf", {"alpha": 0.35}, "MobileNetV2 x0.35 (0.4M params): the quickest, for demos"
    ),
    "mobilenet_0.25": Backbone(
        "MobileNet", 224, "tf", {"alpha": 0.25}, "MobileNet v1 x0.25 (0.2M params): tiny"
    ),
    "inception_v3": Backbone(
        "InceptionV3", 299, "tf", {}, "InceptionV3 (22M params): the reference recipe's backbone"
    ),
    "efficientnet_b0": Backbone(
        "EfficientNetB0", 224, "none", {}, "EfficientNetB0 (4M params): accurate for its size"
    ),
    "resnet50": Backbone("ResNet50", 224, "caffe", {}, "ResNet50 (24M params): a classic"),
    "vgg16": Backbone("VGG16", 224, "caffe", {}, "VGG16 (15M params): large and slow"),
}


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights could not be downloaded; the message says where to put them."""


def keras_cache_dir() -> Path:
    """The folder where Keras looks for downloaded weights (KERAS_HOME as Keras read it)."""
    try:
        from keras.src.backend.config import keras_home  # fixed when Keras was imported

        return Path(keras_home()) / "models"
    except ImportError:
        return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def build_backbone(name: str, image_size: int, weights: str | None = "imagenet"):
    """Build the headless backbone `name` for square `image_size` inputs.

    Raises:
        WeightsUnavailableError: the weights were not cached and could not be fetched.
    """
    from core.tf_setup import keras

    spec = BACKBONES[name]
    constructor = getattr(keras.applications, spec.application)
    try:
        return constructor(
            include_top=False,
            weights=weights,
            input_shape=(image_size, image_size, 3),
            **spec.kwargs,
        )
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        missing = re.search(r"fetch failure on (\S+):\s", str(exc))
        if not missing:
            raise
        url = missing.group(1)
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights for {name} (offline?): put the file "
            f"'{url.rsplit('/', 1)[-1]}' in {keras_cache_dir()} (from {url})."
        ) from None
