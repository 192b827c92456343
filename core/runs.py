"""Run directories: the files a training process writes and the dashboard reads.

    runs/20261128-231500-mobilenet_v2-224/
        config.json      the TrainConfig, written first
        labels.json      class names in index order
        metrics.jsonl    one JSON object per epoch, plus per-batch progress lines
        status.json      state, process id, progress, error
        checkpoints/     best.keras, last.keras (+ best.json: epoch and metric)
        dataset.json     the dataset's classes, counts per split and skipped files
        evaluation.json  per split: confusion matrix, per-class metrics, curves, gallery
        evaluation/      thumbnails of misclassified and least-confident images
        train.log        the training process's output, when launched by the dashboard
        STOP             created to ask the training process to stop

No TensorFlow here: the dashboard watches runs without loading Keras.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.catalog import dataset_name
from core.config import PROJ_ROOT, TrainConfig
from core.progress_model import run_duration
from core.uploads import safe_name

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = (
    "running",
    "completed",
    "stopped",
    "failed",
    "interrupted",
)
ACTIVE_STATES = ("starting", RUNNING)
STOP_FILE = "STOP"
LOCK_FILE = ".training.lock"


class RunError(RuntimeError):
    """A run cannot be created, launched or read; the message says why."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file and `os.replace`, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def append_jsonl(path: Path, record: dict) -> None:
    """Append one line, flushed and fsynced so another process can follow along live."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(per-epoch records, per-batch records); a half-written last line is ignored."""
    epochs, batches = [], []
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return epochs, batches
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the writer is mid-line, or the process died there
        if isinstance(record, dict):
            (batches if "batch" in record else epochs).append(record)
    return epochs, batches


def new_run_dir(runs_dir: Path, config: TrainConfig) -> Path:
    """Create `runs_dir/YYYYmmdd-HHMMSS-<dataset>-<backbone>-<size>` (suffixed if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{safe_name(dataset_name(config.data), 'data')}-{config.backbone}-{config.image_size}"
    try:
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            run_dir = Path(runs_dir) / (base if attempt == 0 else f"{base}-{attempt}")
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
    except OSError as exc:
        raise RunError(f"cannot create a run in {runs_dir}: {exc.strerror}") from None
    raise RunError(f"too many runs named {base} in {runs_dir}")


def write_status(run_dir: Path, **fields: Any) -> dict:
    """Merge `fields` into status.json and stamp it."""
    path = Path(run_dir) / "status.json"
    status = read_json(path, {}) or {}
    status.update(fields, updated_at=time.time())
    write_json_atomic(path, status)
    return status


def pid_alive(pid: int | None) -> bool:
    """True while `pid` is a live (not zombie) process."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): the signal test is all we have


def read_status(run_dir: Path) -> dict:
    """status.json, with a `running` run whose process has died reported as interrupted."""
    status = read_json(Path(run_dir) / "status.json", {}) or {}
    if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
        status = {
            **status,
            "state": INTERRUPTED,
            "error": status.get("error") or "the training process ended unexpectedly",
        }
    return status


def request_stop(run_dir: Path) -> None:
    """Ask the training process to stop after its current batch."""
    (Path(run_dir) / STOP_FILE).touch()


@dataclass
class RunSummary:
    path: Path
    name: str
    state: str
    backbone: str
    mode: str
    dataset: str  # the dataset folder's name
    started_at: float | None
    duration_s: float | None
    epochs_done: int
    best_val_accuracy: float | None
    classes: list[str]


def summarize_run(run_dir: Path) -> RunSummary:
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {}) or {}
    status = read_status(run_dir)
    epochs, _ = read_metrics(run_dir)
    accuracies = [e["val_accuracy"] for e in epochs if e.get("val_accuracy") is not None]
    return RunSummary(
        path=run_dir,
        name=run_dir.name,
        state=status.get("state", "unknown"),
        backbone=config.get("backbone", "?"),
        mode=config.get("mode", "finetune"),
        dataset=dataset_name(config["data"]) if config.get("data") else "?",
        started_at=status.get("started_at"),
        duration_s=run_duration(status, time.time()),
        epochs_done=len(epochs),
        best_val_accuracy=max(accuracies) if accuracies else None,
        classes=read_json(run_dir / "labels.json", []) or [],
    )


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run under `runs_dir`, newest first."""
    if not Path(runs_dir).is_dir():
        return []
    dirs = [p for p in Path(runs_dir).iterdir() if (p / "config.json").is_file()]
    return [summarize_run(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]


def active_run(runs_dir: Path) -> Path | None:
    """The run whose training process is alive, if any."""
    for summary in list_runs(runs_dir):
        if summary.state in ACTIVE_STATES:
            return summary.path
    return None


def delete_run(run_dir: Path) -> None:
    from core.demo import demo_mode

    if demo_mode():
        raise RunError("deleting runs is turned off in the demo")
    if read_status(run_dir).get("state") in ACTIVE_STATES:
        raise RunError(f"run {Path(run_dir).name} is still training: stop it first")
    shutil.rmtree(run_dir)


class TrainingLock:
    """One training at a time per runs folder: an flock the OS releases when its process dies."""

    def __init__(self, runs_dir: Path):
        self.path = Path(runs_dir) / LOCK_FILE
        self._handle = None

    def acquire(self) -> None:
        """Take the lock or raise `RunError` naming the run that holds it."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as exc:  # not a folder, read-only, full disk
            raise RunError(f"cannot create a run in {self.path.parent}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another run"
            handle.close()
            raise RunError(f"another training is running: {holder}") from None
        self._handle = handle
        self.name_holder(f"process {os.getpid()}")

    def name_holder(self, holder: str | Path) -> None:
        """Record who holds the lock, for the message a refused start shows."""
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(holder))
        self._handle.flush()

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle:
            self._handle.close()
            self._handle = None


