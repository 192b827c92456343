"""Run folders: the files a training process writes and the dashboard reads.

    runs/20261128-231500-mobilenet_v2-224/
        config.json      the TrainConfig, written first
        labels.json      class names in index order
        metrics.jsonl    one JSON object per epoch, plus per-batch progress lines
        status.json      state, process id, progress, error
        checkpoints/     best.keras, last.keras (+ best.json: epoch and metric)
        dataset.json     the dataset's classes, counts per split and skipped files
        split/           the run's own train/validation split of an unsplit dataset
        evaluation.json  per split: confusion matrix, per-class metrics, curves, gallery
        evaluation/      thumbnails of misclassified and least-confident images
        exports/         verified export zips
        train.log        the training process's output, when launched by the dashboard
        STOP             created to ask the training process to stop

`RunDir` owns this layout: every other module asks it for a path or a file's contents.
Its readers are total: a file of the wrong shape (a status.json holding a string, a
config.json holding a list) makes the run *broken* — listed, with the reason, and
deletable — and never an exception in a page. Launching processes is `core.launch`.

No TensorFlow here: the dashboard watches runs without loading Keras.
"""

from __future__ import annotations

import json
import os
import shutil
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
BROKEN = "broken"  # a file of the run has the wrong shape: shown with the reason, deletable
ACTIVE_STATES = ("starting", RUNNING)
RESUMABLE_STATES = (STOPPED, INTERRUPTED, FAILED)
STOP_FILE = "STOP"
LOCK_FILE = ".training.lock"
CHECKPOINTS = ("best", "last")


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
    """The parsed file, or `default` when it is missing or not JSON (its shape is the caller's to check)."""
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


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RunDir:
    """One run folder: where each of its files lives, and total readers of them."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # --- the layout --------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.json")
    labels_file = property(lambda self: self.path / "labels.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    status_file = property(lambda self: self.path / "status.json")
    dataset_file = property(lambda self: self.path / "dataset.json")
    exclusions_file = property(lambda self: self.path / "exclusions.json")  # the Health tab's, at launch
    evaluation_file = property(lambda self: self.path / "evaluation.json")
    evaluation_dir = property(lambda self: self.path / "evaluation")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    best_record_file = property(lambda self: self.path / "checkpoints" / "best.json")
    split_dir = property(lambda self: self.path / "split")
    exports_dir = property(lambda self: self.path / "exports")
    train_log = property(lambda self: self.path / "train.log")
    stop_file = property(lambda self: self.path / STOP_FILE)

    def checkpoint(self, which: str = "best") -> Path:
        """checkpoints/best.keras or checkpoints/last.keras."""
        return self.checkpoints_dir / f"{which}.keras"

    def thumbnail(self, relative: str | None) -> Path | None:
        """The image file an evaluation record names relative to the run folder, or None when
        it is not named, missing, or (a hand-edited record) outside the run folder."""
        if not relative:
            return None
        path = (self.path / relative).resolve()
        return path if path.is_relative_to(self.path.resolve()) and path.is_file() else None

    # --- total readers -----------------------------------------------------------------------
    def config(self) -> dict:
        """config.json as a dict; {} when it is missing or not a JSON object (see `problem`)."""
        return _json_object(self.config_file)

    def dataset(self) -> dict:
        """dataset.json (classes, counts per split, skipped files); {} when missing or malformed."""
        return _json_object(self.dataset_file)

    def train_config(self) -> TrainConfig:
        """config.json as a TrainConfig. Raises RunError (one line) when it is missing or invalid."""
        from core.config import ConfigError

        if not self.config_file.is_file():
            raise RunError(f"{self.name} is not a run: it has no config.json")
        try:
            return TrainConfig.from_json(self.config_file.read_text(encoding="utf-8"))
        except (ConfigError, TypeError, ValueError, OSError) as exc:
            raise RunError(f"{self.name}: config.json is unusable: {exc}") from None

    def labels(self) -> list[str]:
        """labels.json: the class names in index order; [] when missing or not a list of names."""
        labels = read_json(self.labels_file, [])
        return labels if _is_name_list(labels) else []

    def status(self) -> dict:
        """status.json (never raises); an active run whose process died reads `interrupted`,
        a status.json that is not an object reads `broken`."""
        status = read_json(self.status_file, {})
        if not isinstance(status, dict):
            return {"state": BROKEN, "error": "status.json is not a JSON object"}
        if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
            status = {
                **status,
                "state": INTERRUPTED,
                "error": status.get("error") or "the training process ended unexpectedly",
            }
        return status

    def metrics(self) -> tuple[list[dict], list[dict]]:
        """(per-epoch records, per-batch records) from metrics.jsonl.

        A half-written last line is ignored, and so is any line that is not an object with a
        numeric `epoch`; values that are not numbers are dropped from a record.
        """
        epochs, batches = [], []
        try:
            lines = self.metrics_file.read_text(encoding="utf-8").splitlines()
        except OSError:
            return epochs, batches
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the writer is mid-line, or the process died there
            if not isinstance(record, dict) or not is_number(record.get("epoch")):
                continue
            record = {key: value for key, value in record.items() if is_number(value)}
            (batches if "batch" in record else epochs).append(record)
        return epochs, batches

    def best_record(self) -> dict:
        """checkpoints/best.json ({epoch, monitor, value}); {} when missing or malformed."""
        return _json_object(self.best_record_file)

    def problem(self) -> str | None:
        """Why this folder is a broken run (a file of the wrong shape), or None."""
        checks = (
            (self.config_file, dict, "a JSON object"),
            (self.status_file, dict, "a JSON object"),
            (self.labels_file, list, "a list of class names"),
        )
        for path, kind, expected in checks:
            if path.exists():
                value = read_json(path, _UNREADABLE)
                if not isinstance(value, kind) or (kind is list and not _is_name_list(value)):
                    return f"{path.name} is not {expected}"
        status = read_json(self.status_file, {})
        if not isinstance(status.get("state", ""), str):
            return "status.json: state is not a word"
        for key in ("started_at", "ended_at", "updated_at", "pid"):
            if status.get(key) is not None and not is_number(status[key]):
                return f"status.json: {key} is not a number"
        return None

    def dataset_root(self) -> Path:
        """The folder the run trained on: its own split/, else the dataset in config.json.

        Raises:
            RunError: config.json names no dataset.
        """
        if self.split_dir.is_dir():
            return self.split_dir
        data = self.config().get("data")
        if not data or not isinstance(data, str):
            raise RunError(f"{self.name}: config.json names no dataset")
        root = Path(data)
        if not root.is_absolute() and not root.is_dir():
            root = PROJ_ROOT / root  # the dashboard launches training from the project root
        return root

    def resume_refusal(self, states: tuple[str, ...] = RESUMABLE_STATES) -> str | None:
        """Why this run cannot resume, or None: the one rule for the CLI, launcher and pages."""
        problem = self.problem()
        if problem:
            return f"{self.name} is a broken run: {problem}"
        state = self.status().get("state")
        if state not in states:
            return f"only a stopped, interrupted or failed run can resume ({self.name}: {state})"
        mode = self.config().get("mode")
        if mode in ("features", "auto"):
            return f"a {mode}-mode run has nothing to resume: train it again"
        if not self.checkpoint("last").is_file() and self.metrics()[0]:  # none recorded: it starts over
            return f"{self.name} recorded epochs but saved no checkpoint, so it cannot resume"
        return None

    # --- writers -----------------------------------------------------------------------------
    def write_status(self, **fields: Any) -> dict:
        """Merge `fields` into status.json and stamp it (a malformed one is replaced)."""
        status = _json_object(self.status_file)
        status.update(fields, updated_at=time.time())
        write_json_atomic(self.status_file, status)
        return status

    def request_stop(self) -> None:
        """Ask the training process to stop after its current batch."""
        self.stop_file.touch()

    def summary(self) -> RunSummary:
        """One line of the runs table; a broken run says why instead of raising."""
        problem = self.problem()
        config, status = self.config(), self.status()
        epochs, _ = self.metrics()
        accuracies = [e["val_accuracy"] for e in epochs if "val_accuracy" in e]
        started = status.get("started_at") if is_number(status.get("started_at")) else None
        data = config.get("data")
        return RunSummary(
            path=self.path,
            name=self.name,
            state=BROKEN if problem else str(status.get("state", "unknown")),
            backbone=str(config.get("backbone", "?")),
            mode=str(config.get("mode", "finetune")),
            dataset=dataset_name(data) if data and isinstance(data, str) else "?",
            started_at=started,
            duration_s=None if problem else run_duration(status, time.time()),
            epochs_done=len(epochs),
            best_val_accuracy=max(accuracies) if accuracies else None,
            classes=self.labels(),
            error=problem or (status.get("error") if isinstance(status.get("error"), str) else None),
        )


_UNREADABLE = object()


def _json_object(path: Path) -> dict:
    value = read_json(path, {})
    return value if isinstance(value, dict) else {}


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


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
    error: str | None = None


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


def pid_alive(pid: Any) -> bool:
    """True while `pid` is a live (not zombie) process."""
    if not is_number(pid) or pid <= 0 or pid != int(pid):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return isinstance(pid, int) and pid < 2**31
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): the signal test is all we have


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run under `runs_dir`, newest first (broken ones too, with the reason)."""
    if not Path(runs_dir).is_dir():
        return []
    dirs = [p for p in Path(runs_dir).iterdir() if RunDir(p).config_file.is_file()]
    return [RunDir(p).summary() for p in sorted(dirs, key=lambda p: p.name, reverse=True)]


