"""Starting the processes that do heavy work, so TensorFlow stays out of the caller.

Training and resuming run in the background (`python -m core.train`, writing a run folder
that the dashboard watches); evaluation and export run to completion
(`python -m core.evaluate` / `core.export`) and answer one line, or a RunError.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.config import PROJ_ROOT, TrainConfig
from core.exclusions import load_exclusions, write_decisions
from core.runs import RunDir, RunError, active_run, new_run_dir, write_json_atomic


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
