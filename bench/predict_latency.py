"""Warm latency of one photo through `Classifier.predict`, as the Predict page calls it.

    python -m bench.predict_latency --run RUNS/RUN_DIR [--checkpoint best] [--repeats 50]

Loads the run once, warms up, then times `predict([photo])` on a 300x300 JPEG held in
memory (decode + resize + model), and prints the median and 90th percentile.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from core.predict import CHECKPOINTS, load_classifier


def photo_300(seed: int = 0) -> io.BytesIO:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    buffer.name = "photo.jpg"
    return buffer


def measure(run: str, checkpoint: str = "best", repeats: int = 50, warmup: int = 5) -> list[float]:
    """Seconds per `predict([photo])` call, after `warmup` untimed calls."""
    classifier = load_classifier(run, checkpoint)
    photo = photo_300()
    for _ in range(warmup):
        photo.seek(0)
        classifier.predict([photo])
    times = []
    for _ in range(repeats):
        photo.seek(0)
        start = time.perf_counter()
        classifier.predict([photo])
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--run", required=True)
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    times = sorted(measure(args.run, args.checkpoint, args.repeats))
    p90 = times[int(0.9 * (len(times) - 1))]
    median = statistics.median(times)
    print(f"{args.run}: median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms ({len(times)} calls)")


if __name__ == "__main__":
    main()
