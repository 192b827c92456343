"""Benchmark: whole processes, timed as the user waits for them (not a test).

    python -m bench.whole [--data DIR] [--backbone mobilenet_v2] [--image-size 224]
                          [--scale 10] [--first-point]

Each variant is one `python -m core.train ...` process, timed from before it is started to
after it has exited: imports, model builds, the engine's conversion, training, saving and
the final evaluation all count. Beside them runs the floor, a process that only imports
Keras, builds the backbone and runs TensorFlow's own forward pass over as many (random)
images, what any frozen-backbone run must at least do the naive way; it runs first and
last, and ratios are to the mean of the two. Peak RSS is each process's own (wait4). All
variants run once, one after the other, in one run: compare the ratios, not the seconds,
on a shared machine.

  floor           import Keras, build the backbone, one TF forward pass over N images
  features-keras  --mode features, cold caches, TLS_ENGINE=keras (the extractor in TensorFlow)
  features-cold   --mode features, cold caches: the engine is converted, then every image embedded
  features        --mode features, the engine already converted, embeddings cold
  cache-hit       --mode features --classifier knn: every embedding from the cache
  default-cold    python -m core.train --data D --backbone B (auto mode: candidates by
                  cross-validation, fine-tuning by evidence), cold caches: its extractor (several
                  layers, so another engine than features') is converted, then every image embedded
  default         the same, its engine already converted, embeddings cold

`--scale K` adds `features` on a copy of the dataset K times as large (each photo K times, each
copy under its own random crop, flip, rotation and colour change, so no two embeddings are
equal): time should grow linearly and peak memory stay flat. `--first-point` times what a
dashboard user waits for after clicking Start (`launch_training`, as the Train page calls it):
until the first candidate on the auto leaderboard, until the first epoch of a fine-tune run,
and until each process has exited. The Train page polls every 2 s, so it shows each point up
to 2 s later.
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


def _scaled_copy(data: str, scale: int, out: Path) -> Path:
    """`data` (train/ and validation/ of class folders) with every photo `scale` times, each copy
    under its own random crop, flip, small rotation and brightness change (JPEG, quality 90)."""
    import numpy as np
    from PIL import Image

    from core.data import scan_dataset

    rng = np.random.default_rng(0)
    report = scan_dataset(data, validate=False)
    for split_name, split in report.splits.items():
        for path, label in zip(split.paths, split.labels):
            folder = out / split_name / report.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as photo:
                photo = photo.convert("RGB")
            for copy in range(scale):
                image = photo if copy == 0 else _distinct_view(photo, rng)
                image.save(folder / f"{Path(path).stem}-{copy}.jpg", quality=90)
    return out


def _distinct_view(photo, rng):
    from PIL import Image, ImageEnhance

    width, height = photo.size
    crop = rng.uniform(0.8, 1.0)
    left, top = rng.uniform(0, 1 - crop) * width, rng.uniform(0, 1 - crop) * height
    view = photo.crop((left, top, left + crop * width, top + crop * height)).resize(photo.size)
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    view = view.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR)
    return ImageEnhance.Brightness(view).enhance(rng.uniform(0.8, 1.2))


def first_points(args, work: Path, cache: Path) -> dict:
    """Seconds from Start (launch_training, as the Train page calls it) to the first point the
    page can draw and to the process's exit, for the default (auto) and a fine-tune run."""
    from core.auto import read_auto
    from core.config import TrainConfig
    from core.launch import launch_training
    from core.runs import RunDir

    def auto_point(run: RunDir) -> bool:
        return bool((read_auto(run.path) or {}).get("candidates"))

    def epoch_point(run: RunDir) -> bool:
        return bool(run.metrics()[0])

    results = {}
    os.environ["TLS_CACHE_DIR"] = str(cache)  # read by the child; the converted engine is beside it
    starts = (("start-auto", "auto", auto_point), ("start-finetune", "finetune", epoch_point))
    for name, mode, point in starts:
        shutil.rmtree(cache, ignore_errors=True)  # embeddings cold, as for a new dataset
        config = TrainConfig(data=args.data, backbone=args.backbone, image_size=args.image_size, mode=mode)
        started = time.perf_counter()
        run = RunDir(launch_training(config, work / "runs"))
        first = None
        while True:
            state = run.status().get("state")
            if first is None and point(run):
                first = time.perf_counter() - started
            ended = state in ("completed", "failed", "stopped", "interrupted")
            if ended and not _alive(run.status().get("pid")):
                break
            time.sleep(0.05)
        results[name] = {"first_point_s": first, "seconds": time.perf_counter() - started, "state": state}
    return results


