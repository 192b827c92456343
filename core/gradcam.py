"""Grad-CAM: which parts of an image made the model decide (Selvaraju et al., 2017).

Works on the models `core.model.build_model` makes, trained or loaded from a checkpoint:
raw pixels -> "preprocess" -> the nested "backbone" model -> pooling -> [hidden Dense]
-> [Dropout] -> output Dense. The backbone's last feature map is computed inside a
`tf.GradientTape`, the head layers are run on it by hand, and each channel is weighted
by the mean gradient of the class's logit. For a single sigmoid unit (2 classes), class
1's score is the logit and class 0's is its negation. A model averaged with a linear probe
(`core.model.with_linear_probe`) has two maps, pooled side by side: each map's weighted sum
adds its share of the logit, so their maps are added at the finer map's size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.model import BACKBONE_LAYER

if TYPE_CHECKING:
    from core.predict import Classifier

# A jet-like ramp: dark blue -> blue -> cyan -> yellow -> red, interpolated in numpy.
_RAMP_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_RAMP_COLORS = np.array(
    [[0, 0, 128], [0, 64, 255], [0, 224, 255], [255, 224, 0], [200, 0, 0]],
    dtype=np.float64,
)


class GradCamUnavailableError(ValueError):
    """The model is not built the way Grad-CAM expects (see `gradcam_available`)."""


def gradcam_available(model) -> bool:
    """True for a model with a nested 4-D "backbone" and a Dense output after it."""
    try:
        _parts(model)
    except GradCamUnavailableError:
        return False
    return True


def gradcam_refusal(classifier: Classifier) -> str | None:
    """Why Grad-CAM cannot explain this run's classifier, in words; None when it can."""
    if classifier.estimator is not None:
        return (
            "this run's classifier is a scikit-learn model fitted on the embeddings, and Grad-CAM "
            "needs the gradient of a Keras output layer"
        )
    if not gradcam_available(classifier.model):
        return "the model is not a backbone with a spatial feature map followed by a Dense output layer"
    return None


def gradcam(model, image_uint8: np.ndarray, class_index: int | None = None) -> np.ndarray:
    """A Grad-CAM heatmap of `image_uint8` for `class_index` (default: the predicted class).

    Args:
        model: a classifier from `core.model.build_model` or a loaded checkpoint.
        image_uint8: an RGB image (H, W, 3) of any size; it is resized to the model's input.
        class_index: the class to explain, in the run's label order.

    Returns:
        float32 array (H, W) in [0, 1], 1 where the evidence for the class is strongest;
        all zeros when nothing in the image speaks for the class.

    Raises:
        GradCamUnavailableError: the model is not built as Grad-CAM expects.
    """
    return gradcam_batch(model, [image_uint8], [class_index])[0]


