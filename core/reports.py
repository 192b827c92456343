"""Plain summaries of runs for the dashboard: live progress, the runs table, checkpoints.

No TensorFlow and no Streamlit: everything here is read from the run's files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.predict import CHECKPOINTS, checkpoint_path
from core.runs import ACTIVE_STATES, COMPLETED, RunSummary, read_json


@dataclass
class Progress:
    """Where a run stands: `fraction` of all batches done and the estimated seconds left."""

    state: str
    epoch: int  # the epoch being trained (1-based), or the last one done
    epochs: int
    batch: int
    batches: int
    fraction: float
    eta_s: float | None
    error: str | None = None
    phase: str | None = None  # e.g. "computing embeddings (1/2)", between epochs
    stage: int = 1  # 2 while fine-tuning the backbone's top layers

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def run_progress(status: dict, epoch_records: list[dict], batch_records: list[dict]) -> Progress:
    """Combine status.json and metrics.jsonl into a `Progress`.

    The time per batch comes from the current epoch's batch records (else from finished
    epochs); the estimate covers the rest of this epoch and all epochs left.
    """
    state = status.get("state", "unknown")
    epochs = int(status.get("epochs") or 0)
    done = len(epoch_records)
    batches = int(status.get("batches") or 0)
    current = [b for b in batch_records if b.get("epoch") == done + 1]
    batch = int(current[-1]["batch"]) if current else 0
    if state == COMPLETED or (epochs and done >= epochs):
        return Progress(state, done, epochs or done, batches, batches, 1.0, 0.0, status.get("error"))
    epoch = done + 1 if state in ACTIVE_STATES else max(done, 1)
    fraction = (done + (batch / batches if batches else 0)) / epochs if epochs else 0.0
    eta = _eta(current, epoch_records, batch, batches, epochs - done) if state in ACTIVE_STATES else None
    return Progress(
        state,
        epoch,
        epochs,
        batch,
        batches,
        min(fraction, 1.0),
        eta,
        status.get("error"),
        status.get("phase"),
        int(status.get("stage") or 1),
    )


def _eta(current: list[dict], epoch_records: list[dict], batch: int, batches: int, epochs_left: int):
    per_epoch = None
    seconds = [r["seconds"] for r in epoch_records if r.get("seconds")]
    if seconds:
        per_epoch = sum(seconds) / len(seconds)
    elif batches and len(current) >= 2:
        span = current[-1]["time"] - current[0]["time"]
        steps = current[-1]["batch"] - current[0]["batch"]
        per_epoch = span / steps * batches if steps > 0 else None
    if per_epoch is None or not batches:
        return None
    this_epoch_left = per_epoch * (1 - batch / batches)
    return this_epoch_left + per_epoch * max(epochs_left - 1, 0)


def format_duration(seconds: float | None) -> str:
    """ "1 h 02 min", "3 min 05 s", "42 s"; "-" for None."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def runs_table(summaries: list[RunSummary]) -> list[dict]:
    """One row per run, for a table: date, backbone, mode, state, best val accuracy, epochs, duration."""
    return [
        {
            "run": s.name,
            "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started_at)) if s.started_at else "-",
            "backbone": s.backbone,
            "mode": s.mode,
            "state": s.state,
            "best val accuracy": s.best_val_accuracy,
            "epochs": s.epochs_done,
            "duration": format_duration(s.duration_s),
        }
        for s in summaries
    ]


def checkpoint_files(run_dir: Path) -> list[dict]:
    """The run's checkpoints that exist: name, path, size in MB, modified time, and for
    `best` the epoch and metric recorded in best.json."""
    best = read_json(Path(run_dir) / "checkpoints" / "best.json", {}) or {}
    rows = []
    for name in CHECKPOINTS:
        path = checkpoint_path(run_dir, name)
        if not path.is_file():
            continue
        stat = path.stat()
        row = {"checkpoint": name, "path": path, "size_mb": stat.st_size / 1024**2, "modified": stat.st_mtime}
        if name == "best" and best:
            row.update(epoch=best.get("epoch"), monitor=best.get("monitor"), value=best.get("value"))
        rows.append(row)
    return rows


def predictable_runs(summaries: list[RunSummary]) -> list[RunSummary]:
    """Runs with at least one checkpoint, completed runs first (newest first within each)."""
    usable = [s for s in summaries if any(checkpoint_path(s.path, c).is_file() for c in CHECKPOINTS)]
    return sorted(usable, key=lambda s: s.state != COMPLETED)