def active_run(runs_dir: Path) -> Path | None:
    """The run that is training now, if any: the one answer to "is a run active?" for the pages'
    Start buttons and live views and for the launcher's refusal.

    A run is active while its status.json says starting or running and its process lives. The
    training process releases its lock before it writes a final state (`core.train.end_run`), so
    once no run reads active a new training can take the lock: the two never disagree.
    """
    if not Path(runs_dir).is_dir():
        return None
    dirs = [p for p in Path(runs_dir).iterdir() if RunDir(p).config_file.is_file()]
    for path in sorted(dirs, key=lambda p: p.name, reverse=True):
        if RunDir(path).status().get("state") in ACTIVE_STATES:
            return path
    return None


def watched_run(runs_dir: Path, running: Path | None, mine: str | None) -> Path | None:
    """The run a Train page shows: the `running` one, else the one this session started (`mine`),
    else the newest."""
    if running:
        return running
    if mine and RunDir(mine).config_file.is_file():
        return Path(mine)
    runs = list_runs(runs_dir)
    return runs[0].path if runs else None


def delete_run(run_dir: Path) -> None:
    """Delete a run folder unless it is still training. (Whether deleting is allowed at all,
    e.g. in the demo, is the caller's rule.)"""
    if RunDir(run_dir).status().get("state") in ACTIVE_STATES:
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
