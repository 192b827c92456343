"""The transfer-learning model: raw pixels -> backbone preprocessing -> frozen base -> head.

Preprocessing lives inside the saved model (the model takes raw 0-255 RGB), so
training, evaluation and prediction can never disagree about it.
"""

from __future__ import annotations

from core.backbones import BACKBONES, build_backbone
from core.config import ConfigError, TrainConfig
from core.tf_setup import keras

BACKBONE_LAYER = "backbone"
POOL_LAYER = "pool"  # its output is the embedding that features mode and the cache use
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="tls")
class ImagePreprocess(keras.layers.Layer):
    """A backbone's `preprocess_input` as a serializable layer (no Lambda: safe_mode loads it).

    Modes follow keras.applications.imagenet_utils: "tf" scales to [-1, 1], "torch"
    scales to [0, 1] and normalises per channel, "caffe" flips RGB to BGR and
    subtracts the ImageNet mean, "none" passes pixels through.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "torch", "caffe", "none"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x / 255.0 - keras.ops.array(_TORCH_MEAN)) / keras.ops.array(_TORCH_STD)
        if self.mode == "caffe":
            return keras.ops.flip(x, axis=-1) - keras.ops.array(_CAFFE_MEAN_BGR)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


def build_model(config: TrainConfig, num_classes: int, backbone: keras.Model | None = None) -> keras.Model:
    """The frozen backbone with a new classification head, compiled.

    The base is called with training=False so its BatchNormalization layers stay in
    inference mode, also later when its top layers are unfrozen for fine-tuning.
    `backbone` reuses an already built backbone (its layers and weights are shared).
    """
    if num_classes < 2:
        raise ValueError("a classifier needs at least 2 classes")
    size = config.image_size
    backbone = backbone or build_backbone(config.backbone, size, config.weights)
    base = _truncate(backbone, config.feature_layer)
    base.trainable = False
    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocess(BACKBONES[config.backbone].preprocess, name="preprocess")(inputs)
    x = base(x, training=False)
    pool = keras.layers.Flatten if config.pooling == "flatten" else keras.layers.GlobalAveragePooling2D
    x = pool(name=POOL_LAYER)(x)
    if config.dense_units:
        x = keras.layers.Dense(config.dense_units, activation="relu", name="hidden")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, seed=config.seed)(x)
    outputs = _output_layer(num_classes)(x)
    model = keras.Model(inputs, outputs, name=f"{config.backbone}_classifier")
    compile_model(model, config.optimizer, config.learning_rate, num_classes)
    return model


def _truncate(base: keras.Model, feature_layer: str | None) -> keras.Model:
    """The backbone up to `feature_layer` (all of it when None), named BACKBONE_LAYER."""
    if feature_layer:
        names = [layer.name for layer in base.layers]
        if feature_layer not in names:
            raise ConfigError(
                f"feature_layer: {base.name} has no layer {feature_layer!r}; "
                f"its last layers are {', '.join(names[-5:])}"
            )
        base = keras.Model(base.input, base.get_layer(feature_layer).output)
    base.name = BACKBONE_LAYER
    return base


def feature_extractor(model: keras.Model) -> keras.Model:
    """Raw pixels -> the embedding (the pooling layer's output), sharing the model's layers."""
    return keras.Model(model.input, model.get_layer(POOL_LAYER).output, name="feature_extractor")


def head_model(model: keras.Model, optimizer: str, learning_rate: float) -> keras.Model:
    """Embedding -> prediction, built from the model's own head layers (weights shared).

    Training it trains the full model's head, so the full model can be saved as is.
    """
    head = classifier_head(model)
    compile_model(head, optimizer, learning_rate, num_classes_of(model))
    return head


def classifier_head(model: keras.Model) -> keras.Model:
    """The uncompiled head: embedding -> prediction, sharing the model's head layers."""
    pool = model.get_layer(POOL_LAYER)
    inputs = keras.Input(pool.output.shape[1:], name="embedding")
    x = inputs
    for layer in head_layers(model):
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the pooling layer: all that trains while the base is frozen."""
    return model.layers[model.layers.index(model.get_layer(POOL_LAYER)) + 1 :]


def set_linear_head(model: keras.Model, kernel, bias) -> None:
    """Load an affine classifier (kernel (D, units), bias (units,)) into the output layer."""
    model.layers[-1].set_weights([kernel, bias])


def with_linear_probe(model: keras.Model, layer: str, kernel, bias) -> keras.Model:
    """`model` averaged with a linear classifier (kernel (D, units), bias) on the pooled output
    of its backbone's `layer`: one model, one forward pass, whose logits are the mean of the two.

    `layer` must lie below every layer that fine-tuning changed, so that its features are the
    ones the linear classifier was fitted on. Averaging logits is the normalised geometric mean
    of the two classifiers' probabilities, and it folds into one Dense layer on the two pooled
    embeddings side by side (the `POOL_LAYER` embedding: top first). The layers are shared.
    """
    import numpy as np

    base = model.get_layer(BACKBONE_LAYER)
    both = keras.Model(base.input, [base.output, base.get_layer(layer).output], name=BACKBONE_LAYER)
    inputs = keras.Input(model.input_shape[1:], name="image")
    top, earlier = both(model.get_layer("preprocess")(inputs), training=False)
    pooled = [
        keras.layers.GlobalAveragePooling2D(name=f"{POOL_LAYER}_top")(top),
        keras.layers.GlobalAveragePooling2D(name=f"{POOL_LAYER}_{layer}")(earlier),
    ]
    x = keras.layers.Concatenate(name=POOL_LAYER)(pooled)
    output = _output_layer(num_classes_of(model))
    averaged = keras.Model(inputs, output(x), name=model.name)
    own_kernel, own_bias = model.layers[-1].get_weights()
    output.set_weights([np.concatenate([own_kernel, kernel]) / 2, (own_bias + bias) / 2])
    return averaged


def _output_layer(num_classes: int) -> keras.layers.Dense:
    # float32 output keeps the loss numerically stable under mixed precision.
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")


def compile_model(model: keras.Model, optimizer: str, learning_rate, num_classes: int) -> None:
    """Compile with the loss for the class count and explicitly named metrics:
    `accuracy` and `macro_f1` (so logs hold val_accuracy and val_macro_f1). `learning_rate` is
    a number or a keras.optimizers.schedules.LearningRateSchedule."""
    optimizers = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    }
    if num_classes == 2:
        loss, accuracy = "binary_crossentropy", keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = "sparse_categorical_crossentropy"
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=optimizers[optimizer](learning_rate=learning_rate),
        loss=loss,
        metrics=[accuracy, MacroF1(num_classes)],
    )


@keras.saving.register_keras_serializable(package="tls")
class MacroF1(keras.metrics.Metric):
    """F1 averaged over classes with equal weight: the fair score when classes are imbalanced.

    Accumulates a confusion matrix; a single sigmoid unit counts as two classes.
    """

    def __init__(self, num_classes: int = 2, name: str = "macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_variable((num_classes, num_classes), initializer="zeros", name="matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops, n = keras.ops, self.num_classes
        if y_pred.shape[-1] == 1:
            predicted = ops.cast(ops.reshape(y_pred, (-1,)) > 0.5, "int32")
        else:
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        actual = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        counts = ops.bincount(actual * n + predicted, minlength=n * n)[: n * n]
        self.matrix.assign_add(ops.cast(ops.reshape(counts, (n, n)), "float32"))

    def result(self):
        ops = keras.ops
        hits = ops.diagonal(self.matrix)
        precision = hits / ops.maximum(ops.sum(self.matrix, axis=0), 1.0)
        recall = hits / ops.maximum(ops.sum(self.matrix, axis=1), 1.0)
        return ops.mean(2 * precision * recall / ops.maximum(precision + recall, 1e-9))

    def reset_state(self):
        self.matrix.assign(keras.ops.zeros_like(self.matrix))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}


def unfreeze_top(model: keras.Model, n_layers: int, learning_rate, optimizer: str = "adam") -> int:
    """Make the top `n_layers` of the backbone trainable and recompile.

    BatchNormalization layers stay frozen: their statistics were learned on ImageNet
    and small batches of new data would wreck them. Returns how many layers are now
    trainable. Use a learning rate ~10x smaller than for the head.
    """
    base = model.get_layer(BACKBONE_LAYER)
    if not 0 < n_layers <= len(base.layers):
        raise ValueError(f"n_layers must be between 1 and {len(base.layers)}, got {n_layers}")
    base.trainable = True
    for index, layer in enumerate(base.layers):
        in_top = index >= len(base.layers) - n_layers
        layer.trainable = in_top and not isinstance(layer, keras.layers.BatchNormalization)
    compile_model(model, optimizer, learning_rate, num_classes_of(model))
    return sum(layer.trainable for layer in base.layers)


def num_classes_of(model: keras.Model) -> int:
    """A single sigmoid unit means 2 classes."""
    return max(2, model.output_shape[-1])
