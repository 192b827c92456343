"""Keras callbacks that write a run directory while training: metrics, status, checkpoints."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.config import metric_rises
from core.progress_model import TRAINING, mark_phase
from core.runs import RunDir, append_jsonl, read_json, write_json_atomic
from core.tf_setup import keras

BATCH_LOG_INTERVAL_S = 0.5  # at most ~2 progress lines per second
# While full saves are throttled, the head's weights (kilobytes) are saved every epoch here.
LAST_HEAD, BEST_HEAD = "last.head.npz", "best.head.npz"
# Tests only: with TLS_TEST_HOLD_AT_EPOCH=N the process waits after the first batch of epoch N
# until it is asked to stop (or killed), so a test stops a run at a known point however fast
# the machine is.
HOLD_AT_EPOCH_ENV = "TLS_TEST_HOLD_AT_EPOCH"


def save_atomic(model: keras.Model, path: Path) -> None:
    """Save next to `path` and rename, so a crash never leaves a half-written checkpoint,
    and a failed save (a full disk) leaves the previous file and no temp file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_arrays_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez` through a temp file and a rename, removing the temp file if it fails."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def head_weights(model: keras.Model) -> list[np.ndarray]:
    """The weights of the layers after the pooling layer (what trains while the base is frozen)."""
    from core.model import head_layers

    return [w for layer in head_layers(model) for w in layer.get_weights()]


def set_head_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    from core.model import head_layers

    weights = list(weights)
    for layer in head_layers(model):
        count = len(layer.get_weights())
        layer.set_weights(weights[:count])
        weights = weights[count:]


def write_head_snapshot(path: Path, entries: list[tuple[int, list[np.ndarray]]], **extra: float) -> None:
    """Save head weights of one or more epochs [(epoch, weights), ...] in one atomic file."""
    arrays = {k: np.asarray(v) for k, v in extra.items()}
    arrays["epochs"] = np.asarray([epoch for epoch, _ in entries])
    for slot, (_, weights) in enumerate(entries):
        arrays.update({f"w{slot}_{i}": w for i, w in enumerate(weights)})
    save_arrays_atomic(path, arrays)


def read_head_snapshot(path: Path) -> tuple[dict[int, list[np.ndarray]], dict[str, float]]:
    """({epoch: head weights}, extra values) of a snapshot; empty when missing or unreadable."""
    try:
        with np.load(path) as data:
            weights = {
                int(epoch): [data[f"w{slot}_{i}"] for i in range(_count(data.files, slot))]
                for slot, epoch in enumerate(data["epochs"])
            }
            extra = {k: float(data[k]) for k in data.files if k != "epochs" and not k.startswith("w")}
            return weights, extra
    except (OSError, ValueError, KeyError):
        return {}, {}


def _count(names: list[str], slot: int) -> int:
    return sum(name.startswith(f"w{slot}_") for name in names)


def link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source` (a hard link, else a copy), atomically."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # no hard links on this filesystem
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _floats(logs: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items() if hasattr(v, "__float__")}


