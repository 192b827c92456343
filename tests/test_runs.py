"""Run folders: atomic files, the metrics reader, status states, the training lock."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.runs import (
    INTERRUPTED,
    RunDir,
    RunError,
    TrainingLock,
    active_run,
    append_jsonl,
    list_runs,
    new_run_dir,
    watched_run,
    write_json_atomic,
)


def test_metrics_reader_tolerates_a_half_written_last_line(tmp_path):
    append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1, "batch": 3, "batches": 10, "loss": 0.9})
    append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1, "loss": 0.5, "val_accuracy": 0.8})
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "loss": 0.')  # the writer died mid-line
    epochs, batches = RunDir(tmp_path).metrics()
    assert epochs == [{"epoch": 1, "loss": 0.5, "val_accuracy": 0.8}]
    assert batches == [{"epoch": 1, "batch": 3, "batches": 10, "loss": 0.9}]


def test_metrics_reader_on_a_missing_file(tmp_path):
    assert RunDir(tmp_path).metrics() == ([], [])


def test_atomic_json_leaves_no_temp_file(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_status_merges_fields(tmp_path):
    RunDir(tmp_path).write_status(state="running", pid=os.getpid(), epoch=1)
    status = RunDir(tmp_path).write_status(epoch=2)
    assert (status["state"], status["epoch"], status["pid"]) == ("running", 2, os.getpid())


def test_running_status_of_a_dead_process_reads_as_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    RunDir(tmp_path).write_status(state="running", pid=dead.pid)
    status = RunDir(tmp_path).status()
    assert status["state"] == INTERRUPTED and "ended unexpectedly" in status["error"]
    RunDir(tmp_path).write_status(pid=os.getpid())
    assert RunDir(tmp_path).status()["state"] == "running"


def test_run_dirs_are_unique_and_listed_newest_first(tmp_path):
    config = TrainConfig(data="d", backbone="vgg16", image_size=64)
    first, second = new_run_dir(tmp_path, config), new_run_dir(tmp_path, config)
    assert first != second and first.name.endswith("-vgg16-64")
    for run in (first, second):
        write_json_atomic(run / "config.json", config.to_dict())
        RunDir(run).write_status(state="completed")
    append_jsonl(second / "metrics.jsonl", {"epoch": 1, "val_accuracy": 0.75})
    runs = list_runs(tmp_path)
    assert [r.path for r in runs] == [second, first]
    assert runs[0].best_val_accuracy == 0.75 and runs[0].epochs_done == 1
    assert runs[1].best_val_accuracy is None


def test_unwritable_runs_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunError, match="cannot create a run in"):
        new_run_dir(blocker / "runs", TrainConfig(data="d"))


def test_training_lock_is_exclusive_and_names_its_holder(tmp_path):
    held = TrainingLock(tmp_path)
    held.acquire()
    held.name_holder(tmp_path / "run-a")
    code = (
        "import sys; from core.runs import TrainingLock, RunError\n"
        f"try: TrainingLock({str(tmp_path)!r}).acquire()\n"
        "except RunError as e: print(e); sys.exit(3)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode == 3 and "run-a" in other.stdout
    held.release()
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode == 0, other.stdout


def test_lock_is_released_when_its_process_dies(tmp_path):
    code = (
        f"from core.runs import TrainingLock; TrainingLock({str(tmp_path)!r}).acquire(); "
        "import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    TrainingLock(tmp_path).acquire()  # would raise if the dead process still held it


def _run(runs, name: str, **status) -> Path:
    run = runs / name
    run.mkdir(parents=True)
    write_json_atomic(run / "config.json", {"data": "d"})
    RunDir(run).write_status(**status)
    return run


def test_active_run_is_the_one_whose_status_says_training_and_whose_process_lives(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert active_run(tmp_path / "none") is None
    _run(tmp_path, "20260101-000003-crashed", state="running", pid=dead.pid)  # reads interrupted
    # Completed while its process still lives (it is exiting): done, a new training may start.
    _run(tmp_path, "20260101-000002-exiting", state="completed", pid=os.getpid())
    assert active_run(tmp_path) is None
    training = _run(tmp_path, "20260101-000001-training", state="running", pid=os.getpid())
    assert active_run(tmp_path) == training


def test_the_train_page_watches_the_active_run_else_its_own_else_the_newest(tmp_path):
    old, new = _run(tmp_path, "20260101-000001-a", state="completed"), _run(tmp_path, "20260101-000002-b")
    assert watched_run(tmp_path, None, None) == new
    assert watched_run(tmp_path, None, str(old)) == old
    assert watched_run(tmp_path, new, str(old)) == new
    assert watched_run(tmp_path, None, str(tmp_path / "deleted")) == new
    assert watched_run(tmp_path / "empty", None, None) is None


def test_cli_reports_an_unusable_runs_folder_in_one_line(tmp_path, color_dataset):
    from tests.helpers import run_cli

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("core.train", "--data", str(color_dataset), "--runs-dir", str(blocker / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot create a run in")


def test_a_full_disk_is_a_clear_error_not_a_traceback(tmp_path, color_dataset, monkeypatch, capsys):
    import errno
    from pathlib import Path

    from core.train import main as train_main

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", no_space)
    code = train_main(["--data", str(color_dataset), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip().splitlines()[-1]
        == f"error: cannot create a run in {tmp_path / 'runs'}: No space left on device"
    )
