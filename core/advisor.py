"""The strategy advisor: which transfer-learning recipe fits a dataset.

    python -m core.advisor DATASET [--sample-per-class 20]

prints the recommendation and its TrainConfig preset as JSON; exits with status 2 and a
one-line error on bad input (no dataset, weights not available offline).

The classic advice (CS231n, "Transfer Learning") crosses two questions:

                      similar to ImageNet                    different from ImageNet
    small dataset     linear classifier on top features      linear classifier on features
                                                              from an earlier layer
    large dataset     fine-tune the top layers               fine-tune more of the network

Size is the smallest class's image count. Similarity is measured, not guessed: a sample
of the images goes through an ImageNet-pretrained MobileNetV2, and the activation
statistics at each of its BatchNormalization layers are compared with the statistics
that layer stored while training on ImageNet. Images like ImageNet's produce activations
like ImageNet's; noise, flat colours and simple drawings do not. It measures image
statistics, not meaning: horse-or-human in colour negative still scores 0.90, heavily
blurred (radius 8) 0.47, grayscale 0.85.

Why not "how confidently an ImageNet classifier recognises them": measured with
MobileNetV2 1.0 and its ImageNet top on 20-image samples, horse-or-human renders got a
mean top-1 probability of 0.24-0.49 while random noise got 0.63-0.90 (all "velvet"):
confidence ranks noise as the more ImageNet-like, so it cannot decide the strategy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.cli import fail
from core.data import evenly_spaced, load_image, scan_dataset

LARGE_DATASET_PER_CLASS = 1000  # a class with fewer images than this makes the dataset "small"
SIMILARITY_BACKBONE = "mobilenet_v2_0.35"  # its weights carry real ImageNet BatchNorm statistics
SIMILARITY_IMAGE_SIZE = 224  # the size those statistics were gathered at
# similarity = 1 / (1 + divergence / DIVERGENCE_SCALE): 0.5 at a divergence of DIVERGENCE_SCALE.
# Measured on 2x20-image samples: horse-or-human divergence 0.028 (train split) and 0.145
# (validation only), similarity 0.92 / 0.67; synthetic uniform and Gaussian noise, flat
# colours, the colour-noise test fixture, shapes, checkerboards, smooth blobs: 0.46-0.90,
# similarity 0.25-0.39. The threshold sits in the gap.
DIVERGENCE_SCALE = 0.3
SIMILARITY_THRESHOLD = 0.5  # at or above: "similar" to ImageNet
BATCH_SIZE = 8
_BN_EPSILON = 1e-3  # MobileNetV2's BatchNormalization epsilon

SMALL_SIMILAR = "linear classifier on top features"
LARGE_SIMILAR = "fine-tune the top layers"
SMALL_DIFFERENT = "linear classifier on features from an earlier layer"
LARGE_DIFFERENT = "fine-tune more of the network"

# TrainConfig fields for each strategy. Every preset sets the same keys, so applying one
# replaces everything another set. `learning_rate` is the head's (first stage); the
# fine-tuning stage is expected to use about a tenth of it. MobileNetV2 (1.0) has 154
# layers: the top 29 are blocks 14-16 and Conv_1 (the 7x7 stage), the top 100 start at
# block 6; "block_13_expand_relu" is the 14x14x576 map before the last stage.
STRATEGY_PRESETS: dict[str, dict] = {
    SMALL_SIMILAR: dict(
        mode="features",
        classifier="logreg",
        fine_tune_layers=0,
        feature_layer=None,
        backbone="mobilenet_v2",
        epochs=10,
        learning_rate=1e-3,
    ),
    LARGE_SIMILAR: dict(
        mode="finetune",
        classifier="logreg",
        fine_tune_layers=29,
        feature_layer=None,
        backbone="mobilenet_v2",
        epochs=10,
        learning_rate=1e-3,
    ),
    SMALL_DIFFERENT: dict(
        mode="features",
        classifier="logreg",
        fine_tune_layers=0,
        feature_layer="block_13_expand_relu",
        backbone="mobilenet_v2",
        epochs=10,
        learning_rate=1e-3,
    ),
    LARGE_DIFFERENT: dict(
        mode="finetune",
        classifier="logreg",
        fine_tune_layers=100,
        feature_layer=None,
        backbone="mobilenet_v2",
        epochs=20,
        learning_rate=1e-3,
    ),
}

_REASONS = {
    SMALL_SIMILAR: (
        "With few images from a domain ImageNet already covers, the backbone's top features "
        "describe your classes well: train only a linear classifier on them. It is fast, and "
        "fine-tuning the backbone on so few images would overfit."
    ),
    LARGE_SIMILAR: (
        "With many images from an ImageNet-like domain, fine-tuning the top layers adapts the "
        "most specific features to your classes with little risk of overfitting."
    ),
    SMALL_DIFFERENT: (
        "Your images look unlike ImageNet, so the backbone's top features are too specific to "
        "ImageNet's classes, while its earlier layers detect generic edges, textures and parts. "
        "With few images, train a linear classifier on those earlier features instead of fine-tuning."
    ),
    LARGE_DIFFERENT: (
        "Your images look unlike ImageNet, but there are enough of them to retrain much of the "
        "network: fine-tune more of its layers, starting from the ImageNet weights."
    ),
}


@dataclass
class Advice:
    """What the advisor measured and which strategy it recommends."""

    images_per_class_min: int
    images_per_class_mean: float
    counts: dict[str, int]  # images per class in the training split (or the whole unsplit set)
    similarity: float  # in [0, 1]; 1 = activations exactly like ImageNet's
    divergence: float  # mean over BatchNorm layers of the median per-channel KL divergence
    sample_size: int  # images the similarity was measured on
    similarity_method: str
    size_label: str  # "small" or "large"
    similarity_label: str  # "similar" or "different"
    strategy: str
    explanation: str
    preset: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def advise(dataset_root: str | os.PathLike, sample_per_class: int = 20) -> Advice:
    """Measure a dataset's size and similarity to ImageNet and recommend a strategy.

    Args:
        dataset_root: a folder of class folders, or one split into train/validation[/test].
        sample_per_class: images per class (evenly spread over each class's sorted files)
            to measure similarity on.

    Raises:
        DatasetError: the folder is not a usable dataset.
        WeightsUnavailableError: the ImageNet weights are not cached and cannot be fetched.
        ValueError: `sample_per_class` < 1, or no sampled image could be read.
    """
    if sample_per_class < 1:
        raise ValueError(f"sample_per_class must be at least 1, got {sample_per_class}")
    report = scan_dataset(dataset_root, validate=False)  # counting only: no need to open every file
    split = report.splits.get("train") or report.splits["all"]
    counts = split.counts(report.class_names)
    sample = _sample(split.paths, split.labels, sample_per_class)
    divergence, measured = imagenet_divergence(sample)
    similarity = similarity_from_divergence(divergence)
    smallest, mean = min(counts.values()), float(np.mean(list(counts.values())))
    size_label, similarity_label, strategy = choose_strategy(smallest, similarity)
    method = (
        f"activation statistics of {SIMILARITY_BACKBONE}'s BatchNorm layers on {measured} sample "
        f"images vs ImageNet's (mean KL divergence {divergence:.3f}; "
        f"similarity = 1 / (1 + divergence / {DIVERGENCE_SCALE}))"
    )
    advice = Advice(
        images_per_class_min=smallest,
        images_per_class_mean=mean,
        counts=counts,
        similarity=similarity,
        divergence=divergence,
        sample_size=measured,
        similarity_method=method,
        size_label=size_label,
        similarity_label=similarity_label,
        strategy=strategy,
        explanation="",
        preset=dict(STRATEGY_PRESETS[strategy]),
    )
    advice.explanation = explain(advice)
    return advice


def choose_strategy(images_per_class_min: int, similarity: float) -> tuple[str, str, str]:
    """(size label, similarity label, strategy name) for the numbers measured."""
    size_label = "large" if images_per_class_min >= LARGE_DATASET_PER_CLASS else "small"
    similarity_label = "similar" if similarity >= SIMILARITY_THRESHOLD else "different"
    strategy = {
        ("small", "similar"): SMALL_SIMILAR,
        ("large", "similar"): LARGE_SIMILAR,
        ("small", "different"): SMALL_DIFFERENT,
        ("large", "different"): LARGE_DIFFERENT,
    }[(size_label, similarity_label)]
    return size_label, similarity_label, strategy


def similarity_from_divergence(divergence: float) -> float:
    """Map a divergence (>= 0) to a similarity in [0, 1]: 1 at 0, 0.5 at DIVERGENCE_SCALE."""
    return float(1.0 / (1.0 + max(float(divergence), 0.0) / DIVERGENCE_SCALE))


def explain(advice: Advice) -> str:
    """One paragraph that shows the numbers behind the recommendation."""
    a = advice
    preposition = "to" if a.similarity_label == "similar" else "from"
    size = (
        f"Your smallest class has {a.images_per_class_min} images (mean {a.images_per_class_mean:.0f} "
        f"per class); {LARGE_DATASET_PER_CLASS} or more per class counts as large, so the dataset is "
        f"{a.size_label}."
    )
    look = (
        f"On {a.sample_size} sample images, ImageNet-pretrained MobileNetV2's activations differ "
        f"from its ImageNet statistics by {a.divergence:.3f} (KL divergence), a similarity of "
        f"{a.similarity:.2f} ({SIMILARITY_THRESHOLD} or more counts as similar), so your images "
        f"are {a.similarity_label} {preposition} ImageNet's."
    )
    return f"{size} {look} Recommended: {a.strategy}. {_REASONS[a.strategy]}"


def _sample(paths: list[str], labels: list[int], per_class: int) -> list[str]:
    """Up to `per_class` paths of each class, evenly spread over its files (deterministic)."""
    chosen = []
    for label in sorted(set(labels)):
        files = [p for p, y in zip(paths, labels) if y == label]
        count = min(per_class, len(files))
        chosen += evenly_spaced(files, count)
    return chosen


def imagenet_divergence(paths: list[str | Path]) -> tuple[float, int]:
    """How far the images' BatchNorm-input statistics are from ImageNet's; (divergence, images used).

    For every BatchNormalization layer of the ImageNet-pretrained backbone, each channel's
    mean and variance over the sample (all images and positions) are compared with the
    layer's moving mean and variance through the KL divergence of two Gaussians; the
    median over channels is averaged over layers. Unreadable images are left out.

    Raises:
        ValueError: none of the images could be read.
        WeightsUnavailableError: the weights are not cached and cannot be fetched.
    """
    images = []
    for path in paths:
        try:
            images.append(load_image(path, SIMILARITY_IMAGE_SIZE))
        except Exception:  # a damaged file does not spoil the sample
            continue
    if not images:
        raise ValueError("none of the sampled images could be read")
    probe, moving = _statistics_probe()
    sums = None
    for start in range(0, len(images), BATCH_SIZE):
        batch = np.stack(images[start : start + BATCH_SIZE]).astype(np.float32)
        outputs = [np.asarray(o, dtype=np.float64).sum(axis=0) for o in probe(batch, training=False)]
        sums = outputs if sums is None else [s + o for s, o in zip(sums, outputs)]
    means = [s / len(images) for s in sums]
    divergences = []
    for (mean, mean_square), (moving_mean, moving_var) in zip(zip(means[::2], means[1::2]), moving):
        var = np.maximum(mean_square - mean**2, 0.0) + _BN_EPSILON
        ref_var = moving_var + _BN_EPSILON
        kl = 0.5 * (np.log(ref_var / var) + (var + (mean - moving_mean) ** 2) / ref_var - 1.0)
        divergences.append(float(np.median(kl)))
    return float(np.mean(divergences)), len(images)


def _statistics_probe():
    """A model from raw pixels to each BatchNorm input's per-image channel mean and mean square."""
    from core.backbones import BACKBONES, build_backbone
    from core.model import ImagePreprocess
    from core.tf_setup import keras

    base = build_backbone(SIMILARITY_BACKBONE, SIMILARITY_IMAGE_SIZE, "imagenet")
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    outputs = []
    for layer in norms:
        outputs += [
            keras.ops.mean(layer.input, axis=(1, 2)),
            keras.ops.mean(keras.ops.square(layer.input), axis=(1, 2)),
        ]
    inputs = keras.Input((SIMILARITY_IMAGE_SIZE, SIMILARITY_IMAGE_SIZE, 3))
    pixels = ImagePreprocess(BACKBONES[SIMILARITY_BACKBONE].preprocess)(inputs)
    probe = keras.Model(base.input, outputs)
    wrapped = keras.Model(inputs, probe(pixels))
    moving = [
        (layer.moving_mean.numpy().astype(np.float64), layer.moving_variance.numpy().astype(np.float64))
        for layer in norms
    ]
    return wrapped, moving


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.advisor", description="Recommend a strategy.")
    parser.add_argument("dataset", help="a folder of class folders, or one with train/ and validation/")
    parser.add_argument("--sample-per-class", type=int, default=20, help="images per class to measure")
    args = parser.parse_args(argv)
    from core.backbones import WeightsUnavailableError
    from core.data import DatasetError

    try:
        advice = advise(args.dataset, args.sample_per_class)
    except (DatasetError, WeightsUnavailableError, ValueError) as exc:
        return fail(str(exc))
    print(advice.explanation)
    print(json.dumps({"strategy": advice.strategy, "preset": advice.preset}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
