"""Resuming a stopped or interrupted run from its last checkpoint."""

import json
import os
import signal

import pytest

from core.launch import launch_resume
from core.progress_model import run_duration
from core.runs import RunDir, RunError
from tests.helpers import launch_tiny_run, run_cli, wait_for


def _epochs(run_dir):
    return [(e["epoch"], e.get("stage", 1)) for e in RunDir(run_dir).metrics()[0]]


@pytest.mark.parametrize("how", ["stop-file", "sigkill"])
def test_a_stopped_or_killed_run_resumes_to_completion(tmp_path, how):
    run_dir = launch_tiny_run(tmp_path, hold_at_epoch=3, head_training="live", epochs=8)
    wait_for(lambda: len(RunDir(run_dir).metrics()[0]) >= 2)  # then it waits inside epoch 3
    if how == "stop-file":
        RunDir(run_dir).request_stop()
    else:
        os.kill(RunDir(run_dir).status()["pid"], signal.SIGKILL)
    wait_for(lambda: RunDir(run_dir).status()["state"] in ("stopped", "interrupted"))
    done = 3 if how == "stop-file" else 2  # a stop ends epoch 3 early and records it; a kill loses it
    assert _epochs(run_dir) == [(e, 1) for e in range(1, done + 1)]
    result = run_cli("core.train", "--resume", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming after epoch {done}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    assert _epochs(run_dir) == [(e, 1) for e in range(1, 9)]  # continuous, no epoch twice
    status = RunDir(run_dir).status()
    assert status["state"] == "completed" and status["error"] is None
    assert not (run_dir / "STOP").exists()
    # Its duration counts the phases it ran, not the wait before the resume (a killed run's
    # open phase is closed at its last record, not when it was resumed).
    line = status["timeline"]
    restart = max(i for i, segment in enumerate(line) if segment["phase"] == "starting")
    assert restart > 0 and all(s["start"] <= s["end"] for s in line)
    gap = line[restart]["start"] - line[restart - 1]["end"]
    assert gap >= 0
    assert run_duration(status) == pytest.approx(line[-1]["end"] - line[0]["start"] - gap)


def test_resume_inside_stage_two_keeps_fine_tuning(tmp_path):
    run_dir = launch_tiny_run(
        tmp_path, hold_at_epoch=3, head_training="live", epochs=1, fine_tune_layers=5, fine_tune_epochs=10
    )
    wait_for(lambda: len(_epochs(run_dir)) >= 2)  # then it waits inside epoch 3, in stage 2
    RunDir(run_dir).request_stop()
    wait_for(lambda: RunDir(run_dir).status()["state"] == "stopped")
    assert _epochs(run_dir) == [(1, 1), (2, 2), (3, 2)]  # epoch 3 ended early by the stop
    launch_resume(run_dir)  # as the dashboard's Resume button does
    wait_for(lambda: RunDir(run_dir).status()["state"] == "completed")
    assert "resuming after epoch" in (run_dir / "train.log").read_text()
    assert _epochs(run_dir) == [(1, 1)] + [(e, 2) for e in range(2, 12)]
    assert RunDir(run_dir).status()["stage2_start_epoch"] == 2


def test_completed_runs_are_not_resumed(trained_run):
    result = run_cli("core.train", "--resume", str(trained_run))
    assert result.returncode == 2 and "can resume" in result.stderr
    with pytest.raises(RunError, match="can resume"):
        launch_resume(trained_run)
    assert json.loads((trained_run / "status.json").read_text())["state"] == "completed"