def _alive(pid: int | None) -> bool:
    try:
        return bool(pid) and os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


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
        results["default-cold"] = _train(args, work, fresh("c"))  # converts its multi-layer extractor
        shutil.rmtree(fresh("c"))
        results["default"] = _train(args, work, fresh("c"))
        if args.scale > 1:
            shutil.rmtree(fresh("c") / "embeddings", ignore_errors=True)
            scaled = _scaled_copy(args.data, args.scale, work / f"data-x{args.scale}")
            scaled_args = argparse.Namespace(**{**vars(args), "data": str(scaled)})
            results[f"features-x{args.scale}"] = _train(scaled_args, work, fresh("c"), "--mode", "features")
            results[f"features-x{args.scale}"]["images"] = count * args.scale
        if args.first_point:
            results["first-point"] = first_points(args, work, fresh("c"))
        results["floor-again"] = _popen_with_usage(floor, dict(os.environ))  # the machine drifts
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"images": count, **results}


def table(args, results: dict) -> str:
    floor = floor_seconds(results)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.backbone} at {args.image_size} px; {results['images']} images "
        f"({args.data}); whole processes, start to exit, final evaluation included; one run. "
        f"The floor ran first and last ({results['floor']['seconds']:.1f} s, "
        f"{results['floor-again']['seconds']:.1f} s); each variant is compared with their mean.",
        "",
        "| variant | wall s | vs floor | peak RSS MB | val acc | engine |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        if name in ("images", "first-point"):
            continue
        acc = f"{r['val_accuracy']:.3f}" if "val_accuracy" in r else "-"
        engine = (r.get("engine") or ("-" if name.startswith("floor") else "none: all cached")).split(" (")[0]
        seconds, rss = r["seconds"], r["peak_rss_mb"]
        lines.append(f"| {name} | {seconds:.1f} | {seconds / floor:.2f}x | {rss:.0f} | {acc} | {engine} |")
    scaled = next((r for name, r in results.items() if name.startswith("features-x")), None)
    if scaled:
        one, many = results["features"], scaled
        per_image = [(r["seconds"] - floor_fixed(results)) / images for r, images in
                     ((one, results["images"]), (many, many["images"]))]  # fmt: skip
        lines += ["", f"Scale: {results['images']} -> {many['images']} images: wall {one['seconds']:.1f} -> "
                  f"{many['seconds']:.1f} s ({many['seconds'] / one['seconds']:.1f}x), beyond start-up "
                  f"{per_image[0] * 1000:.1f} -> {per_image[1] * 1000:.1f} ms per image; peak RSS "
                  f"{one['peak_rss_mb']:.0f} -> {many['peak_rss_mb']:.0f} MB."]  # fmt: skip
    for name, r in (results.get("first-point") or {}).items():
        lines.append(f"{name}: first chart point after {r['first_point_s']:.1f} s, process ended "
                     f"({r['state']}) after {r['seconds']:.1f} s.")  # fmt: skip
    return "\n".join(lines)


def floor_seconds(results: dict) -> float:
    """The floor process's time: the mean of its runs before and after the variants (one floor
    alone moved between 17 and 22 s from run to run on this shared machine)."""
    return (results["floor"]["seconds"] + results["floor-again"]["seconds"]) / 2


def floor_fixed(results: dict) -> float:
    """What a features run pays besides embedding: the cache-hit run, which embeds nothing."""
    return results["cache-hit"]["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "datasets" / "horse-or-human"))
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, help="default: the backbone's own (224 for MobileNetV2)")
    parser.add_argument("--scale", type=int, default=1, help="also run features on K times the images")
    parser.add_argument("--first-point", action="store_true", help="also time Start to the first chart point")
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
