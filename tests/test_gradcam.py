"""Grad-CAM: the heatmap follows the object, on the models build_model makes and on checkpoints.

The learning test trains a head on the real (frozen) MobileNetV2 0.35 to tell a bright
square on a dark background ("square") from the background alone ("blank"), then moves
the square: the heatmap's centre of mass must move with it. Input 128 px (4x4 feature
map); the keras_home fixture holds the 224 weights under the 128 name too.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from core.config import TrainConfig
from core.gradcam import (
    GradCamUnavailableError,
    colorize,
    gradcam,
    gradcam_available,
    gradcam_refusal,
    overlay,
)
from core.model import build_model
from core.predict import load_classifier

SIZE = 128
SQUARE = 26


def _scene(rng: np.random.Generator, corner: tuple[int, int] | None, size: int = SIZE) -> np.ndarray:
    """Dark noisy background; with `corner` (y, x), a bright square there."""
    image = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
    if corner is not None:
        y, x = corner
        image[y : y + SQUARE, x : x + SQUARE] = 230
    return image


def _centre_of_mass(heatmap: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[: heatmap.shape[0], : heatmap.shape[1]]
    return np.array([(heatmap * rows).sum(), (heatmap * cols).sum()]) / heatmap.sum()


@pytest.fixture(scope="module")
def square_model(keras_home):
    """MobileNetV2 0.35 (ImageNet, frozen) + a sigmoid head fit on 64 synthetic scenes; class 1 = square."""
    from core.tf_setup import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    corners = rng.integers(0, SIZE - SQUARE, (32, 2))
    images = [_scene(rng, tuple(c)) for c in corners] + [_scene(rng, None) for _ in range(32)]
    labels = np.array([1.0] * 32 + [0.0] * 32, np.float32)[:, None]
    config = TrainConfig(
        data="synthetic", backbone="mobilenet_v2_0.35", image_size=SIZE, dropout=0.0, learning_rate=3e-3
    )
    model = build_model(config, 2)
    model.fit(np.stack(images).astype(np.float32), labels, epochs=5, batch_size=16, verbose=0)
    return model


@pytest.mark.parametrize(
    "corner_a, corner_b",
    [((12, 12), (90, 90)), ((12, 90), (90, 12))],
    ids=["top-left vs bottom-right", "top-right vs bottom-left"],
)
def test_heatmap_follows_the_square(square_model, corner_a, corner_b):
    rng = np.random.default_rng(7)
    image_a, image_b = _scene(rng, corner_a), _scene(rng, corner_b)
    probabilities = square_model.predict(np.stack([image_a, image_b]).astype(np.float32), verbose=0)
    assert (probabilities > 0.5).all()  # both seen as "square": the heatmaps explain that class
    centre_a = np.array(corner_a) + SQUARE / 2
    centre_b = np.array(corner_b) + SQUARE / 2
    heat_a, heat_b = gradcam(square_model, image_a), gradcam(square_model, image_b)
    for heat in (heat_a, heat_b):
        assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
        assert heat.min() >= 0 and heat.max() == pytest.approx(1.0) and heat.std() > 0.1
    mass_a, mass_b = _centre_of_mass(heat_a), _centre_of_mass(heat_b)
    assert np.linalg.norm(mass_a - centre_a) < np.linalg.norm(mass_a - centre_b)
    assert np.linalg.norm(mass_b - centre_b) < np.linalg.norm(mass_b - centre_a)
    peak_a = np.unravel_index(heat_a.argmax(), heat_a.shape)
    assert np.linalg.norm(peak_a - centre_a) < np.linalg.norm(peak_a - centre_b)


def test_the_other_class_looks_away_from_the_square(square_model):
    """For a single sigmoid unit, class 0's evidence is the negated logit: not the square."""
    image = _scene(np.random.default_rng(8), (12, 12))
    centre = np.array((12, 12)) + SQUARE / 2
    square, blank = gradcam(square_model, image, class_index=1), gradcam(square_model, image, class_index=0)
    assert np.array_equal(square, gradcam(square_model, image))  # the predicted class is the default
    assert np.linalg.norm(_centre_of_mass(blank) - centre) > np.linalg.norm(_centre_of_mass(square) - centre)


