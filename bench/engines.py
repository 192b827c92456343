"""Benchmark: the frozen extractor in Keras, LiteRT (XNNPACK) and ONNX Runtime (not a test).

    python -m bench.engines [--backbone mobilenet_v2] [--image-size 224] [--seconds 10]

One process, the same random batch of 32 for every engine: images/s, the largest absolute
difference from Keras, and the one-off conversion time. ONNX Runtime needs `onnxruntime`
and `tf2onnx` (not in requirements.txt; the engine does not use them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.run import _prepare_keras_home

BATCH = 32


def rate(run, batch: np.ndarray, seconds: float) -> float:
    run(batch)  # warm-up
    started, images = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        run(batch)
        images += len(batch)
    return images / (time.perf_counter() - started)


def litert(extractor, config):
    from core import engine

    started = time.perf_counter()
    path = Path(tempfile.mkdtemp()) / "extractor.tflite"
    engine.convert_extractor(extractor, path)
    converted = time.perf_counter() - started
    lite = engine.LiteRTEngine(path, engine.output_names(extractor), "bench")
    return lambda x: lite.run(x)[0], converted


def onnx_runtime(extractor, size: int):
    import onnxruntime
    import tf2onnx

    from core.tf_setup import tf

    started = time.perf_counter()
    spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="image")
    function = tf.function(lambda image: extractor(image, training=False))
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=17)
    converted = time.perf_counter() - started
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0], converted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    _prepare_keras_home()
    from core.config import TrainConfig
    from core.model import build_model, feature_extractor

    config = TrainConfig(data="unused", backbone=args.backbone, image_size=args.image_size)
    extractor = feature_extractor(build_model(config, 2))
    batch = np.random.default_rng(0).uniform(0, 255, (BATCH, args.image_size, args.image_size, 3))
    batch = batch.astype(np.float32)
    keras_run = lambda x: np.asarray(extractor.predict_on_batch(x))  # noqa: E731
    expected = keras_run(batch)
    rows = [("keras", rate(keras_run, batch, args.seconds), 0.0, 0.0)]
    for name, make in (("litert", lambda: litert(extractor, config)),
                       ("onnxruntime", lambda: onnx_runtime(extractor, args.image_size))):  # fmt: skip
        try:
            run, converted = make()
        except ImportError as exc:
            print(f"{name}: not installed ({exc})", file=sys.stderr)
            continue
        difference = float(np.abs(run(batch) - expected).max())
        rows.append((name, rate(run, batch, args.seconds), difference, converted))
    cores = len(os.sched_getaffinity(0))
    print(f"{args.backbone} at {args.image_size} px, batch {BATCH}, {cores} cores; one run")
    print("| engine | images/s | vs keras | max abs diff | conversion s |")
    print("|---|---:|---:|---:|---:|")
    for name, speed, difference, converted in rows:
        print(f"| {name} | {speed:.0f} | {speed / rows[0][1]:.2f}x | {difference:.1e} | {converted:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
