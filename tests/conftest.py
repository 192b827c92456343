"""Shared fixtures: tiny synthetic datasets, real ImageNet weights in a temp Keras cache,
the real horse-or-human data, and a small trained run."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROJ_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJ_ROOT.parent / "shared"
SHARED_WEIGHTS = SHARED / "weights"
HORSE_OR_HUMAN = SHARED / "datasets" / "horse-or-human"
MOBILENET_V2_035 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def require_shared(path: Path) -> Path:
    """Fail loudly (never skip) when the shared real data or weights are missing."""
    if not path.exists():
        pytest.fail(f"required shared file missing: {path} (see ../shared/README)", pytrace=False)
    return path


def write_image(
    path: Path,
    color: tuple[int, int, int],
    size: int = 32,
    mode: str = "RGB",
    fmt: str | None = None,
    seed: int = 0,
) -> Path:
    """A small image of `color` with mild noise, so classes are learnable but not identical."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-20, 20, (size, size, 3))
    pixels = np.clip(np.array(color) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").convert(mode).save(path, fmt)
    return path


def make_color_dataset(root: Path, per_class: int = 8, classes: dict | None = None, size: int = 32) -> Path:
    """root/<class>/<i>.png with one dominant colour per class."""
    classes = classes or {"red": (220, 40, 40), "blue": (40, 40, 220)}
    for c, (name, color) in enumerate(classes.items()):
        for i in range(per_class):
            write_image(root / name / f"{i}.png", color, size=size, seed=c * 1000 + i)
    return root


@pytest.fixture
def color_dataset(tmp_path: Path) -> Path:
    """Two classes (red, blue), 8 tiny PNGs each, unsplit."""
    return make_color_dataset(tmp_path / "colors")


# Keras reads KERAS_HOME once, when it is first imported, so the whole test session uses
# one private Keras home (never the user's ~/.keras); `keras_home` fills it with weights.
# This file also runs a second time when a test imports `tests.conftest`: keep one home.
if "TLS_SESSION_KERAS_HOME" not in os.environ:
    os.environ["TLS_SESSION_KERAS_HOME"] = tempfile.mkdtemp(prefix="tls-keras-home-")
    atexit.register(shutil.rmtree, os.environ["TLS_SESSION_KERAS_HOME"], True)
SESSION_KERAS_HOME = Path(os.environ["TLS_SESSION_KERAS_HOME"])
os.environ["KERAS_HOME"] = str(SESSION_KERAS_HOME)


@pytest.fixture(scope="session")
def keras_home() -> Path:
    """The session's KERAS_HOME, its models/ holding real ImageNet weights from ../shared.

    Keras asks MobileNetV2 for the file of the model's input size; only the 224 file
    exists, so it is also copied under the 96/128/160/192 names (same array shapes;
    224-trained weights transfer well at smaller sizes).
    """
    home = SESSION_KERAS_HOME
    models = home / "models"
    models.mkdir(exist_ok=True)
    source = require_shared(SHARED_WEIGHTS / MOBILENET_V2_035)
    for size in (96, 128, 160, 192, 224):
        shutil.copy(source, models / MOBILENET_V2_035.replace("_224_", f"_{size}_"))
    coral = require_shared(SHARED_WEIGHTS / "mobilenet_v2_1.0_224_no_top.from-coral-tf2-ptq.h5")
    shutil.copy(coral, models / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
    return home


@pytest.fixture
def use_keras_home(keras_home: Path, monkeypatch) -> Path:
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    return keras_home


@pytest.fixture(scope="session")
def horse_or_human() -> Path:
    """The real dataset (official split), read-only."""
    return require_shared(HORSE_OR_HUMAN)


def horse_or_human_subset(
    dest: Path, per_class: int, split: str = "train", offset: int = 0, stride: int = 1
) -> Path:
    """Copy `per_class` images per class of one split into dest/<class>/.

    The files are consecutive frames of a few subjects, so a `stride` spreads a small
    subset over many subjects; different offsets with one stride give disjoint subsets.
    """
    for class_dir in sorted((require_shared(HORSE_OR_HUMAN) / split).iterdir()):
        files = sorted(class_dir.iterdir())[offset::stride][:per_class]
        (dest / class_dir.name).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, dest / class_dir.name / f.name)
    return dest


def run_cli(module: str, *args: str, env: dict | None = None, timeout: int = 600):
    """Run `python -m <module> args` from the project root; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJ_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A completed fine-tune run of 2 epochs on the synthetic colour dataset (random weights: fast).

    Used by tests of the dashboard and of prediction plumbing, not of learning.
    """
    root = tmp_path_factory.mktemp("trained")
    data = make_color_dataset(root / "colors", per_class=10)
    result = run_cli(
        "core.train",
        "--data",
        str(data),
        "--runs-dir",
        str(root / "runs"),
        "--backbone",
        "mobilenet_v2_0.35",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--mode",
        "finetune",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(result.stdout.strip().splitlines()[-1])


def wait_for(predicate, timeout: float = 120.0):
    """Poll `predicate` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def launch_tiny_run(tmp_path: Path, **fields) -> Path:
    """Launch a background training as the dashboard does: random weights, 32 px, batch 1,
    on 16 colour images per class (slow enough per epoch to be stopped mid-run)."""
    from core.config import TrainConfig
    from core.runs import launch_training

    data = make_color_dataset(tmp_path / "d", per_class=16)
    config = TrainConfig(data=str(data), backbone="mobilenet_v2_0.35", weights=None, image_size=32,
                         batch_size=1, patience=0, **{"mode": "finetune", **fields})  # fmt: skip
    return launch_training(config, tmp_path / "runs")