def gradcam_batch(model, images: list[np.ndarray], class_indices: list[int | None]) -> list[np.ndarray]:
    """`gradcam` for several images in one forward pass (an evaluation's gallery).

    The backbone runs outside the gradient tape: Grad-CAM needs the class score's gradient
    with respect to the feature map only, through the head, never through the backbone.
    Images are independent in inference mode, so the gradient of the summed scores gives
    each image's own gradient.
    """
    from core.tf_setup import tf

    before, base, head, output = _parts(model)
    images = [np.asarray(image) for image in images]
    for image in images:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    size = model.input_shape[1:3]
    x = tf.concat(
        [tf.image.resize(tf.convert_to_tensor(i[None], tf.float32), size, method="bilinear") for i in images],
        0,
    )
    for layer in before:
        x = layer(x)
    maps = base(x, training=False)
    maps = list(maps) if isinstance(maps, (list, tuple)) else [maps]
    with tf.GradientTape() as tape:
        tape.watch(maps)
        logits = _head_logits(maps, head, output)
        score = tf.add_n([_class_score(logits[i], c) for i, c in enumerate(class_indices)])
    size = max((m.shape[1:3] for m in maps), key=lambda hw: hw[0] * hw[1])
    cams = 0.0
    for features, grads in zip(maps, tape.gradient(score, maps)):
        weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)  # per image, channel
        cam = tf.reduce_sum(tf.cast(features, tf.float32) * weights, axis=-1, keepdims=True)
        cams += tf.image.resize(cam, size, method="bilinear")  # each map's evidence adds to the logit
    cams = tf.nn.relu(cams[..., 0]).numpy()
    return [_resize_unit(cam, image.shape[:2]) for cam, image in zip(cams, images)]


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The image with the heatmap blended over it in a jet-like colour ramp; uint8 RGB.

    `heatmap` may be of another size than the image; it is resized to fit.
    """
    image = np.asarray(image_uint8, dtype=np.float64)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.shape != image.shape[:2]:
        heat = _resize_unit(heat, image.shape[:2], normalize=False)
    blended = (1 - alpha) * image[..., :3] + alpha * colorize(heat).astype(np.float64)
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB through the jet-like ramp (no matplotlib)."""
    values = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, 1.0)
    channels = [np.interp(values, _RAMP_STOPS, _RAMP_COLORS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def _parts(model):
    """(layers before the backbone, the backbone, head layers, output Dense) of `model`."""
    from core.tf_setup import keras

    try:
        base = model.get_layer(BACKBONE_LAYER)
    except (ValueError, AttributeError):
        raise GradCamUnavailableError(f"the model has no layer named {BACKBONE_LAYER!r}") from None
    maps = base.output if isinstance(base.output, (list, tuple)) else [base.output]
    if not isinstance(base, keras.Model) or any(len(m.shape) != 4 for m in maps):
        raise GradCamUnavailableError("the backbone is not a model with a spatial feature map")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    index = layers.index(base)
    before, head = layers[:index], layers[index + 1 :]
    if not head or not isinstance(head[-1], keras.layers.Dense):
        raise GradCamUnavailableError("the model does not end in a Dense classification layer")
    return before, base, head[:-1], head[-1]


def _head_logits(maps: list, head, output):
    """The head run by hand on the feature maps, up to the output layer's logits.

    Several maps (a model averaged with a linear probe on an earlier layer) are pooled one
    by one, in the backbone's output order, then joined by the next layer."""
    from core.tf_setup import keras

    x = maps[0]
    if len(maps) > 1:
        pools, head = head[: len(maps)], head[len(maps) :]
        x = [pool(m, training=False) for pool, m in zip(pools, maps)]
    for layer in head:
        x = layer(x, training=False)
    x = keras.ops.cast(x, output.kernel.dtype)
    return keras.ops.matmul(x, output.kernel) + output.bias  # before sigmoid/softmax: no saturation


def _class_score(logits, class_index: int | None):
    from core.tf_setup import tf

    logits = tf.cast(logits, tf.float32)  # one image's logits
    if logits.shape[-1] == 1:  # one sigmoid unit: class 1 when the logit is positive
        if class_index is None:
            class_index = int(logits[0] > 0)
        if class_index not in (0, 1):
            raise ValueError(f"class_index must be 0 or 1 for a 2-class model, got {class_index}")
        return logits[0] if class_index == 1 else -logits[0]
    if class_index is None:
        class_index = int(tf.argmax(logits))
    if not 0 <= class_index < logits.shape[-1]:
        raise ValueError(f"class_index must be between 0 and {logits.shape[-1] - 1}, got {class_index}")
    return logits[class_index]


def _resize_unit(values: np.ndarray, shape: tuple[int, int], normalize: bool = True) -> np.ndarray:
    """Bilinear resize of a non-negative 2-D map to `shape`; with `normalize`, scaled so its max is 1."""
    from PIL import Image

    values = np.maximum(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0)
    resized = np.asarray(Image.fromarray(values).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))
    resized = np.maximum(resized.astype(np.float32), 0.0)
    if normalize:
        peak = float(resized.max())
        resized = resized / peak if peak > 0 else np.zeros_like(resized)
    return np.clip(resized, 0.0, 1.0)
