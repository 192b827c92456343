"""Augmented samples for the Data page, made by the same augmenter training uses.

TensorFlow is imported on the first call, not at import.
"""

from __future__ import annotations

import random

import numpy as np

from core.config import AugmentConfig
from core.data import DatasetReport, load_image


def preview_paths(report: DatasetReport, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` random (path, class name) pairs from the training images (all, when unsplit)."""
    split = report.splits.get("train") or report.splits["all"]
    pairs = list(zip(split.paths, (report.class_names[i] for i in split.labels)))
    return random.Random(seed).sample(pairs, min(count, len(pairs)))


def load_batch(paths: list[str], size: int) -> np.ndarray:
    """Decode images as training does (Pillow, RGB, `size` x `size`) into one uint8 batch."""
    return np.stack([load_image(path, size) for path in paths])


def augment_batch(images: np.ndarray, augment: AugmentConfig, seed: int) -> np.ndarray:
    """`core.pipeline.augment_images`, imported on first use: TensorFlow loads only when needed."""
    from core.pipeline import augment_images

    return augment_images(images, augment, seed=seed)


def augment_repeated(path: str, augment: AugmentConfig, count: int, size: int, seed: int) -> np.ndarray:
    """One image augmented `count` times: each copy gets its own random transform."""
    image = load_image(path, size)
    return augment_batch(np.repeat(image[None], count, axis=0), augment, seed)
