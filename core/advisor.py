"""The strategy advisor: which transfer-learning recipe fits a dataset.

    python -m core.advisor DATASET [--sample-per-class 20]

prints the recommendation and its TrainConfig preset as JSON; exits with status 2 and a
one-line error on bad input (no dataset, weights not available offline).

The classic advice (CS231n, "Transfer Learning") crosses two questions:

                      similar to ImageNet                    different from ImageNet
    small dataset     linear classifier on top features      linear classifier on features
                                                              from an earlier layer
    large dataset     fine-tune the top layers               fine-tune more of the network

Size is the smallest class's image count. Similarity is measured from what the features
do, not guessed: on a sample of the training images, logistic regression is cross-validated
on the pooled features of an ImageNet-pretrained MobileNetV2 (the network auto mode uses)
at its top and at the ends of two earlier stages, and on the same network with random
weights (the control):

    similarity = (top - random) / (best layer - random)

the share of what ImageNet's features add over random ones that the TOP layer keeps. Near
1: the top features, the most ImageNet-specific, serve these classes as well as any (like
ImageNet). Lower: earlier, more generic layers do better (unlike ImageNet). When pretrained
features add nothing over random ones (noise, flat colours), similarity is 0.

The earlier measure compared BatchNorm activation statistics with ImageNet's; it separated
noise from photos but called 4-class medical scans "similar" (0.84; horse-or-human 0.89)
and recommended the top-layer probe, the worst option there.

The recommendation keeps the four classic strategies as the explanation; its one-click
preset is auto mode, which measures the same candidates on all the images and keeps the best.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.cli import exit_now, fail
from core.data import evenly_spaced, load_image, scan_dataset

LARGE_DATASET_PER_CLASS = 1000  # a class with fewer images than this makes the dataset "small"
SIMILARITY_BACKBONE = "mobilenet_v2"  # what auto mode (the one-click preset) trains on
SIMILARITY_IMAGE_SIZE = 224
# At or above: "similar" (the top layer keeps 95% of what ImageNet's features add over random
# ones). Measured with 40 images per class: blood-cell microscopy (pbc) 0.90 (top 0.873,
# block_13_expand_relu 0.895, random 0.670); horse-or-human 1.00 (the top is the best layer).
SIMILARITY_THRESHOLD = 0.95
MIN_IMAGENET_GAIN = 0.02  # pretrained must beat random features by this much to count at all
BATCH_SIZE = 16
RANDOM_SEED = 0

SMALL_SIMILAR = "linear classifier on top features"
LARGE_SIMILAR = "fine-tune the top layers"
SMALL_DIFFERENT = "linear classifier on features from an earlier layer"
LARGE_DIFFERENT = "fine-tune more of the network"


def _preset(mode: str, fine_tune_layers: int = 0, feature_layer: str | None = None, epochs: int = 10) -> dict:
    """The keys every preset sets, so applying one replaces everything another set."""
    return dict(
        mode=mode,
        classifier="logreg",
        fine_tune_layers=fine_tune_layers,
        feature_layer=feature_layer,
        backbone="mobilenet_v2",
        epochs=epochs,
        learning_rate=1e-3,
    )


# TrainConfig fields for each strategy. `learning_rate` is the head's (first stage); the
# fine-tuning stage is expected to use about a tenth of it. MobileNetV2 (1.0) has 154
# layers: the top 29 are blocks 14-16 and Conv_1 (the 7x7 stage), the top 100 start at
# block 6; "block_13_expand_relu" is the 14x14x576 map before the last stage.
STRATEGY_PRESETS: dict[str, dict] = {
    SMALL_SIMILAR: _preset("features"),
    LARGE_SIMILAR: _preset("finetune", fine_tune_layers=29),
    SMALL_DIFFERENT: _preset("features", feature_layer="block_13_expand_relu"),
    LARGE_DIFFERENT: _preset("finetune", fine_tune_layers=100, epochs=20),
}

# The one-click preset: auto mode on the project's default backbone.
AUTO_PRESET: dict = _preset("auto")

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
    similarity: float  # in [0, 1]; the share of ImageNet's gain over random features the top keeps
    scores: dict  # cross-validated macro-F1: {"imagenet": {layer: score}, "random": {layer: score}}
    sample_size: int  # images the similarity was measured on
    similarity_method: str
    size_label: str  # "small" or "large"
    similarity_label: str  # "similar" or "different"
    strategy: str
    explanation: str
    preset: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def advise(dataset_root: str | os.PathLike, sample_per_class: int = 40) -> Advice:
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
    sample, labels = _sample(split.paths, split.labels, sample_per_class)
    scores, measured = transfer_scores(sample, labels)
    similarity = similarity_from_scores(scores)
    smallest, mean = min(counts.values()), float(np.mean(list(counts.values())))
    size_label, similarity_label, strategy = choose_strategy(smallest, similarity)
    method = (
        f"cross-validated logistic regression on {measured} sample images: {SIMILARITY_BACKBONE}'s "
        "top layer against its earlier layers, with random weights as the control; similarity = "
        "(top - random) / (best layer - random)"
    )
    advice = Advice(
        images_per_class_min=smallest,
        images_per_class_mean=mean,
        counts=counts,
        similarity=similarity,
        scores=scores,
        sample_size=measured,
        similarity_method=method,
        size_label=size_label,
        similarity_label=similarity_label,
        strategy=strategy,
        explanation="",
        preset=dict(AUTO_PRESET),
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


def similarity_from_scores(scores: dict) -> float:
    """(top - random) / (best layer - random) from `transfer_scores`, clipped to [0, 1]; 0 when
    ImageNet's features add less than MIN_IMAGENET_GAIN over random ones anywhere."""
    imagenet, random = scores["imagenet"], scores["random"]
    top, best, control = imagenet["top"], max(imagenet.values()), max(random.values())
    if best - control < MIN_IMAGENET_GAIN:
        return 0.0
    return float(np.clip((top - control) / (best - control), 0.0, 1.0))


