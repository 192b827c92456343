"""Helpers the tests import: tiny synthetic images, the CLI runner, polling, a tiny background run.

Tests import these as `from tests.helpers import ...`; `conftest.py` holds only fixtures, so
nothing here depends on which name pytest loaded the conftest under.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

PROJ_ROOT = Path(__file__).resolve().parents[1]


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


def horse_or_human_subset(
    dest: Path, per_class: int, split: str = "train", offset: int = 0, stride: int = 1
) -> Path:
    """Copy `per_class` images per class of one split of the real horse-or-human into dest/<class>/.

    The files are consecutive frames of a few subjects, so a `stride` spreads a small
    subset over many subjects; different offsets with one stride give disjoint subsets.
    """
    from tests.real_assets import horse_or_human_dataset

    for class_dir in sorted((horse_or_human_dataset() / split).iterdir()):
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


def wait_for(predicate, timeout: float = 120.0):
    """Poll `predicate` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def launch_tiny_run(tmp_path: Path, hold_at_epoch: int | None = None, **fields) -> Path:
    """Launch a background training as the dashboard does: random weights, 32 px, on 16
    colour images per class.

    With `hold_at_epoch` N the training process waits after the first batch of epoch N until
    it is stopped or killed (TLS_TEST_HOLD_AT_EPOCH), so epochs 1..N-1 are done and on disk
    whatever the machine's speed.
    """
    from core.callbacks import HOLD_AT_EPOCH_ENV
    from core.config import TrainConfig
    from core.launch import launch_training

    data = make_color_dataset(tmp_path / "d", per_class=16)
    config = TrainConfig(data=str(data), backbone="mobilenet_v2_0.35", weights=None, image_size=32,
                         batch_size=4, patience=0, **{"mode": "finetune", **fields})  # fmt: skip
    previous = os.environ.get(HOLD_AT_EPOCH_ENV)
    os.environ[HOLD_AT_EPOCH_ENV] = str(hold_at_epoch or 0)  # read by the child it launches
    try:
        return launch_training(config, tmp_path / "runs")
    finally:
        if previous is None:
            del os.environ[HOLD_AT_EPOCH_ENV]
        else:
            os.environ[HOLD_AT_EPOCH_ENV] = previous


def unreachable_network_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess whose downloads fail at once, online or offline.

    An empty Keras cache, and every HTTP(S) request sent to a proxy on a local port that
    nothing listens on: the connection is refused, so no test depends on the machine
    being offline.
    """
    from tests.dashboard_helpers import free_port

    dead_proxy = f"http://127.0.0.1:{free_port()}"
    return {
        "KERAS_HOME": str(tmp_path / "empty-keras-home"),
        **{name: dead_proxy for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
        "no_proxy": "",
        "NO_PROXY": "",
    }


def tree_digest(root: Path) -> str:
    """One SHA-256 over a folder's paths and file contents: equal before and after means untouched."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
