"""The tf.data pipeline and the augmentation layers."""

import numpy as np
import pytest

from core.config import AugmentConfig
from core.data import scan_dataset
from core.pipeline import augment_images, build_augmenter, make_dataset

REFERENCE = AugmentConfig(
    rotation=40, width_shift=0.2, height_shift=0.2, shear=0.2, horizontal_flip=True, fill_mode="nearest"
)


def _batch(n=4, size=32):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_one_fused_transform_carries_every_knob():
    [layer] = build_augmenter(REFERENCE).layers
    assert type(layer).__name__ == "RandomAffine" and layer.config == REFERENCE


@pytest.mark.parametrize(
    "config",
    [
        AugmentConfig(rotation=30),
        AugmentConfig(width_shift=0.3),
        AugmentConfig(height_shift=0.3),
        AugmentConfig(shear=0.3),
        AugmentConfig(zoom=0.3),
        AugmentConfig(horizontal_flip=True),
    ],
    ids=["rotation", "width_shift", "height_shift", "shear", "zoom", "flip"],
)
def test_each_knob_alone_changes_the_images(config):
    images = _batch(8)
    assert not np.array_equal(augment_images(images, config, seed=3), images)


def test_a_flip_mirrors_exactly():
    image = np.zeros((1, 8, 8, 3), np.uint8)
    image[0, :, :2] = 255  # a bright stripe on the left
    outs = augment_images(np.repeat(image, 16, 0), AugmentConfig(horizontal_flip=True), seed=0)
    flipped = [o for o in outs if o[:, -2:].mean() > 200]
    assert flipped and all(np.array_equal(o, image[0, :, ::-1]) for o in flipped)
    assert len(flipped) < 16  # about half


def test_augmentation_keeps_shape_and_changes_pixels():
    images = _batch()
    out = augment_images(images, REFERENCE, seed=1)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)


def test_augmentation_is_deterministic_for_a_seed():
    images = _batch()
    first = augment_images(images, REFERENCE, seed=7)
    assert np.array_equal(first, augment_images(images, REFERENCE, seed=7))
    assert not np.array_equal(first, augment_images(images, REFERENCE, seed=8))


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant", "wrap"])
def test_every_fill_mode_runs(fill_mode):
    out = augment_images(_batch(2), AugmentConfig(rotation=30, fill_mode=fill_mode), seed=0)
    assert out.shape == (2, 32, 32, 3)


def test_identity_config_leaves_images_alone():
    images = _batch()
    assert np.array_equal(augment_images(images, AugmentConfig(), seed=0), images)


def test_training_data_is_augmented_and_shuffled_validation_is_not(color_dataset):
    split = scan_dataset(color_dataset).splits["all"]
    val = make_dataset(split, 24, 4, 2, training=False)
    first, second = [np.concatenate([y for _, y in val]) for _ in range(2)]
    assert first.ravel().tolist() == split.labels == second.ravel().tolist()  # file order, every pass
    x_val = np.concatenate([x for x, _ in val])
    assert np.array_equal(x_val, np.concatenate([x for x, _ in val]))  # never augmented
    assert x_val.shape == (16, 24, 24, 3) and x_val.max() > 1  # raw 0-255 pixels

    train = make_dataset(split, 24, 4, 2, training=True, augment=REFERENCE, seed=0)
    labels = [np.concatenate([y for _, y in train]).ravel().tolist() for _ in range(2)]
    assert sorted(labels[0]) == sorted(split.labels) and labels[0] != split.labels


def test_multiclass_labels_are_integer_indices(tmp_path):
    from tests.helpers import make_color_dataset

    root = make_color_dataset(
        tmp_path / "c", per_class=2, classes={"a": (255, 0, 0), "b": (0, 255, 0), "c": (0, 0, 255)}
    )
    split = scan_dataset(root).splits["all"]
    _, y = next(iter(make_dataset(split, 16, 6, 3, training=False)))
    assert y.dtype.name == "int32" and y.numpy().tolist() == [0, 0, 1, 1, 2, 2]


def test_every_pipeline_runs_without_the_autotuner(color_dataset):
    # Tearing down an autotuned iterator stalled ~4 s here in about half the cases, which
    # is a whole extra epoch of waiting on short runs: the pipelines use fixed settings.
    from core.pipeline import image_batches

    split = scan_dataset(color_dataset).splits["all"]
    pipelines = [
        make_dataset(split, 24, 4, 2, training=False),
        make_dataset(split, 24, 4, 2, training=True, augment=REFERENCE),
        image_batches(split.paths, 24, 4),
        image_batches(split.paths, 24, 4, augment=REFERENCE),
    ]
    assert all(p.options().autotune.enabled is False for p in pipelines)
    assert [sum(int(x.shape[0]) for x in image_batches(split.paths, 24, 4))] == [len(split.paths)]
