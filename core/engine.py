"""Run the frozen feature extractor in the fastest engine on the device.

On a CPU, LiteRT (the successor of `tf.lite.Interpreter`) with its XNNPACK delegate runs
MobileNetV2 about twice as fast as Keras's own forward pass (measured here: 239 against
109 images/s at 224 px; ONNX Runtime 205). So the Keras extractor is converted once per
(backbone, weights, image size, output layers, pooling), the .tflite file is cached on
disk beside the embedding cache, and checked against Keras on real images before its
first use (max abs difference <= PARITY_TOLERANCE; the result is recorded beside the file).
Whatever goes wrong (no LiteRT, a failed conversion, outputs that disagree) falls back to
Keras, and the engine says why.
On a GPU TensorFlow stays: it is fast there and LiteRT's GPU path is not.

    engine = extractor_engine(extractor, config, probe=first_batch, images=1283)
    outputs = engine.run(batch)      # one (N, ...) array per output of the extractor

`TLS_ENGINE=keras|litert` forces an engine (benchmarks, tests); the default is "auto".
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from core.config import TrainConfig

PARITY_TOLERANCE = 1e-3  # max abs difference from Keras on the probe images
PROBE_IMAGES = 8  # the probe: this many of the first real images (a Keras pass over them is cheap)
# Converting costs a few seconds (2-3 s for a small MobileNetV2, more for large backbones);
# below this many images to embed, Keras finishes before a conversion would pay off. An
# engine already converted is used for any number.
MIN_IMAGES_TO_CONVERT = 256
ENGINES = ("auto", "keras", "litert")
_engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # extractor -> its engine
_lock = threading.Lock()


class Engine:
    """Runs a feature extractor on raw-pixel batches; `name` and `reason` say which and why."""

    name = "engine"

    def __init__(self, reason: str):
        self.reason = reason
        self.provisional = False  # True: choose again on the next call

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """One array per output of the extractor, each (N, ...), for a float32 batch (N, H, W, 3)."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


class KerasEngine(Engine):
    """The Keras model itself (TensorFlow): on a GPU, and the fallback everywhere."""

    name = "keras"

    def __init__(self, model, reason: str):
        super().__init__(reason)
        self.model = model

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = self.model.predict_on_batch(np.asarray(batch, np.float32))
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


class LiteRTEngine(Engine):
    """A converted .tflite extractor in LiteRT's interpreter, XNNPACK on every core.

    The interpreter's invoke releases the GIL, so tf.data keeps decoding the next batches
    (on its own threads) while this one computes.
    """

    name = "litert"

    def __init__(self, path: Path, output_names: list[str], reason: str):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(reason)
        self.path = path
        self.interpreter = _quietly(Interpreter, model_path=str(path), num_threads=cpu_threads())
        self.runner = self.interpreter.get_signature_runner()
        self.input_name = next(iter(self.runner.get_input_details()))
        self.output_names = output_names
        self.lock = threading.Lock()  # one interpreter: one batch at a time
        shape = self.runner.get_input_details()[self.input_name]["shape"]
        _quietly(self.run, np.zeros([1, *shape[1:]], np.float32))  # XNNPACK announces itself on stderr

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            # The runner resizes its input (and reallocates) only when the batch shape changes.
            outputs = self.runner(**{self.input_name: np.ascontiguousarray(batch, np.float32)})
            return [np.array(outputs[name]) for name in self.output_names]  # copies: buffers are reused