def explain(advice: Advice) -> str:
    """One paragraph that shows the numbers behind the recommendation."""
    a = advice
    preposition = "to" if a.similarity_label == "similar" else "from"
    size = (
        f"Your smallest class has {a.images_per_class_min} images (mean {a.images_per_class_mean:.0f} "
        f"per class); {LARGE_DATASET_PER_CLASS} or more per class counts as large, so the dataset is "
        f"{a.size_label}."
    )
    imagenet, random = a.scores["imagenet"], a.scores["random"]
    earlier = max((k for k in imagenet if k != "top"), key=imagenet.get, default=None)
    look = (
        f"On {a.sample_size} sample images, cross-validated macro-F1 with ImageNet-pretrained "
        f"MobileNetV2 features is {imagenet['top']:.3f} at the top layer"
        + (f" and {imagenet[earlier]:.3f} at {earlier}" if earlier else "")
        + f", against {max(random.values()):.3f} with random weights (the control): a similarity "
        f"of {a.similarity:.2f} ({SIMILARITY_THRESHOLD} or more counts as similar), so your images "
        f"are {a.similarity_label} {preposition} ImageNet's."
    )
    return (
        f"{size} {look} Recommended: {a.strategy}. {_REASONS[a.strategy]} The one-click preset "
        "trains in auto mode, which measures these options on all your images and keeps the best."
    )


def _sample(paths: list[str], labels: list[int], per_class: int) -> tuple[list[str], list[int]]:
    """Up to `per_class` paths of each class, evenly spread over its files (deterministic),
    and their labels."""
    chosen, chosen_labels = [], []
    for label in sorted(set(labels)):
        files = [p for p, y in zip(paths, labels) if y == label]
        count = min(per_class, len(files))
        picked = evenly_spaced(files, count)
        chosen += picked
        chosen_labels += [label] * len(picked)
    return chosen, chosen_labels


def transfer_scores(paths: list[str | Path], labels: list[int]) -> tuple[dict, int]:
    """Cross-validated logistic-regression macro-F1 per layer (auto mode's candidate layers),
    with ImageNet weights and with random weights; ({"imagenet": {...}, "random": {...}}, images
    used). Unreadable images are left out.

    Raises:
        ValueError: none of the images could be read.
        DatasetError: some class has fewer than 2 readable images (nothing to cross-validate).
        WeightsUnavailableError: the weights are not cached and cannot be fetched.
    """
    from core.auto import candidate_layers, cross_validate, cv_folds, layer_extractor, layer_label
    from core.backbones import build_backbone
    from core.config import TrainConfig
    from core.tf_setup import keras

    images, kept = [], []
    for path, label in zip(paths, labels):
        try:
            images.append(load_image(path, SIMILARITY_IMAGE_SIZE))
            kept.append(label)
        except Exception:  # a damaged file does not spoil the sample
            continue
    if not images:
        raise ValueError("none of the sampled images could be read")
    y = np.unique(kept, return_inverse=True)[1]
    folds = cv_folds(y, RANDOM_SEED)
    pixels = np.stack(images).astype(np.float32)
    config = TrainConfig(data="-", backbone=SIMILARITY_BACKBONE, image_size=SIMILARITY_IMAGE_SIZE)
    scores = {}
    for name, weights in (("imagenet", "imagenet"), ("random", None)):
        keras.utils.set_random_seed(RANDOM_SEED)  # the same random control every time
        base = build_backbone(SIMILARITY_BACKBONE, SIMILARITY_IMAGE_SIZE, weights)
        layers = candidate_layers(base)
        outputs = layer_extractor(config, base, layers).predict(pixels, batch_size=BATCH_SIZE, verbose=0)
        scores[name] = {
            layer_label(layer): round(
                cross_validate("logreg", layer, x, y, folds, int(y.max()) + 1).cv_mean, 4
            )
            for layer, x in zip(layers, outputs)
        }
    return scores, len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.advisor", description="Recommend a strategy.")
    parser.add_argument("dataset", help="a folder of class folders, or one with train/ and validation/")
    parser.add_argument("--sample-per-class", type=int, default=40, help="images per class to measure")
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
    exit_now(main())
