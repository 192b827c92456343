"""The registry of ImageNet-pretrained backbones.

The registry itself is plain data (no TensorFlow import), so the dashboard can list
backbones and their default sizes cheaply; `build_backbone` imports Keras.
"""

from __future__ import annotations

import os
import re
import sys
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
    min_size: int = 32  # Keras refuses smaller inputs
    # Sizes with their own ImageNet weights file; another size loads the 224 file with a
    # warning (MobileNets). Empty: one file for every size.
    weight_sizes: tuple[int, ...] = ()
    weights_file: str = ""  # Keras's file name; {alpha} and {size} filled in by weights_file_name


MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
MOBILENET_SIZES = (128, 160, 192, 224)


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(
        "MobileNetV2", 224, "tf", {"alpha": 1.0}, "MobileNetV2 (3.5M params): a fast, accurate default",
        weight_sizes=MOBILENET_V2_SIZES,
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
    ),
    "mobilenet_v2_0.35": Backbone(
        "MobileNetV2", 224, "tf", {"alpha": 0.35}, "MobileNetV2 x0.35 (0.4M params): the quickest, for demos",
        weight_sizes=MOBILENET_V2_SIZES,
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5",
    ),
    "mobilenet_0.25": Backbone(
        "MobileNet", 224, "tf", {"alpha": 0.25}, "MobileNet v1 x0.25 (0.2M params): tiny",
        weight_sizes=MOBILENET_SIZES, weights_file="mobilenet_2_5_{size}_tf_no_top.h5",
    ),
    "inception_v3": Backbone(
        "InceptionV3", 299, "tf", {}, "InceptionV3 (22M params): the reference recipe's backbone",
        min_size=75, weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "efficientnet_b0": Backbone(
        "EfficientNetB0", 224, "none", {}, "EfficientNetB0 (4M params): accurate for its size",
        weights_file="efficientnetb0_notop.h5",
    ),
    "resnet50": Backbone(
        "ResNet50", 224, "caffe", {}, "ResNet50 (24M params): a classic",
        weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "vgg16": Backbone(
        "VGG16", 224, "caffe", {}, "VGG16 (15M params): large and slow",
        weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}  # fmt: skip


def snap_image_size(name: str, size: int) -> tuple[int, str | None]:
    """(the size to train at, why it differs from `size`, or None): a MobileNet has ImageNet
    weights for a few sizes only; at another one Keras loads the 224 px weights with a raw
    warning, so the nearest size with its own weights is taken instead."""
    spec = BACKBONES[name]
    if not spec.weight_sizes or size in spec.weight_sizes or size < spec.min_size:
        return size, None
    nearest = min(spec.weight_sizes, key=lambda s: (abs(s - size), s))
    sizes = ", ".join(map(str, spec.weight_sizes))
    return nearest, f"{name} has ImageNet weights for {sizes} px only: {size} px becomes {nearest} px."


def weights_file_name(name: str, size: int) -> str:
    """The file Keras looks for in its cache to build `name` at `size` with ImageNet weights."""
    spec = BACKBONES[name]
    if spec.weight_sizes and size not in spec.weight_sizes:
        size = 224  # Keras loads the 224 px file for other sizes
    return spec.weights_file.format(size=size)


def weights_problem(name: str, size: int, downloadable: bool) -> str | None:
    """Why `name` cannot start from ImageNet weights here (the file is not in the Keras cache
    and cannot be downloaded), with what to do; None when it can."""
    file_name = weights_file_name(name, size)
    if downloadable or (keras_cache_dir() / file_name).is_file():
        return None
    return (
        f"The ImageNet weights for {name} are not on this machine and cannot be downloaded (offline): "
        f"put the file '{file_name}' in {keras_cache_dir()}, or choose another backbone."
    )


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights could not be downloaded; the message says where to put them."""


def keras_cache_dir() -> Path:
    """The folder where Keras looks for downloaded weights (KERAS_HOME as Keras read it, or as
    it will read it: Keras is never imported here just to ask, the dashboard stays light)."""
    if "keras" in sys.modules:
        try:
            from keras.src.backend.config import keras_home  # fixed when Keras was imported

            return Path(keras_home()) / "models"
        except ImportError:
            pass
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