@pytest.mark.parametrize(
    "pooling, dense_units, classes, feature_layer",
    [("flatten", 8, 2, None), ("avg", 0, 3, None), ("avg", 0, 2, "block_13_expand_relu")],
)
def test_any_head_and_image_size(pooling, dense_units, classes, feature_layer):
    """Random weights: plumbing only. A 50x70 image gets a 50x70 heatmap for every class."""
    config = TrainConfig(
        data="x",
        backbone="mobilenet_v2_0.35",
        weights=None,
        image_size=64,
        pooling=pooling,
        dense_units=dense_units,
        feature_layer=feature_layer,
    )
    model = build_model(config, classes)
    assert gradcam_available(model)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3)).astype(np.uint8)
    for class_index in range(classes):
        heat = gradcam(model, image, class_index)
        assert heat.shape == (50, 70)
        assert 0 <= heat.min() and heat.max() <= 1
    with pytest.raises(ValueError, match="class_index must be"):
        gradcam(model, image, classes)


def test_works_on_a_loaded_checkpoint(trained_run):
    model = load_classifier(trained_run).model
    assert gradcam_available(model)
    heat = gradcam(model, np.full((40, 40, 3), 200, np.uint8))
    assert heat.shape == (40, 40) and 0 <= heat.min() and heat.max() <= 1
    assert gradcam_refusal(load_classifier(trained_run)) is None


def test_a_model_without_backbone_is_not_supported():
    from core.tf_setup import keras

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    assert not gradcam_available(model)
    refusal = gradcam_refusal(SimpleNamespace(estimator=None, model=model))
    assert refusal.startswith("the model is not a backbone with a spatial feature map")
    with pytest.raises(GradCamUnavailableError, match="no layer named 'backbone'"):
        gradcam(model, np.zeros((32, 32, 3), np.uint8))


def test_overlay_blends_the_colour_ramp_over_the_image():
    image = np.full((20, 30, 3), 100, np.uint8)
    heat = np.zeros((20, 30), np.float32)
    heat[:, 15:] = 1.0
    assert np.array_equal(overlay(image, heat, alpha=0.0), image)
    full = overlay(image, heat, alpha=1.0)
    assert full.dtype == np.uint8 and full.shape == (20, 30, 3)
    assert np.array_equal(full, colorize(heat))
    assert tuple(full[0, 0]) == (0, 0, 128) and tuple(full[0, -1]) == (200, 0, 0)  # cold blue, hot red
    half = overlay(image, heat, alpha=0.4)
    assert tuple(half[0, -1]) == (140, 60, 60)  # 0.6 * 100 + 0.4 * (200, 0, 0)
    small = overlay(image, np.array([[0.0, 1.0]]), alpha=1.0)  # a heatmap of another size is resized
    assert small.shape == (20, 30, 3) and small[0, 0, 0] < small[0, -1, 0]


def test_an_embedding_model_is_not_supported():
    """Features-mode runs with an svm/knn/tree save the embedding model: no class to explain."""
    from core.model import feature_extractor

    config = TrainConfig(data="x", backbone="mobilenet_v2_0.35", weights=None, image_size=32)
    assert not gradcam_available(feature_extractor(build_model(config, 2)))


def test_a_scikit_learn_classifier_is_refused_with_the_reason():
    refusal = gradcam_refusal(SimpleNamespace(estimator=object(), model=None))
    assert "scikit-learn model fitted on the embeddings" in refusal


def test_a_model_averaged_with_a_linear_probe_is_explained_by_both_maps(square_model):
    """Averaged with a probe that says nothing (zero weights), the model's heatmap still follows
    the square; with a probe that has a say, every class still gets a heatmap."""
    from core.model import BACKBONE_LAYER, with_linear_probe

    layer = "block_13_expand_relu"
    channels = square_model.get_layer(BACKBONE_LAYER).get_layer(layer).output.shape[-1]
    silent = with_linear_probe(
        square_model, layer, np.zeros((channels, 1), np.float32), np.zeros(1, np.float32)
    )
    assert gradcam_available(silent)
    image, corner, far = _scene(np.random.default_rng(9), (12, 12)), np.array((12, 12)), np.array((90, 90))
    mass = _centre_of_mass(gradcam(silent, image))
    assert np.linalg.norm(mass - (corner + SQUARE / 2)) < np.linalg.norm(mass - (far + SQUARE / 2))
    kernel = np.random.default_rng(3).normal(0, 2.0, (channels, 1)).astype(np.float32)
    talking = with_linear_probe(square_model, layer, kernel, np.zeros(1, np.float32))
    assert not np.allclose(gradcam(talking, image, 1), gradcam(silent, image, 1), atol=0.05)
    for class_index in (0, 1):
        heat = gradcam(talking, image, class_index)
        assert heat.shape == (SIZE, SIZE) and 0 <= heat.min() and heat.max() <= 1
