"""Backbones, the classification head, freezing and unfreezing."""

import numpy as np
import pytest

from core.backbones import BACKBONES
from core.config import TrainConfig
from core.model import BACKBONE_LAYER, ImagePreprocess, build_model, unfreeze_top
from core.tf_setup import keras

# The smallest input each architecture accepts keeps the one-forward-pass check quick.
MIN_SIZES = {"inception_v3": 75}


def _config(**overrides):
    return TrainConfig(**{"data": "x", "weights": None, "image_size": 32, **overrides})


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_and_runs_a_forward_pass(name):
    size = MIN_SIZES.get(name, 32)
    model = build_model(_config(backbone=name, image_size=size), num_classes=3)
    probs = model.predict_on_batch(np.zeros((2, size, size, 3), np.float32))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_binary_head_is_one_sigmoid_unit_and_reference_head_shape():
    model = build_model(_config(backbone="mobilenet_v2_0.35", pooling="flatten", dense_units=64), 2)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert model.get_layer("hidden").units == 64
    assert any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)


def test_base_is_frozen_and_only_the_head_trains():
    model = build_model(_config(backbone="mobilenet_v2_0.35"), 2)
    base = model.get_layer(BACKBONE_LAYER)
    assert not base.trainable and not base.trainable_weights
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"probability"}


def test_unfreeze_top_keeps_batchnorm_frozen_and_recompiles():
    model = build_model(_config(backbone="mobilenet_v2_0.35"), 2)
    base = model.get_layer(BACKBONE_LAYER)
    optimizer_before = model.optimizer
    unfreeze_top(model, 20, learning_rate=1e-5)
    top, bottom = base.layers[-20:], base.layers[:-20]
    assert not any(layer.trainable for layer in bottom)
    assert all(not layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))
    assert any(layer.trainable for layer in top if layer.weights)
    assert model.optimizer is not optimizer_before
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-5)


def test_unfreeze_top_rejects_bad_counts():
    model = build_model(_config(backbone="mobilenet_v2_0.35"), 2)
    with pytest.raises(ValueError, match="n_layers must be between 1"):
        unfreeze_top(model, 0, 1e-5)


@pytest.mark.parametrize(
    "mode, module", [("tf", "mobilenet_v2"), ("caffe", "resnet50"), ("torch", "densenet")]
)
def test_preprocess_layer_matches_keras_preprocess_input(mode, module):
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(ImagePreprocess(mode)(pixels), expected, rtol=1e-5, atol=1e-4)


def test_saved_model_reloads_in_safe_mode_with_identical_outputs(tmp_path):
    model = build_model(_config(backbone="mobilenet_v2_0.35"), 3)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize("classes", [2, 3])
def test_a_model_averaged_with_a_linear_probe_is_the_geometric_mean_of_the_two(tmp_path, classes):
    """One model, one pass: its probabilities are the normalised geometric mean of the model's
    and of a linear classifier's on an earlier layer's pooled features (what auto scores), it
    reloads in safe mode, and its embedding feeds its head like any model's."""
    from core.auto import averaged_probabilities
    from core.model import classifier_head, feature_extractor, with_linear_probe
    from core.predict import class_columns

    layer = "block_13_expand_relu"
    model = build_model(_config(backbone="mobilenet_v2_0.35", image_size=64, dropout=0.0), classes)
    base = model.get_layer(BACKBONE_LAYER)
    earlier = keras.Model(base.input, base.get_layer(layer).output)
    rng = np.random.default_rng(2)
    units = 1 if classes == 2 else classes
    kernel = rng.normal(0, 0.5, (earlier.output.shape[-1], units)).astype(np.float32)
    bias = rng.normal(0, 0.5, units).astype(np.float32)
    x = rng.uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    pooled = np.asarray(earlier(model.get_layer("preprocess")(x))).mean(axis=(1, 2))
    logits = pooled @ kernel + bias
    probe = (
        1 / (1 + np.exp(-logits)) if classes == 2 else np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    )
    expected = averaged_probabilities(class_columns(model.predict_on_batch(x)), class_columns(probe))

    averaged = with_linear_probe(model, layer, kernel, bias)
    np.testing.assert_allclose(class_columns(averaged.predict_on_batch(x)), expected, atol=1e-5)
    averaged.save(tmp_path / "averaged.keras")
    loaded = keras.models.load_model(tmp_path / "averaged.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(loaded.predict_on_batch(x), averaged.predict_on_batch(x), atol=1e-6)
    embedding = feature_extractor(loaded).predict_on_batch(x)
    assert embedding.shape == (4, model.get_layer("pool").output.shape[-1] + earlier.output.shape[-1])
    np.testing.assert_allclose(
        classifier_head(loaded).predict_on_batch(embedding), loaded.predict_on_batch(x), atol=1e-5
    )