class RunLogger(keras.callbacks.Callback):
    """Appends epoch and throttled batch lines to metrics.jsonl, updates status.json,
    prints a line per epoch, and stops training when `should_stop()` turns true."""

    def __init__(
        self,
        run_dir: Path,
        total_epochs: int,
        batches: int,
        should_stop: Callable[[], bool],
        stage: int = 1,
        log: Callable[[str], None] = print,
    ):
        super().__init__()
        self.run_dir, self.total_epochs, self.batches = run_dir, total_epochs, batches
        self.should_stop, self.stage, self.log = should_stop, stage, log
        self.hold_at_epoch = int(os.environ.get(HOLD_AT_EPOCH_ENV) or 0)

    def on_train_begin(self, logs=None):
        mark_phase(self.run_dir, TRAINING)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start, self.last_batch_log = epoch + 1, time.time(), 0.0

    def on_train_batch_end(self, batch, logs=None):
        while batch == 0 and self.epoch == self.hold_at_epoch and not self.should_stop():
            time.sleep(0.05)
        if self.should_stop():
            self.model.stop_training = True
        now = time.time()
        if now - self.last_batch_log < BATCH_LOG_INTERVAL_S and batch + 1 < self.batches:
            return
        self.last_batch_log = now
        record = {
            "epoch": self.epoch,
            "batch": batch + 1,
            "batches": self.batches,
            "time": now,
            "stage": self.stage,
            **_floats(logs),
        }
        append_jsonl(RunDir(self.run_dir).metrics_file, record)
        RunDir(self.run_dir).write_status(epoch=self.epoch, batch=batch + 1, batches=self.batches)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.time() - self.epoch_start
        record = {
            "epoch": epoch + 1,
            **_floats(logs),
            "seconds": round(seconds, 3),
            "time": time.time(),
            "stage": self.stage,
        }
        append_jsonl(RunDir(self.run_dir).metrics_file, record)
        RunDir(self.run_dir).write_status(epoch=epoch + 1, stage=self.stage)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in _floats(logs).items())
        stage = f" (stage {self.stage})" if self.stage > 1 else ""
        self.log(f"epoch {epoch + 1}/{self.total_epochs}{stage}  {shown}  ({seconds:.1f} s)")


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves `full_model` as best.keras when the monitored metric improves and as last.keras.

    `full_model` may differ from the model being fitted (a head trained on cached
    embeddings shares its layers), so the saved file is always the whole classifier.
    One instance spans both fine-tuning stages: stage 2 only replaces best.keras if it
    beats stage 1. With `every_s`, files are written at most that often (the first time
    at once) and at the end: an epoch on cached embeddings takes milliseconds, a save half
    a second. With `head_snapshots` (the base is frozen), the head's few weights are saved
    every epoch in between (last.head.npz, best.head.npz), so every epoch the run records
    has its weights on disk (`restore_head_snapshots` puts them back on resume).
    """

    def __init__(
        self,
        run_dir: Path,
        full_model: keras.Model,
        monitor: str,
        every_s: float = 0.0,
        head_snapshots: bool = False,
    ):
        super().__init__()
        self.run, self.full_model, self.monitor = RunDir(run_dir), full_model, monitor
        self.dir = self.run.checkpoints_dir
        self.higher_is_better = metric_rises(monitor)
        self.every_s, self.best, self.epoch = every_s, None, 0  # epoch: the last one ended
        self.saved_at = {"last": 0.0, "best": 0.0}
        self.pending_last, self.pending_best = False, None  # (weights, epoch) not on disk yet
        self.head_snapshots, self.previous_head = head_snapshots, None  # (epoch, head weights)

    def improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.higher_is_better else value < self.best

    def _due(self, which: str) -> bool:
        return time.time() - self.saved_at[which] >= self.every_s

    def on_epoch_end(self, epoch, logs=None):
        self.pending_last, self.epoch = True, epoch + 1
        value = (logs or {}).get(self.monitor)
        saved_best = False
        if value is not None and self.improves(float(value)):
            self.best = float(value)
            if self._due("best"):
                self._save_best(epoch + 1)
                saved_best = True
            else:
                self.pending_best = (self.full_model.get_weights(), epoch + 1)
        if self._due("last"):
            self._save_last(same_as_best=saved_best)
        if self.head_snapshots and self.every_s:  # before RunLogger records the epoch (list order)
            self._snapshot_head(epoch + 1)

    def _snapshot_head(self, epoch: int) -> None:
        """last.head.npz holds this epoch's and the previous one's head (a kill can fall between
        this save and the epoch's line in metrics.jsonl); best.head.npz a best not saved yet."""
        weights = head_weights(self.full_model)
        write_head_snapshot(self.dir / LAST_HEAD, [(epoch, weights), *filter(None, [self.previous_head])])
        self.previous_head = (epoch, weights)
        if self.pending_best and self.pending_best[1] == epoch:
            write_head_snapshot(self.dir / BEST_HEAD, [(epoch, weights)], value=self.best)

    def on_train_end(self, logs=None):
        # Runs before EarlyStopping restores the best weights (list order): last is the last.
        self._flush()
        for name in (LAST_HEAD, BEST_HEAD):  # the full files hold everything now
            (self.dir / name).unlink(missing_ok=True)
        self.previous_head = None

    def _flush(self) -> None:
        if self.pending_best and self.pending_best[1] == self.epoch:
            self._save_best(self.epoch)  # the last epoch was the best: one file, two names
            self._save_last(same_as_best=True)
            return
        if self.pending_last:
            self._save_last()
        if self.pending_best:
            current = self.full_model.get_weights()
            weights, epoch = self.pending_best
            self.full_model.set_weights(weights)
            self._save_best(epoch)
            self.full_model.set_weights(current)

    def _save_best(self, epoch: int) -> None:
        save_atomic(self.full_model, self.run.checkpoint("best"))
        write_json_atomic(
            self.run.best_record_file, {"epoch": epoch, "monitor": self.monitor, "value": self.best}
        )
        self.saved_at["best"], self.pending_best = time.time(), None

    def _save_last(self, same_as_best: bool = False) -> None:
        if same_as_best:  # saving a model takes ~0.3 s; a link takes nothing
            link_or_copy(self.run.checkpoint("best"), self.run.checkpoint("last"))
        else:
            save_atomic(self.full_model, self.run.checkpoint("last"))
        write_json_atomic(self.dir / "last.json", {"epoch": self.epoch})
        self.saved_at["last"], self.pending_last = time.time(), False


def restore_head_snapshots(run_dir: Path, model: keras.Model, epoch: int, monitor: str) -> int | None:
    """Bring a resumed run's checkpoints up to its record, from the head snapshots a
    throttled run left when it was killed: best.keras from best.head.npz when that is
    newer, and into `model` (loaded from last.keras) the head of `epoch`, the last
    recorded one. Returns the epoch whose weights `model` holds, None when unknown."""
    run = RunDir(run_dir)
    folder = run.checkpoints_dir
    best, extra = read_head_snapshot(folder / BEST_HEAD)
    best_epoch = max(best, default=0)
    if best_epoch > (run.best_record().get("epoch") or 0):
        current = head_weights(model)
        set_head_weights(model, best[best_epoch])
        save_atomic(model, run.checkpoint("best"))
        write_json_atomic(
            run.best_record_file, {"epoch": best_epoch, "monitor": monitor, "value": extra.get("value")}
        )
        set_head_weights(model, current)
    last, _ = read_head_snapshot(folder / LAST_HEAD)
    if epoch in last:
        set_head_weights(model, last[epoch])
        return epoch
    return (read_json(folder / "last.json") or {}).get("epoch")


def early_stopping(monitor: str, patience: int) -> list[keras.callbacks.Callback]:
    """EarlyStopping restoring the best weights, or nothing when patience is 0."""
    if not patience:
        return []
    mode = "max" if metric_rises(monitor) else "min"
    return [
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience, restore_best_weights=True
        )
    ]
