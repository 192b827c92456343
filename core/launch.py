"""Starting the processes that do heavy work, so TensorFlow stays out of the caller.

Training and resuming run in the background (`python -m core.train`, writing a run folder
that the dashboard watches), and so do an export (`python -m core.export`, followed through
`export_job`: it takes minutes, and a page that waited for it could not answer meanwhile) and
the Grad-CAM overlays a training left for later (`python -m core.evaluate --overlays`,
followed through `overlays_job`); evaluation and health checks run to completion and answer
one line, or a RunError.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import PROJ_ROOT, TrainConfig
from core.exclusions import load_exclusions, write_decisions
from core.export import export_name
from core.runs import (
    RunDir,
    RunError,
    active_run,
    is_number,
    new_run_dir,
    pid_alive,
    read_json,
    write_json_atomic,
)


def launch_training(config: TrainConfig, runs_dir: Path, data_root: Path | None = None) -> Path:
    """Start `python -m core.train` for `config` in the background; return its run folder.

    The Health tab's decisions about the dataset, kept under `data_root` (a demo visitor's own
    workspace, or the project's data folder), go into the run folder for the run to apply.

    Raises:
        RunError: another run is still training (naming it), or the folder is unwritable.
    """
    _refuse_if_training(runs_dir)
    run = RunDir(new_run_dir(runs_dir, config))
    write_json_atomic(run.config_file, config.to_dict())
    decisions = load_exclusions(config.data, data_root)
    if decisions:
        write_decisions(run.exclusions_file, config.data, decisions)
    # Counted as active from now on (this process's pid) until the child takes over.
    run.write_status(state="starting", pid=os.getpid(), started_at=time.time())
    _spawn(run, ["--config", str(run.config_file), "--run-dir", str(run.path)], "w")
    return run.path


def launch_resume(run_dir: Path) -> None:
    """Resume a stopped or interrupted run in the background (`python -m core.train --resume`)."""
    _refuse_if_training(Path(run_dir).parent)
    run = RunDir(run_dir)
    refusal = run.resume_refusal()
    if refusal:
        raise RunError(refusal)
    # Active from now on, so the pages follow it and refuse a second start meanwhile.
    run.write_status(state="starting", pid=os.getpid(), error=None)
    _spawn(run, ["--resume", str(run.path)], "a")


def run_evaluation(run_dir: Path, split: str, timeout_s: float = 900) -> str:
    """Evaluate a run on `split` in a `python -m core.evaluate` process (TensorFlow stays out
    of the caller); return its summary line, or raise RunError with its one-line error."""
    lines = _run_module("core.evaluate", ["--run", str(run_dir), "--split", split], timeout_s, "evaluation")
    return (lines or [split])[0]


@dataclass(frozen=True)
class BackgroundJob:
    """The latest run of one background command: an export, or a split's Grad-CAM overlays."""

    running: bool
    started_at: float
    error: str | None  # why it failed, in one line; None while it runs and once it worked

    @property
    def elapsed(self) -> float:
        """Seconds since it started."""
        return time.time() - self.started_at


def start_export(run_dir: Path, fmt: str, quantize: str | None = None) -> None:
    """Export and verify a run's best checkpoint in a background `python -m core.export`;
    `export_job` says how it is going, `core.export.published_export` what it wrote.

    Raises:
        RunError: this export is already running, or could not start.
    """
    args = ["--run", str(run_dir), "--format", fmt, *(["--quantize", quantize] if quantize else [])]
    _start_job("core.export", args, _export_job_files(run_dir, fmt, quantize), "export")


def export_job(run_dir: Path, fmt: str, quantize: str | None = None) -> BackgroundJob | None:
    """The latest export of this format started by `start_export`, or None if there was none."""
    worked = functools.partial(_published_since, run_dir, fmt, quantize)
    return _read_job(_export_job_files(run_dir, fmt, quantize), worked, "export")


OVERLAYS_JOB = "drawing of the Grad-CAM overlays"


def start_overlays(run_dir: Path, split: str) -> None:
    """Draw the Grad-CAM overlays a split's evaluation left for later, in a background
    `python -m core.evaluate --overlays`; `overlays_job` says how it is going.

    Raises:
        RunError: they are already being drawn, or the command could not start.
    """
    args = ["--run", str(run_dir), "--split", split, "--overlays"]
    _start_job("core.evaluate", args, _overlays_job_files(run_dir, split), OVERLAYS_JOB)


