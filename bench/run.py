"""Benchmark: what the frozen-backbone shortcuts buy, measured in one run (not a test).

    python -m bench.run [--data DIR] [--backbone mobilenet_v2] [--image-size 224] [--epochs 10]

Each variant runs in its own process (clean memory, its own peak RSS):
  reference  the reference recipe (the seed preset: Flatten -> Dense(1024) -> Dropout(0.2),
             RMSprop 1e-3, its augmentation), ImageDataGenerator-style: every epoch re-reads
             and decodes the photos, augments them and recomputes the frozen base
  live       our default head (average pooling -> Dropout -> Dense) trained live: the base recomputed
             every epoch, decoded images kept in memory after the first epoch
  cached     fine-tune mode, head trained on cached embeddings (cold cache: one base pass)
  features   features mode: logistic regression on embeddings (cold cache)
  forward    one pure forward pass of the backbone over the data: the floor
  pipeline   the input pipeline alone (decode + resize + augment), vs the backbone's appetite
  cache-hit  the embedding step cold, then again from the cache
Times are the work alone: each process imports TensorFlow before its clock starts (the
import is the same for every variant and is reported on its own line).
Timings on a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.runs import RunDir

PROJ_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJ_ROOT.parent / "shared"
VARIANTS = ("reference", "live", "cached", "features", "forward", "pipeline", "cache-hit")
REPEATED = ("cached", "features", "forward")  # short enough to repeat: the median tames the noise
# The variants share backbone, image size, epochs and batch size; the reference takes the
# rest of its recipe (head, optimizer, learning rate, augmentation, monitor) from the seed preset.
SHARED_FIELDS = ("backbone", "image_size", "epochs", "batch_size", "patience")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reference_recipe() -> dict:
    from core.config import PRESETS

    return {k: v for k, v in PRESETS["seed"].items() if k not in SHARED_FIELDS}


def _import_framework() -> float:
    """Import TensorFlow and the training modules; return the seconds it took."""
    started = time.perf_counter()
    import core.model  # noqa: F401
    import core.stages  # noqa: F401

    return time.perf_counter() - started


def _train(args, workdir: Path, **fields) -> dict:
    """Run core.train in this process on a config; return wall time and best val accuracy."""
    from core.config import TrainConfig
    from core.train import main as train_main

    config = TrainConfig.from_dict(
        {
            "data": args.data,
            "backbone": args.backbone,
            "image_size": args.image_size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "patience": 0,
            **fields,
        }
    )
    (workdir / "config.json").write_text(config.to_json())
    started = time.perf_counter()
    code = train_main(
        ["--config", str(workdir / "config.json"), "--runs-dir", str(workdir / "runs"), "--no-evaluate"]
    )  # training alone; the evaluation afterwards is the same for all
    seconds = time.perf_counter() - started
    assert code == 0, f"training failed ({code})"
    run = sorted(p for p in (workdir / "runs").iterdir() if p.is_dir())[-1]
    epochs, _ = RunDir(run).metrics()
    return {
        "seconds": seconds,
        "val_accuracy": max(e["val_accuracy"] for e in epochs),
        "images": _image_count(args.data) * (1 if fields.get("mode") == "features" else args.epochs),
    }


def _image_count(data: str) -> int:
    from core.data import scan_dataset

    report = scan_dataset(data, validate=False)
    return sum(len(s.paths) for s in report.splits.values())


def _extractor(args):
    from core.config import TrainConfig
    from core.model import build_model, feature_extractor

    config = TrainConfig(
        data=args.data, backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size
    )
    return config, feature_extractor(build_model(config, 2))


def _all_paths(data: str) -> list[str]:
    from core.data import scan_dataset

    return [p for s in scan_dataset(data, validate=False).splits.values() for p in s.paths]


def variant_forward(args, workdir: Path) -> dict:
    """Build the backbone and run it once over every image: what any run must at least do."""
    from core.pipeline import image_batches

    paths = _all_paths(args.data)
    started = time.perf_counter()
    config, extractor = _extractor(args)
    extractor.predict(image_batches(paths, args.image_size, args.batch_size), verbose=0)
    return {"seconds": time.perf_counter() - started, "images": len(paths)}


def variant_pipeline(args, workdir: Path) -> dict:
    """Images/s of decode+resize+augment alone, and of the backbone on in-memory images."""
    import numpy as np

    from core.config import AugmentConfig
    from core.data import scan_dataset
    from core.pipeline import make_dataset

    split = scan_dataset(args.data, validate=False).splits["train"]
    augment = AugmentConfig(**_reference_recipe()["augment"])
    dataset = make_dataset(split, args.image_size, args.batch_size, 2, training=True, augment=augment)
    rates = []
    for _ in range(2):  # first pass decodes; later epochs read decoded images from memory
        started = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in dataset)
        rates.append(count / (time.perf_counter() - started))
    pipeline_rate = rates[0]
    _, extractor = _extractor(args)
    batch = np.random.default_rng(0).uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3))
    extractor.predict_on_batch(batch.astype("float32"))  # warm-up
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < 10:
        extractor.predict_on_batch(batch.astype("float32"))
        n += args.batch_size
    backbone_rate = n / (time.perf_counter() - started)
    return {
        "seconds": count / pipeline_rate,
        "images": count,
        "pipeline_images_per_s": pipeline_rate,
        "pipeline_cached_images_per_s": rates[1],
        "backbone_images_per_s": backbone_rate,
    }


def variant_cache_hit(args, workdir: Path) -> dict:
    from core.embeddings import EmbeddingCache, embed_paths

    config, extractor = _extractor(args)
    paths = _all_paths(args.data)
    cache = EmbeddingCache(workdir / "cache")
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        embed_paths(extractor, config, paths, cache)
        timings.append(time.perf_counter() - started)
    return {"seconds": timings[1], "cold_seconds": timings[0], "images": len(paths)}


def run_variant(name: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    import_seconds = _import_framework()
    os.environ["TLS_CACHE_DIR"] = str(workdir / "cache")  # every variant starts with a cold cache
    import core.embeddings

    core.embeddings.CACHE_DIR = workdir / "cache"
    try:
        if name == "reference":
            import core.callbacks
            import core.pipeline

            core.pipeline.CACHE_BUDGET_BYTES = 0  # decode every epoch, as ImageDataGenerator does
            # Save only improved checkpoints, as the recipe's ModelCheckpoint(save_best_only=True):
            # our last.keras (for resuming) would add a 140 MB save per epoch to the reference.
            core.callbacks.AtomicCheckpoint._save_last = lambda self, **kwargs: None
            result = _train(args, workdir, head_training="live", **_reference_recipe())
        elif name == "live":
            augment = _reference_recipe()["augment"]
            result = _train(args, workdir, head_training="live", augment=augment)
        elif name == "cached":
            result = _train(args, workdir, head_training="cached")
        elif name == "features":
            result = _train(args, workdir, mode="features")
        else:
            result = globals()[f"variant_{name.replace('-', '_')}"](args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {**result, "peak_rss_mb": _peak_rss_mb(), "import_seconds": import_seconds}


def _child(name: str, args) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--variant",
        name,
        "--data",
        args.data,
        "--backbone",
        args.backbone,
        "--image-size",
        str(args.image_size),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
    ]
    out = subprocess.run(command, cwd=PROJ_ROOT, capture_output=True, text=True, env=os.environ)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    """The run with the median time, plus the range over all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "range": (ordered[0]["seconds"], ordered[-1]["seconds"])}


