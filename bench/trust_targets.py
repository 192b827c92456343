"""Measure the data-health targets on a dataset with planted problems.

    python -m bench.trust_targets --data ../shared/datasets/horse-or-human --out /tmp/planted
        [--backbone mobilenet_v2_0.35] [--image-size 160] [--leaks 10] [--moved 0.05]

Copies a split dataset (train/ and validation/), then plants two problems: `--leaks`
validation photos re-saved at 90% size (JPEG) into train under their own class, and a
`--moved` fraction of the training photos moved into another class. Runs `core.health`
and prints how many leaks were found, and how many moved photos the label findings flag
(recall) against how many label findings there are (their count over the number moved).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

from PIL import Image

from core.health import check_health, collect_images, embed


def plant_problems(source: Path, out: Path, leaks: int, moved: float, seed: int = 0) -> tuple[set, set]:
    """Copy `source` to `out` with the problems planted; return (leaked copies, moved photos)
    as paths under `out`."""
    rng = random.Random(seed)
    shutil.copytree(source, out)
    classes = sorted(p.name for p in (out / "train").iterdir() if p.is_dir())
    validation = sorted(p for c in classes for p in (out / "validation" / c).iterdir())
    leaked = set()
    for path in rng.sample(validation, leaks):
        with Image.open(path) as image:
            smaller = image.convert("RGB").resize((int(image.width * 0.9), int(image.height * 0.9)))
        copy = out / "train" / path.parent.name / f"resaved-{path.stem}.jpg"
        smaller.save(copy, "JPEG", quality=85)
        leaked.add(str(copy))
    train = sorted(p for c in classes for p in (out / "train" / c).iterdir() if str(p) not in leaked)
    moved_paths = set()
    for path in rng.sample(train, round(moved * len(train))):
        target = out / "train" / rng.choice([c for c in classes if c != path.parent.name]) / path.name
        shutil.move(path, target)
        moved_paths.add(str(target))
    return leaked, moved_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="a new folder for the planted copy")
    parser.add_argument("--backbone", default="mobilenet_v2_0.35")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--leaks", type=int, default=10)
    parser.add_argument("--moved", type=float, default=0.05)
    args = parser.parse_args()
    leaked, moved = plant_problems(args.data, args.out, args.leaks, args.moved)
    images, _ = collect_images(args.out)
    started = time.time()
    images.embeddings = embed(images.paths, args.backbone, args.image_size)
    embedded = time.time() - started
    findings = check_health(images)
    leaks = [f for f in findings if f.kind == "leakage"]
    found_leaks = {p for f in leaks for p in f.files} & leaked
    labels = [f for f in findings if f.kind == "label_issue"]
    flagged = {f.files[0] for f in labels} & moved
    report = {
        "images": len(images.paths),
        "embedding_s": round(embedded, 1),
        "analysis_s": round(time.time() - started - embedded, 1),
        "leaks_planted": len(leaked),
        "leaks_found": len(found_leaks),
        "leakage_findings": len(leaks),
        "moved": len(moved),
        "moved_flagged": len(flagged),
        "recall": round(len(flagged) / max(len(moved), 1), 3),
        "label_findings": len(labels),
        "findings_per_moved": round(len(labels) / max(len(moved), 1), 2),
        "moved_suggested_back": sum(
            1 for f in labels if f.files[0] in moved and f.suggested != Path(f.files[0]).parent.name
        ),
        "duplicates": sum(f.kind == "duplicate" for f in findings),
        "outliers": sum(f.kind == "outlier" for f in findings),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
