"""Nothing finished is lost: every epoch in metrics.jsonl has its weights on disk, resume
continues from the last recorded epoch, and a failed write leaves the last good checkpoint."""

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.callbacks import AtomicCheckpoint, save_atomic
from core.runs import RunDir
from tests.helpers import PROJ_ROOT, launch_tiny_run, make_color_dataset, run_cli, wait_for


def _leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.rglob("*") if ".tmp" in p.name or p.name.startswith(".split"))


def test_a_killed_cached_run_resumes_from_the_weights_of_its_last_recorded_epoch(tmp_path):
    """Cached head training saves the full model at most every 10 s; killed a few epochs in,
    the model resume starts from must be the one that produced the last recorded val_loss."""
    from core.config import TrainConfig
    from core.data import scan_dataset
    from core.pipeline import make_dataset
    from core.train import _resume_point

    run_dir = launch_tiny_run(tmp_path, hold_at_epoch=7, head_training="cached", epochs=60)  # waits in 7
    pid = wait_for(
        lambda: RunDir(run_dir).status().get("state") == "running" and RunDir(run_dir).status()["pid"]
    )
    deadline = time.time() + 300
    while len(RunDir(run_dir).metrics()[0]) < 6 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: RunDir(run_dir).status()["state"] == "interrupted")
    epochs = RunDir(run_dir).metrics()[0]
    assert len(epochs) == 6
    assert _leftovers(run_dir / "checkpoints") == []

    config = TrainConfig.from_json((run_dir / "config.json").read_text())
    model, done, _, _ = _resume_point(run_dir, config, log=lambda line: None)
    assert done == len(epochs)
    split = scan_dataset(run_dir / "split", validate=False).splits["validation"]
    loss = model.evaluate(make_dataset(split, 32, 8, 2, training=False), verbose=0)[0]
    assert loss == pytest.approx(epochs[-1]["val_loss"], rel=1e-4, abs=1e-5)

    result = run_cli("core.train", "--resume", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming after epoch {done} from the weights of epoch {done}" in result.stdout
    assert [e["epoch"] for e in RunDir(run_dir).metrics()[0]] == list(range(1, 61))  # nothing rewritten
    assert RunDir(run_dir).status()["state"] == "completed"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best.json", "best.keras", "last.json", "last.keras",
    ]  # fmt: skip


class DiskFullModel:
    """Writes half a file, then fails as a full disk does."""

    def save(self, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_failed_save_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.keras"
    last.write_text("epoch 3")
    with pytest.raises(OSError, match="No space"):
        save_atomic(DiskFullModel(), last)
    assert last.read_text() == "epoch 3"
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.keras"]
    checkpoint = AtomicCheckpoint(tmp_path, DiskFullModel(), "val_accuracy")
    with pytest.raises(OSError):
        checkpoint.on_epoch_end(3, {"val_accuracy": 0.9})
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.keras"]


def _limit_file_size():  # in the child: files above 200 KB fail to write, as on a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_a_run_that_cannot_write_its_checkpoint_fails_with_the_reason_and_no_temp_file(tmp_path):
    data = make_color_dataset(tmp_path / "d", per_class=6)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "core.train", "--data", str(data), "--run-dir", str(run_dir),
               "--backbone", "mobilenet_v2_0.35", "--weights", "none", "--image-size", "32",
               "--epochs", "2", "--mode", "finetune", "--head-training", "live", "--no-evaluate"]  # fmt: skip
    result = subprocess.run(
        command, cwd=PROJ_ROOT, capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "File too large" in errors[0] and "Traceback" not in result.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "\n" not in status["error"] and "File too large" in status["error"]
    assert _leftovers(run_dir) == [] and not (run_dir / "checkpoints" / "last.keras").exists()
    result = run_cli("core.train", "--resume", str(run_dir))  # space freed: it trains from the start
    assert result.returncode == 0, result.stderr[-2000:]
    assert [e["epoch"] for e in RunDir(run_dir).metrics()[0]] == [1, 2]
    assert RunDir(run_dir).status()["state"] == "completed"


def test_a_split_interrupted_midway_leaves_no_half_split_and_is_redone(tmp_path, color_dataset, monkeypatch):
    import splitfolders

    from core.config import TrainConfig
    from core.train import prepare_data

    config = TrainConfig(data=str(color_dataset), backbone="mobilenet_v2_0.35", image_size=32)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ratio = splitfolders.ratio

    def killed_midway(stage, output, **kwargs):
        (Path(output) / "train" / "red").mkdir(parents=True)  # half the work, then the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(splitfolders, "ratio", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(config, run_dir, log=lambda line: None)
    assert not (run_dir / "split").exists()
    monkeypatch.setattr(splitfolders, "ratio", ratio)
    report = prepare_data(config, run_dir, log=lambda line: None)  # as the resumed process does
    assert sum(len(s.paths) for s in report.splits.values()) == 16
    assert sorted(p.name for p in run_dir.iterdir()) == ["dataset.json", "split"]
