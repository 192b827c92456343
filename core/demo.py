"""Demo mode: the settings of a public, hosted dashboard (TLS_DEMO_MODE=1).

Strangers share one small machine, so training is limited in size, runs cannot be
deleted, datasets stay inside the data root, and a ready model ships with the repository
so that Predict works the moment the app starts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.config import DATA_ROOT, PROJ_ROOT, SAMPLE_DATASET, ConfigError, TrainConfig
from core.runs import COMPLETED, list_runs

DEMO_RUN = PROJ_ROOT / "data" / "demo" / "horse-or-human-quick"
MAX_EPOCHS = 5
MAX_IMAGE_SIZE = 160
MAX_TRAIN_IMAGES = 600
SMALL_BACKBONES = ("mobilenet_v2_0.35", "mobilenet_0.25", "mobilenet_v2")


def demo_mode() -> bool:
    return os.environ.get("TLS_DEMO_MODE", "").lower() not in ("", "0", "false", "no")


def confine(path: str | os.PathLike, root: Path = DATA_ROOT) -> Path:
    """`path` resolved, if it lies inside `root` (or is the bundled sample); else ConfigError."""
    resolved = Path(path).resolve()
    allowed = (Path(root).resolve(), SAMPLE_DATASET.resolve())
    if not any(resolved == a or resolved.is_relative_to(a) for a in allowed):
        raise ConfigError(f"data: datasets must be inside {Path(root).resolve()}")
    return resolved


def check_demo_limits(config: TrainConfig, train_images: int | None = None) -> None:
    """Raise ConfigError naming the first setting above the demo's limits."""
    confine(config.data)
    if config.backbone not in SMALL_BACKBONES:
        raise ConfigError(f"backbone: the demo trains only {', '.join(SMALL_BACKBONES)}")
    if config.total_epochs > MAX_EPOCHS:
        raise ConfigError(f"epochs: the demo trains at most {MAX_EPOCHS} epochs in all")
    if config.image_size > MAX_IMAGE_SIZE:
        raise ConfigError(f"image_size: the demo uses at most {MAX_IMAGE_SIZE} px")
    if train_images is not None and train_images > MAX_TRAIN_IMAGES:
        raise ConfigError(f"data: the demo trains on at most {MAX_TRAIN_IMAGES} images, not {train_images}")


def ensure_demo_run(runs_dir: Path) -> Path | None:
    """Copy the shipped ready model into `runs_dir` unless a completed run is there already."""
    if any(run.state == COMPLETED for run in list_runs(runs_dir)):
        return None
    target = Path(runs_dir) / DEMO_RUN.name
    if not target.exists():
        shutil.copytree(DEMO_RUN, target)
    return target
