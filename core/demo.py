"""Demo mode: the settings of a public, hosted dashboard (TLS_DEMO_MODE=1).

Strangers share one small machine, so training is limited in size, runs cannot be
deleted, datasets stay inside the data root, and a ready model ships with the repository
so that Predict works the moment the app starts.

Visitors are isolated: each browser session gets its own workspace (its uploads, splits
and runs, with its own copy of the ready model) in `<data root>/sessions/<token>` and
`<runs folder>/sessions/<token>`, removed after `SESSION_TTL_S` without a visit, and
limited to `SESSION_QUOTA_BYTES` on disk. At most `JOB_SLOTS` trainings, evaluations and
exports run at once across all visitors.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from core import config
from core.config import DATA_ROOT, PROJ_ROOT, SAMPLE_DATASET, ConfigError, TrainConfig

DEMO_RUN = PROJ_ROOT / "data" / "demo" / "horse-or-human-quick"
MAX_EPOCHS = 5
MAX_IMAGE_SIZE = 160
MAX_TRAIN_IMAGES = 600
SMALL_BACKBONES = ("mobilenet_v2_0.35", "mobilenet_0.25", "mobilenet_v2")
SESSIONS = "sessions"  # the folder of per-visitor workspaces, under the data root and the runs folder
SESSION_TTL_S = 2 * 3600  # a workspace not visited for this long is deleted
SESSION_QUOTA_BYTES = 300 * 1024**2  # uploads, splits and runs of one visitor
JOB_SLOTS = 2  # trainings, evaluations and exports running at once, all visitors together
MAX_IMAGE_PIXELS = 25_000_000  # an image larger than this is refused before it is decoded


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
    if config.epochs + (config.fine_tune_epochs if config.fine_tune_layers else 0) > MAX_EPOCHS:
        raise ConfigError(f"epochs: the demo trains at most {MAX_EPOCHS} epochs in all")
    if config.image_size > MAX_IMAGE_SIZE:
        raise ConfigError(f"image_size: the demo uses at most {MAX_IMAGE_SIZE} px")
    if train_images is not None and train_images > MAX_TRAIN_IMAGES:
        raise ConfigError(f"data: the demo trains on at most {MAX_TRAIN_IMAGES} images, not {train_images}")


def ensure_demo_run(runs_dir: Path) -> Path | None:
    """Copy the shipped ready model into `runs_dir` unless a completed run is there already."""
    from core.runs import COMPLETED, list_runs

    if any(run.state == COMPLETED for run in list_runs(runs_dir)):
        return None
    target = Path(runs_dir) / DEMO_RUN.name
    if not target.exists():
        shutil.copytree(DEMO_RUN, target, copy_function=_link_or_copy)  # one copy for all visitors
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@dataclass(frozen=True)
class Workspace:
    """Where one dashboard session keeps its runs, uploads and splits.

    Outside demo mode it is the machine's own folders; in demo mode, the visitor's own.
    """

    runs_dir: Path
    data_dir: Path  # uploads/ and splits/ are made here
    isolated: bool

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def splits_dir(self) -> Path:
        return self.data_dir / "splits"

    def datasets(self) -> list[Path]:
        """The dataset folders this session may choose (never another visitor's)."""
        from core.catalog import find_datasets

        containers = (self.uploads_dir, self.splits_dir)
        if not self.isolated:
            return find_datasets(config.DATA_ROOT, exclude=(SAMPLE_DATASET,), containers=containers)
        shared = find_datasets(
            config.DATA_ROOT,
            exclude=(SAMPLE_DATASET, config.DATA_ROOT / SESSIONS, config.DATA_ROOT / "uploads"),
            containers=(config.DATA_ROOT / "splits",),
        )
        return shared + find_datasets(self.data_dir, containers=containers)

    def used_bytes(self) -> int:
        return folder_bytes(self.runs_dir) + folder_bytes(self.data_dir)

    def free_bytes(self) -> int | None:
        """What the session may still write; None when there is no quota (not a demo)."""
        return max(0, SESSION_QUOTA_BYTES - self.used_bytes()) if self.isolated else None


def workspace(session: MutableMapping) -> Workspace:
    """The workspace of the dashboard session whose state is `session` (st.session_state).

    In demo mode a new session gets a random token, its own folders and a copy of the
    ready model; every call marks the workspace as visited, and a new one removes those
    not visited for `SESSION_TTL_S`.
    """
    if not demo_mode():
        return Workspace(config.RUNS_DIR, config.DATA_ROOT, isolated=False)
    token = session.get("workspace")
    if not token:
        token = session["workspace"] = secrets.token_hex(12)
        remove_expired_workspaces()
    space = Workspace(config.RUNS_DIR / SESSIONS / token, config.DATA_ROOT / SESSIONS / token, isolated=True)
    fresh = not space.runs_dir.is_dir()
    for folder in (space.runs_dir, space.data_dir):
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)  # visited now
    if fresh:
        ensure_demo_run(space.runs_dir)
    return space


def remove_expired_workspaces(now: float | None = None) -> list[str]:
    """Delete the workspaces not visited for `SESSION_TTL_S` (unless one is training)."""
    from core.runs import active_run

    now = now or time.time()
    removed = []
    for sessions in (config.RUNS_DIR / SESSIONS, config.DATA_ROOT / SESSIONS):
        for folder in sessions.iterdir() if sessions.is_dir() else []:
            runs = config.RUNS_DIR / SESSIONS / folder.name
            visited = max(_mtime(folder), _mtime(runs), _mtime(config.DATA_ROOT / SESSIONS / folder.name))
            if now - visited > SESSION_TTL_S and not (runs.is_dir() and active_run(runs)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return sorted(set(removed))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def folder_bytes(folder: Path) -> int:
    """Bytes of the files below `folder` (links not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def check_quota(runs_dir: Path) -> None:
    """In demo mode, refuse a new job in a session workspace that is over its disk quota."""
    if not demo_mode() or Path(runs_dir).parent.name != SESSIONS:
        return
    token = Path(runs_dir).name
    used = folder_bytes(Path(runs_dir)) + folder_bytes(config.DATA_ROOT / SESSIONS / token)
    if used > SESSION_QUOTA_BYTES:
        raise ConfigError(
            f"the demo keeps at most {SESSION_QUOTA_BYTES / 1024**2:.0f} MB per visitor, and "
            f"this session uses {used / 1024**2:.0f} MB"
        )


_held_slots: list = []


def hold_job_slot() -> None:
    """In demo mode, take one of the demo's job slots for the rest of this process (the OS
    frees it when the process ends); ConfigError when all are taken. Outside it, nothing."""
    if demo_mode() and not _held_slots:
        _held_slots.append(JobSlot().acquire())


class JobSlot:
    """One of the demo's `JOB_SLOTS`: an flock held by a training, evaluation or export
    process for its whole life (the OS frees it when the process dies)."""

    def __init__(self):
        self._handle = None

    def acquire(self) -> JobSlot:
        """Take a free slot, or raise ConfigError saying the demo is busy."""
        import fcntl

        folder = config.RUNS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(JOB_SLOTS):
            handle = open(folder / f".demo-job-{index}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self._handle = handle
            return self
        raise ConfigError(
            f"the demo is busy: {JOB_SLOTS} trainings or evaluations are running for visitors; "
            "try again in a few minutes"
        )

    def release(self) -> None:
        if self._handle:
            self._handle.close()
            self._handle = None