def launch_training(config: TrainConfig, runs_dir: Path) -> Path:
    """Start `python -m core.train` for `config` in the background; return its run folder.

    Raises:
        RunError: another run is still training (naming it), or the folder is unwritable.
    """
    _refuse_if_training(runs_dir)
    run_dir = new_run_dir(runs_dir, config)
    write_json_atomic(run_dir / "config.json", config.to_dict())
    # Counted as active from now on (this process's pid) until the child takes over.
    write_status(run_dir, state="starting", pid=os.getpid(), started_at=time.time())
    _spawn(run_dir, ["--config", str(run_dir / "config.json"), "--run-dir", str(run_dir)], "w")
    return run_dir


def launch_resume(run_dir: Path) -> None:
    """Resume a stopped or interrupted run in the background (`python -m core.train --resume`)."""
    _refuse_if_training(Path(run_dir).parent)
    if read_status(run_dir).get("state") not in (STOPPED, INTERRUPTED, FAILED):
        raise RunError(f"only a stopped, interrupted or failed run can resume: {Path(run_dir).name}")
    # Active from now on, so the pages follow it and refuse a second start meanwhile.
    write_status(run_dir, state="starting", pid=os.getpid(), error=None)
    _spawn(Path(run_dir), ["--resume", str(run_dir)], "a")


def run_evaluation(run_dir: Path, split: str, timeout_s: float = 900) -> str:
    """Evaluate a run on `split` in a `python -m core.evaluate` process (TensorFlow stays out
    of the caller); return its summary line, or raise RunError with its one-line error."""
    lines = _run_module("core.evaluate", ["--run", str(run_dir), "--split", split], timeout_s, "evaluation")
    return (lines or [split])[0]


def run_export(
    run_dir: Path, fmt: str, quantize: str | None = None, timeout_s: float = 900
) -> tuple[str, Path]:
    """Export and verify a run's best checkpoint in a `python -m core.export` process;
    return (its summary line, the zip's path), or raise RunError with its one-line error."""
    args = ["--run", str(run_dir), "--format", fmt, *(["--quantize", quantize] if quantize else [])]
    lines = _run_module("core.export", args, timeout_s, "export")
    return lines[0], Path(lines[-1])


def run_health(data: Path, backbone: str, image_size: int, timeout_s: float = 1800) -> list[str]:
    """Check a dataset's health in a `python -m core.health` process (TensorFlow stays out of
    the caller); return its output lines (findings, then the summary), or raise RunError."""
    args = ["--data", str(data), "--backbone", backbone, "--image-size", str(image_size)]
    return _run_module("core.health", args, timeout_s, "health check")


def _run_module(module: str, args: list[str], timeout_s: float, what: str) -> list[str]:
    """Run `python -m module args`; its stdout lines, or RunError with its last stderr line."""
    command = [sys.executable, "-m", module, *args]
    try:
        done = subprocess.run(command, cwd=PROJ_ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RunError(f"the {what} took longer than {timeout_s / 60:.0f} minutes") from None
    except OSError as exc:
        raise RunError(f"the {what} could not start: {exc.strerror}") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        raise RunError(errors[-1].removeprefix("error: ") if errors else f"exit status {done.returncode}")
    return [line for line in done.stdout.splitlines() if line.strip()]


def _refuse_if_training(runs_dir: Path) -> None:
    running = active_run(runs_dir)
    if running:
        raise RunError(f"a training is already running: {running.name}. Stop it or wait.")


def _spawn(run_dir: Path, args: list[str], log_mode: str) -> None:
    with open(run_dir / "train.log", log_mode) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.train", *args],
            cwd=PROJ_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    if read_status(run_dir).get("state") == "starting":
        write_status(run_dir, pid=process.pid)  # the child imports TF for seconds before writing
    # Reap the child when it exits so it never lingers as a zombie in the dashboard.
    threading.Thread(target=process.wait, daemon=True).start()