def _table(args, results: dict) -> str:
    ref, floor = results["reference"], results["forward"]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_version()}; {args.backbone} at {args.image_size} px, {args.epochs} epochs, "
        f"batch {args.batch_size}; data {args.data}",
        "",
        f"Short variants ran {args.repeat} times each: the median, with the range in brackets.",
        "",
        "| variant | wall s | images/s | peak RSS MB | val acc | vs reference | vs forward pass |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("reference", "live", "cached", "features", "forward"):
        r = results[name]
        acc = f"{r['val_accuracy']:.3f}" if "val_accuracy" in r else "-"
        low, high = r["range"]
        spread = f" ({low:.1f}-{high:.1f})" if high > low else ""
        lines.append(
            f"| {name} | {r['seconds']:.1f}{spread} | {r['images'] / r['seconds']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {acc} | {ref['seconds'] / r['seconds']:.1f}x faster | "
            f"{r['seconds'] / floor['seconds']:.2f}x |"
        )
    pipe, hit = results["pipeline"], results["cache-hit"]
    lines += [
        "",
        f"Input pipeline alone with the reference augmentation: first epoch (decode + resize + "
        f"augment) {pipe['pipeline_images_per_s']:.0f} images/s, later epochs (decoded images in "
        f"memory + augment) {pipe['pipeline_cached_images_per_s']:.0f} images/s; the backbone's forward "
        f"pass consumes {pipe['backbone_images_per_s']:.0f} images/s: ratios "
        f"{pipe['pipeline_images_per_s'] / pipe['backbone_images_per_s']:.1f}x and "
        f"{pipe['pipeline_cached_images_per_s'] / pipe['backbone_images_per_s']:.1f}x.",
        f"Embedding step over {hit['images']} images: cold {hit['cold_seconds']:.2f} s, from the cache "
        f"{hit['seconds']:.3f} s: {hit['cold_seconds'] / hit['seconds']:.0f}x faster.",
        f"Importing TensorFlow and the training code, before each variant's clock: "
        f"{min(r['import_seconds'] for r in results.values()):.1f}-"
        f"{max(r['import_seconds'] for r in results.values()):.1f} s.",
    ]
    return "\n".join(lines)


def _prepare_keras_home() -> None:
    """Point Keras at a temp cache holding the shared ImageNet weights (offline machines)."""
    if "KERAS_HOME" in os.environ:
        return
    home = Path(tempfile.mkdtemp(prefix="bench-keras-")) / "models"
    home.mkdir()
    for src, names in {
        "mobilenet_v2_1.0_224_no_top.from-coral-tf2-ptq.h5": [
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{s}_no_top.h5"
        ],
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5": [
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{s}_no_top.h5"
        ],
    }.items():
        if (SHARED / "weights" / src).exists():
            for size in (96, 128, 160, 192, 224):
                for name in names:
                    shutil.copy(SHARED / "weights" / src, home / name.format(s=size))
    os.environ["KERAS_HOME"] = str(home.parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "datasets" / "horse-or-human"))
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, help="default: the backbone's own (224 for MobileNetV2)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each short variant (median)")
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant in this process")
    args = parser.parse_args()
    if not args.image_size:  # what `python -m core.train --backbone X` trains at
        from core.backbones import BACKBONES

        args.image_size = BACKBONES[args.backbone].default_size
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return 0
    _prepare_keras_home()
    results = {}
    for name in VARIANTS:
        repeats = args.repeat if name in REPEATED else 1
        print(f"running {name} x{repeats} ...", file=sys.stderr, flush=True)
        results[name] = _median([_child(name, args) for _ in range(repeats)])
    print(_table(args, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