def overlays_job(run_dir: Path, split: str) -> BackgroundJob | None:
    """The latest `start_overlays` of this split, or None if there was none."""

    def drawn_since(started_at: float) -> bool:
        evaluation = read_json(RunDir(run_dir).evaluation_file)
        result = evaluation.get(split) if isinstance(evaluation, dict) else None
        return isinstance(result, dict) and result.get("overlays_pending") is False

    return _read_job(_overlays_job_files(run_dir, split), drawn_since, OVERLAYS_JOB)


def _overlays_job_files(run_dir: Path, split: str) -> tuple[Path, Path]:
    folder = RunDir(run_dir).evaluation_dir
    return folder / f".{split}-overlays.job.json", folder / f".{split}-overlays.log"


def _start_job(module: str, args: list[str], files: tuple[Path, Path], what: str) -> None:
    """`python -m module args` in the background, its pid, start and (once reaped) exit status
    in a record file, its stderr in a log: what `_read_job` reads."""
    record_file, log_file = files
    job = _read_job(files, lambda started_at: False, what)
    if job and job.running:
        raise RunError(f"the {what} is already running")
    record_file.parent.mkdir(parents=True, exist_ok=True)
    started_at = time.time()
    try:
        with open(log_file, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=PROJ_ROOT,
                stdout=subprocess.DEVNULL,  # the result is read from the run folder
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    except OSError as exc:
        raise RunError(f"the {what} could not start: {exc.strerror}") from None
    record = {"pid": process.pid, "started_at": started_at}
    write_json_atomic(record_file, record)

    def reap() -> None:  # no zombie in the dashboard, and the exit status for _read_job
        write_json_atomic(record_file, {**record, "returncode": process.wait()})

    threading.Thread(target=reap, daemon=True).start()


def _read_job(files: tuple[Path, Path], worked_since, what: str) -> BackgroundJob | None:
    """The job `_start_job` recorded in `files`, or None. `worked_since(started_at)` tells from
    its result whether it worked when no exit status was recorded (the dashboard restarted)."""
    record_file, log_file = files
    record = read_json(record_file)
    if not isinstance(record, dict) or not is_number(record.get("started_at")):
        return None
    started_at, returncode = record["started_at"], record.get("returncode")
    if returncode is None and pid_alive(record.get("pid")):
        return BackgroundJob(running=True, started_at=started_at, error=None)
    if returncode == 0 or (returncode is None and worked_since(started_at)):
        return BackgroundJob(running=False, started_at=started_at, error=None)
    errors = [line for line in _read_text(log_file).splitlines() if line.strip()]
    error = errors[-1].removeprefix("error: ") if errors else f"the {what} stopped before it finished"
    return BackgroundJob(running=False, started_at=started_at, error=error)


def _export_job_files(run_dir: Path, fmt: str, quantize: str | None) -> tuple[Path, Path]:
    """The job's record (pid, start, exit status) and its stderr, hidden in the exports folder."""
    name = export_name(run_dir, fmt, quantize)
    exports = RunDir(run_dir).exports_dir
    return exports / f".{name}.job.json", exports / f".{name}.log"


def _published_since(run_dir: Path, fmt: str, quantize: str | None, started_at: float) -> bool:
    """Whether this export's zip was written since `started_at`: it worked, although the exit
    status is not recorded yet (or never will be: the dashboard restarted meanwhile)."""
    zip_path = RunDir(run_dir).exports_dir / f"{export_name(run_dir, fmt, quantize)}.zip"
    try:
        return zip_path.stat().st_mtime >= started_at
    except OSError:
        return False


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


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


def _spawn(run: RunDir, args: list[str], log_mode: str) -> None:
    with open(run.train_log, log_mode) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.train", *args],
            cwd=PROJ_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    if run.status().get("state") == "starting":
        run.write_status(pid=process.pid)  # the child imports TF for seconds before writing
    # Reap the child when it exits so it never lingers as a zombie in the dashboard.
    threading.Thread(target=process.wait, daemon=True).start()