def cpu_threads() -> int:
    """The cores this process may use (a container's CPU affinity, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def engine_dir() -> Path:
    """Converted extractors live beside the embedding cache: cache/engines/ by default."""
    from core import embeddings

    return Path(embeddings.CACHE_DIR).parent / "engines"  # read now: TLS_CACHE_DIR or a test moves it


def requested_engine() -> str:
    choice = os.environ.get("TLS_ENGINE", "auto").strip().lower() or "auto"
    return choice if choice in ENGINES else "auto"


def extractor_engine(model, config: TrainConfig, probe: np.ndarray | None = None, images: int = 0) -> Engine:
    """The engine for `model` (a Keras feature extractor), chosen once per model object.

    Args:
        model: the Keras extractor (raw 0-255 pixels in, one or several feature outputs).
        config: names the extractor in the engine cache (backbone, weights, size, layer, pooling).
        probe: real images (float32 pixels) to check a converted engine against Keras.
        images: how many images are about to be embedded (decides whether converting pays off).
    """
    with _lock:
        engine = _engines.get(model)
        if engine is None or engine.provisional:
            engine = choose_engine(model, config, probe, images)
            _engines[model] = engine
        return engine


def choose_engine(model, config: TrainConfig, probe: np.ndarray | None, images: int) -> Engine:
    """LiteRT when it is available, converted (or cached) and agrees with Keras; else Keras."""
    from core.tf_setup import gpus

    choice = requested_engine()
    if choice == "keras":
        return KerasEngine(model, "TLS_ENGINE=keras")
    if choice == "auto" and gpus():
        return KerasEngine(model, "a GPU: TensorFlow runs the extractor there")
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return KerasEngine(model, "LiteRT (ai-edge-litert) is not installed")
    path = engine_dir() / f"{engine_key(model, config)}.tflite"
    if not path.is_file() and choice == "auto" and images < MIN_IMAGES_TO_CONVERT:
        few = KerasEngine(model, f"only {images} images to embed: converting would not pay off")
        few.provisional = True  # a later call with more images may convert
        return few
    try:
        if not path.is_file():
            convert_extractor(model, path)
        engine = LiteRTEngine(path, output_names(model), "not checked against Keras: no probe images")
        difference, when = checked_difference(engine, model, probe, path)
        if difference is None:
            return engine
        if not difference <= PARITY_TOLERANCE:  # also catches NaN
            return KerasEngine(model, f"LiteRT differs from Keras by {difference:.2g} on the probe{when}")
        engine.reason = f"checked against Keras{when}: max difference {difference:.1g}"
        return engine
    except Exception as exc:  # any failure costs speed, never the run
        return KerasEngine(model, f"LiteRT conversion failed: {type(exc).__name__}: {str(exc)[:200]}")


def checked_difference(
    engine: Engine, model, probe: np.ndarray | None, path: Path
) -> tuple[float | None, str]:
    """The engine's max difference from Keras, and when it was measured ("" for now).

    Measured on the probe the first time a conversion is used, and recorded beside it: the
    file's name already pins the weights and TensorFlow, the record pins LiteRT, and the same
    program on the same weights gives the same numbers, so a later run reads the record instead
    of a Keras pass (about 0.8 s, a twentieth of a features run). None: never checked, no probe.
    """
    from core.runs import read_json, write_json_atomic

    record_file = path.with_suffix(".parity.json")
    record = read_json(record_file)
    if isinstance(record, dict) and record.get("litert") == litert_version():
        difference = record.get("max_difference")
        if isinstance(difference, (int, float)):
            return float(difference), " when converted"
    if probe is None:
        return None, ""
    probe = probe[:PROBE_IMAGES]
    difference = max_difference(engine, model, probe)
    record = {"max_difference": difference, "litert": litert_version(), "probe_images": len(probe)}
    write_json_atomic(record_file, record)  # NaN and inf are written as such, and read back
    return difference, ""


def litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return "unknown"


def max_difference(engine: Engine, model, probe: np.ndarray) -> float:
    """The largest absolute difference between `engine` and Keras over every output."""
    outputs = model(np.asarray(probe, np.float32), training=False)  # eager: no graph traced for a few images
    expected = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    actual = engine.run(probe)
    if [a.shape for a in actual] != [e.shape for e in expected]:
        return float("inf")
    return max(float(np.max(np.abs(a - e))) if a.size else 0.0 for a, e in zip(actual, expected))


def output_names(model) -> list[str]:
    """Signature output names, in the order of the Keras model's outputs."""
    return [f"output_{i}" for i in range(len(model.outputs))]


def engine_key(model, config: TrainConfig) -> str:
    """Names one conversion: the extractor's config, its outputs and its actual weights.

    Hashing the weight values (about 30 ms for MobileNetV2) means new weights under the same
    name (another file, a random init with another seed) never reuse a stale conversion.
    """
    from core.embeddings import extractor_key
    from core.tf_setup import tf

    digest = hashlib.sha256()
    parts = [
        extractor_key(config),
        ",".join(f"{name}{tuple(o.shape)}" for name, o in zip(model.output_names, model.outputs)),
        f"tf{tf.__version__}",
    ]
    digest.update("|".join(parts).encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    readable = f"{config.backbone}-{config.image_size}-{config.feature_layer or 'top'}-{config.pooling}"
    return f"{readable.replace('/', '_')}-{digest.hexdigest()[:16]}"


def convert_extractor(model, path: Path) -> None:
    """Convert `model` to a float32 .tflite with a dynamic batch, written atomically to `path`.

    From a concrete function rather than through a SavedModel: 3 s against 8 s for
    MobileNetV2 x0.35 here. The variables are handed to the converter in a tf.Module, without
    which it freezes uninitialised values (NaN outputs).
    """
    from core.tf_setup import tf

    size = model.inputs[0].shape[1:]
    spec = tf.TensorSpec([None, *size], tf.float32, name="image")
    names = output_names(model)

    @tf.function(input_signature=[spec])
    def serve(image):
        outputs = model(image, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs))

    holder = tf.Module()
    holder.variables_ = [getattr(v, "value", v) for v in model.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)
    flatbuffer = _quietly(converter.convert)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, path)  # two processes converting at once: each writes whole, the last wins


def _quietly(function, *args, **kwargs):
    """TF's converter and LiteRT's delegate print on native stderr, past our logging."""
    from core.tf_setup import quiet_native_stderr

    with quiet_native_stderr():
        return function(*args, **kwargs)
