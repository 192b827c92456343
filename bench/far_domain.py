"""Benchmark: the default command (auto) against every manual recipe on one dataset (not a test).

    python -m bench.far_domain --data DIR [--backbone mobilenet_v2] [--image-size 224]
    python -m bench.far_domain --digits [--image-size 96]

Each recipe is one whole `python -m core.train` process on the same split (validation accuracy
and macro-F1 from its final evaluation, wall time from start to exit):

  auto            the default command: candidates by cross-validation, fine-tuning by evidence
  top probe       --mode features (logistic regression on the top layer's embeddings)
  earlier probes  --mode features --feature-layer L, for each earlier layer auto considered
  two-stage       --mode finetune --fine-tune-layers 40 --fine-tune-epochs 5 (head, then the
                  top 40 backbone layers), as a user following the classic advice would run it

and the advisor's verdict (`python -m core.advisor`). The manual recipes are scored on the
validation split, which auto never sees while choosing: "the best manual recipe" below is the
best in hindsight, a bar auto cannot look at.

`--digits` builds a dataset far from ImageNet from what scikit-learn ships offline: its 1,797
handwritten digits (UCI, 8x8 grey levels, 10 classes), enlarged to 64 px grey RGB PNGs and
split 80/20, stratified (seed 0); they are small, so 96 px serves (the shared weights are the
224 px ones, placed under every size's name as bench.run does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import PROJ_ROOT, _prepare_keras_home

TWO_STAGE = ["--mode", "finetune", "--fine-tune-layers", "40", "--fine-tune-epochs", "5"]


def digits_dataset(out: Path) -> Path:
    """scikit-learn's 8x8 digits as out/{train,validation}/<digit>/<i>.png (64 px, grey RGB)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    indices = np.arange(len(digits.target))
    train, validation = train_test_split(indices, test_size=0.2, stratify=digits.target, random_state=0)
    for split, chosen in (("train", train), ("validation", validation)):
        for i in chosen:
            folder = out / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            grey = (digits.images[i] * (255 / 16)).astype(np.uint8)  # 0-16 grey levels
            picture = Image.fromarray(grey).resize((64, 64), Image.Resampling.BILINEAR).convert("RGB")
            picture.save(folder / f"{i:04d}.png")
    return out


def train(args, runs: Path, *flags: str) -> dict:
    """One whole `core.train` process: its validation scores and wall time."""
    command = [sys.executable, "-m", "core.train", "--data", str(args.data), "--backbone", args.backbone,
               "--image-size", str(args.image_size), "--runs-dir", str(runs), *flags]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJ_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    run = Path(done.stdout.strip().splitlines()[-1])
    evaluation = json.loads((run / "evaluation.json").read_text())["validation"]
    result = {"accuracy": evaluation["accuracy"], "macro_f1": evaluation["macro"]["f1"], "seconds": seconds}
    auto = run / "auto.json"
    if auto.is_file():
        record = json.loads(auto.read_text())
        result.update(winner=record["winner"]["name"], layers=record["layers"], reason=record.get("reason"))
        result["fine_tune"] = record.get("fine_tune")
    return result


def advisor(args) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "core.advisor", str(args.data)], cwd=PROJ_ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr.strip()[-300:]}"


def run_all(args) -> dict:
    runs = Path(tempfile.mkdtemp(prefix="bench-far-"))
    results = {"auto": train(args, runs)}
    for label in results["auto"]["layers"]:
        if label != "top":
            results[f"probe {label}"] = train(args, runs, "--mode", "features", "--feature-layer", label)
    results["probe top"] = train(args, runs, "--mode", "features")
    results["two-stage"] = train(args, runs, *TWO_STAGE)
    results["advisor"] = advisor(args)
    return results


def table(args, results: dict) -> str:
    manual = {k: v for k, v in results.items() if k not in ("auto", "advisor")}
    best = max(manual, key=lambda k: manual[k]["accuracy"])
    lines = [
        f"{args.data}, {args.backbone} at {args.image_size} px, one run; whole processes.",
        "",
        "| recipe | val accuracy | val macro-F1 | wall s |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        if name != "advisor":
            mark = " (best manual)" if name == best else ""
            lines.append(f"| {name}{mark} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['seconds']:.0f} |")
    auto = results["auto"]
    verdict = "at least" if auto["accuracy"] >= manual[best]["accuracy"] else "below"
    lines += [
        "",
        f"auto kept {auto['winner']}: {verdict} the best manual recipe ({best}).",
        f"auto's reason: {auto.get('reason')}",
        f"fine-tuning: {json.dumps(auto.get('fine_tune'))}",
        f"advisor: {results['advisor']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a dataset with train/ and validation/")
    source.add_argument("--digits", action="store_true", help="build scikit-learn's digits as the dataset")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=0, help="default: 96 for --digits, else 224")
    args = parser.parse_args()
    args.image_size = args.image_size or (96 if args.digits else 224)
    _prepare_keras_home()
    os.environ.setdefault("TLS_CACHE_DIR", tempfile.mkdtemp(prefix="bench-far-cache-") + "/embeddings")
    if args.digits:
        args.data = digits_dataset(Path(tempfile.mkdtemp(prefix="bench-digits-")))
    results = run_all(args)
    print(table(args, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
