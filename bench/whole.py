"""Benchmark: whole processes, timed as the user waits for them (not a test).

    python -m bench.whole [--data DIR] [--backbone mobilenet_v2] [--image-size 224]

Each variant is one `python -m core.train ...` process, timed from before it is started to
after it has exited: imports, model builds, the engine's conversion, training, saving and
the final evaluation all count. Beside them runs the floor, a process that only imports
Keras, builds the backbone and runs TensorFlow's own forward pass over as many (random)
images: what any frozen-backbone run must at least do the naive way. Peak RSS is each
process's own (wait4). All variants run once, one after the other, in one run: compare
the ratios, not the seconds, on a shared machine.

  floor           import Keras, build the backbone, one TF forward pass over N images
  features-keras  --mode features, cold caches, TLS_ENGINE=keras (the extractor in TensorFlow)
  features-cold   --mode features, cold caches: the engine is converted, then every image embedded
  features        --mode features, the engine already converted, embeddings cold
  cache-hit       --mode features --classifier knn: every embedding from the cache
  default         python -m core.train --data D --backbone B (fine-tune mode, head on embeddings,
                  10 epochs), embeddings cold, the engine converted
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import PROJ_ROOT, SHARED, _prepare_keras_home

FLOOR = """
import sys, time
import numpy as np
import keras
from core.backbones import BACKBONES
spec = BACKBONES[sys.argv[1]]
size, count, batch = int(sys.argv[2]), int(sys.argv[3]), 32
model = getattr(keras.applications, spec.application)(
    include_top=False, weights="imagenet", input_shape=(size, size, 3), pooling="avg", **spec.kwargs)
images = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype("float32")
for start in range(0, count, batch):
    model.predict_on_batch(images[: min(batch, count - start)])
"""


def _popen_with_usage(command: list[str], env: dict) -> dict:
    """Run `command`: its wall seconds (before start to after exit), its own peak RSS (wait4)
    and its stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=PROJ_ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def _train(args, work: Path, cache: Path, *flags: str, env: dict | None = None) -> dict:
    command = [sys.executable, "-m", "core.train", "--data", args.data, "--backbone", args.backbone,
               "--image-size", str(args.image_size), "--runs-dir", str(work / "runs"), *flags]  # fmt: skip
    result = _popen_with_usage(command, {**os.environ, "TLS_CACHE_DIR": str(cache), **(env or {})})
    run = Path(result["stdout"].strip().splitlines()[-1])
    evaluation = json.loads((run / "evaluation.json").read_text())["validation"]
    engine = json.loads((run / "status.json").read_text()).get("engine")
    return {**result, "val_accuracy": evaluation["accuracy"], "engine": engine}


def _image_count(data: str) -> int:
    from core.data import scan_dataset

    return sum(len(s.paths) for s in scan_dataset(data, validate=False).splits.values())


def run_all(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-whole-"))
    count = _image_count(args.data)
    fresh = lambda name: work / name / "embeddings"  # noqa: E731  a cold embedding cache (and engine dir)
    results = {}
    try:
        floor = [sys.executable, "-c", FLOOR, args.backbone, str(args.image_size), str(count)]
        results["floor"] = _popen_with_usage(floor, dict(os.environ))
        results["features-keras"] = _train(
            args, work, fresh("k"), "--mode", "features", env={"TLS_ENGINE": "keras"}
        )
        results["features-cold"] = _train(args, work, fresh("c"), "--mode", "features")
        shutil.rmtree(fresh("c"))  # embeddings cold again; the converted engine beside them stays
        results["features"] = _train(args, work, fresh("c"), "--mode", "features")
        results["cache-hit"] = _train(args, work, fresh("c"), "--mode", "features", "--classifier", "knn")
        shutil.rmtree(fresh("c"))
        results["default"] = _train(args, work, fresh("c"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"images": count, **results}


def table(args, results: dict) -> str:
    floor = results["floor"]["seconds"]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.backbone} at {args.image_size} px; {results['images']} images "
        f"({args.data}); whole processes, start to exit, final evaluation included; one run.",
        "",
        "| variant | wall s | vs floor | peak RSS MB | val acc | engine |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        if name == "images":
            continue
        acc = f"{r['val_accuracy']:.3f}" if "val_accuracy" in r else "-"
        engine = (r.get("engine") or ("-" if name == "floor" else "none: all cached")).split(" (")[0]
        seconds, rss = r["seconds"], r["peak_rss_mb"]
        lines.append(f"| {name} | {seconds:.1f} | {seconds / floor:.2f}x | {rss:.0f} | {acc} | {engine} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "datasets" / "horse-or-human"))
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, help="default: the backbone's own (224 for MobileNetV2)")
    args = parser.parse_args()
    if not args.image_size:
        from core.backbones import BACKBONES

        args.image_size = BACKBONES[args.backbone].default_size
    _prepare_keras_home()
    results = run_all(args)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "stdout"} if isinstance(v, dict) else v
                      for k, v in results.items()}), file=sys.stderr)  # fmt: skip
    print(table(args, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
