"""Real transfer learning: real ImageNet weights, real horse-or-human photos.

These tests are the honest ones: with random weights (`--weights none`) a linear head on
80 images does not reach 0.9, so passing proves the pretrained backbone does the work.
"""

import json
from pathlib import Path

import pytest

from core.runs import RunDir
from core.stages import head_steps_per_epoch
from tests.helpers import horse_or_human_subset, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_horse_or_human(tmp_path_factory, horse_or_human):
    """train/: 40 images per class; validation/: 20 per class; held-out/: 20 others per class."""
    root = tmp_path_factory.mktemp("hoh")
    horse_or_human_subset(root / "data" / "train", 40, "train", stride=12)
    horse_or_human_subset(root / "data" / "validation", 20, "validation", offset=0, stride=6)
    horse_or_human_subset(root / "held-out", 20, "validation", offset=3, stride=6)
    return root


# MobileNetV2 x0.35 at 160 px; the head recipe (6 epochs, batch 8, learning rate 0.003)
# reached 0.95-1.0 validation accuracy over four seeds when it was chosen.
# The Keras head on the frozen base (the auto default would choose for itself).
RECIPE = ["--epochs", "6", "--batch-size", "8", "--learning-rate", "0.003", "--patience", "0"]
RECIPE += ["--mode", "finetune"]


def _train(root, keras_home, *args, runs: str = "runs", env: dict | None = None):
    """`python -m core.train` on the subset with the real weights; the completed process."""
    result = run_cli("core.train", "--data", str(root / "data"), "--runs-dir", str(root / runs),
                     "--backbone", "mobilenet_v2_0.35", "--image-size", "160", *args,
                     env={"KERAS_HOME": str(keras_home), **(env or {})})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_frozen_pretrained_backbone_learns_and_predicts(small_horse_or_human, keras_home):
    root = small_horse_or_human
    result = _train(root, keras_home, *RECIPE)
    run_dir = result.stdout.strip().splitlines()[-1]
    assert "epoch 6/6" in result.stdout  # live progress on stdout
    epochs = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl") if '"batch"' not in line]
    assert max(e["val_accuracy"] for e in epochs) >= 0.9, epochs

    images = sorted((root / "held-out").rglob("*.jpg"))
    predicted = run_cli(
        "core.predict", "--run", run_dir, *map(str, images), env={"KERAS_HOME": str(keras_home)}
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    correct = sum(line["label"] == image.parent.name for line, image in zip(lines, images))
    assert len(lines) == 40 and correct / len(lines) >= 0.9, lines


def test_random_weights_do_not_reach_the_same_accuracy(small_horse_or_human, keras_home):
    """The control: the same recipe without ImageNet weights stays far below 0.9."""
    result = _train(small_horse_or_human, keras_home, *RECIPE, "--weights", "none")
    run_dir = result.stdout.strip().splitlines()[-1]
    epochs = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl") if '"batch"' not in line]
    assert max(e["val_accuracy"] for e in epochs) < 0.9


def test_features_mode_with_real_weights(small_horse_or_human, keras_home):
    """Feature extraction: logistic regression on pretrained embeddings, one pass, >= 0.95."""
    root = small_horse_or_human
    result = _train(root, keras_home, "--mode", "features", runs="runs-features",
                    env={"TLS_CACHE_DIR": str(root / "cache")})  # fmt: skip
    run_dir = result.stdout.strip().splitlines()[-1]
    [epoch] = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    assert epoch["val_accuracy"] >= 0.95, epoch


def test_multi_device_training_on_two_logical_cpus(small_horse_or_human, keras_home):
    """MirroredStrategy over the CPU split in two: same run contract, comparable accuracy."""
    root = small_horse_or_human
    recipe = [*RECIPE[:2], "--batch-size", "4", *RECIPE[4:]]  # 4 per replica: the same global batch
    result = _train(root, keras_home, *recipe, runs="runs-mirrored", env={"TLS_CPU_REPLICAS": "2"})
    assert "2 replicas (MirroredStrategy)" in result.stdout
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert RunDir(run_dir).status()["replicas"] == 2
    assert {"config.json", "labels.json", "metrics.jsonl", "status.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert {"best.keras", "last.keras"} <= {p.name for p in (run_dir / "checkpoints").iterdir()}
    epochs, batches = RunDir(run_dir).metrics()
    # 80 images / global batch 8 = 10 batches, repeated so that the head takes HEAD_STEPS in all
    assert len(epochs) == 6 and batches[-1]["batches"] == head_steps_per_epoch(80, 8, 6) > 10
    assert max(e["val_accuracy"] for e in epochs) >= 0.9, epochs
