"""The tf.data input pipeline and the augmentation layers.

Images are decoded by `core.data.load_image` (Pillow), so training reads every
format and mode the validator accepted, the same way prediction does. The same
`build_augmenter` serves training and the dashboard's preview.
"""

from __future__ import annotations

import math

import numpy as np

from core.config import AugmentConfig
from core.data import Split, load_image
from core.tf_setup import keras, tf

AUTOTUNE = tf.data.AUTOTUNE
# Keep decoded images in memory when they fit in this budget; otherwise re-decode.
CACHE_BUDGET_BYTES = 2 * 1024**3


def build_augmenter(config: AugmentConfig, seed: int | None = None) -> keras.Sequential:
    """Keras preprocessing layers for `config`; they act only when called with training=True."""
    fill = config.fill_mode
    layers = []
    if config.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation / 360.0, fill_mode=fill, seed=seed))
    if config.width_shift or config.height_shift:
        layers.append(
            keras.layers.RandomTranslation(config.height_shift, config.width_shift, fill_mode=fill, seed=seed)
        )
    if config.shear:
        layers.append(keras.layers.RandomShear(config.shear, config.shear, fill_mode=fill, seed=seed))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, config.zoom, fill_mode=fill, seed=seed))
    return keras.Sequential(layers, name="augmentation")


def augment_images(images: np.ndarray, config: AugmentConfig, seed: int | None = None) -> np.ndarray:
    """Augment a uint8 batch (N, H, W, 3) exactly as training does; returns uint8."""
    if config.is_identity:
        return images.copy()  # training skips augmentation too; an empty Sequential cannot run
    augmenter = build_augmenter(config, seed)
    out = augmenter(tf.convert_to_tensor(images, tf.float32), training=True)
    return np.clip(np.asarray(out), 0, 255).astype(np.uint8)


def make_dataset(
    split: Split,
    image_size: int,
    batch_size: int,
    num_classes: int,
    *,
    training: bool,
    augment: AugmentConfig | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 0-255 images, labels) for one split.

    Training data is shuffled each epoch and augmented; validation data is neither.
    Labels are float (N, 1) for 2 classes (sigmoid output), else int class indices.
    """
    paths = tf.constant(split.paths, tf.string)
    labels = np.asarray(split.labels, np.float32 if num_classes == 2 else np.int32)
    if num_classes == 2:
        labels = labels.reshape(-1, 1)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(_decoder(image_size), num_parallel_calls=AUTOTUNE)
    if len(split.paths) * image_size * image_size * 3 <= CACHE_BUDGET_BYTES:
        dataset = dataset.cache()  # decoded once, reused every epoch
    if training:
        dataset = dataset.shuffle(len(split.paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and augment is not None and not augment.is_identity:
        augmenter = build_augmenter(augment, seed)
        dataset = dataset.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def image_batches(
    paths: list[str], image_size: int, batch_size: int, augment: AugmentConfig | None = None, seed: int = 0
) -> tf.data.Dataset:
    """Batches of images alone, in file order (for embedding), optionally augmented."""
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), tf.zeros(len(paths))))
    dataset = dataset.map(_decoder(image_size), num_parallel_calls=AUTOTUNE).batch(batch_size)
    if augment is not None and not augment.is_identity:
        augmenter = build_augmenter(augment, seed)
        dataset = dataset.map(lambda x, y: augmenter(x, training=True), num_parallel_calls=AUTOTUNE)
    else:
        dataset = dataset.map(lambda x, y: x)
    return dataset.prefetch(AUTOTUNE)


def steps_per_epoch(split: Split, batch_size: int) -> int:
    return math.ceil(len(split.paths) / batch_size)


def _decoder(image_size: int):
    def decode_path(path: bytes) -> np.ndarray:
        return load_image(path.decode(), image_size).astype(np.float32)

    def decode(path, label):
        image = tf.numpy_function(decode_path, [path], tf.float32, stateful=False)
        image.set_shape((image_size, image_size, 3))
        return image, label

    return decode
