"""`python -m core.train` and `python -m core.predict`: the contract the dashboard relies on."""

import json
import os
import signal
from pathlib import Path

import pytest

from core.auto import HEAD_STEPS
from core.config import TrainConfig
from core.runs import RunDir, TrainingLock
from core.stages import head_steps_per_epoch
from tests.helpers import (
    launch_tiny_run,
    make_color_dataset,
    run_cli,
    unreachable_network_env,
    wait_for,
    write_image,
)


def _assert_one_line_error(result, message):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/dir"], "dataset folder not found"),
        (["--learning-rate", "-1"], "learning_rate: must be in (0, 1]"),
        (["--image-size", "4"], "image_size: must be between 32"),
        (["--config", "/no/such.json"], "cannot read config"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, color_dataset, args, message):
    base = ["--data", str(color_dataset), "--runs-dir", str(tmp_path / "runs")]
    _assert_one_line_error(run_cli("core.train", *base, *args), message)


def test_single_class_dataset_is_refused(tmp_path):
    data = make_color_dataset(tmp_path / "d", classes={"cats": (1, 2, 3)})
    result = run_cli("core.train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"))
    _assert_one_line_error(result, "a dataset needs at least 2 class folders")
    status = RunDir(next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())).status()
    assert status["state"] == "failed" and "2 class folders" in status["error"]


def test_a_second_training_is_refused_while_one_holds_the_lock(tmp_path, color_dataset):
    lock = TrainingLock(tmp_path / "runs")
    lock.acquire()
    lock.name_holder("runs/the-running-one")
    result = run_cli("core.train", "--data", str(color_dataset), "--runs-dir", str(tmp_path / "runs"))
    lock.release()
    _assert_one_line_error(result, "another training is running: runs/the-running-one")


def test_a_run_says_it_is_over_only_once_its_lock_is_released(tmp_path, monkeypatch):
    """The page enables Start when no status reads active: the lock must be free by then, or the
    next training is refused by it."""
    import core.train
    from core.runs import RunError

    def lock_free() -> bool:
        try:
            probe = TrainingLock(tmp_path / "runs")
            probe.acquire()
        except RunError:
            return False
        probe.release()
        return True

    written = RunDir.write_status
    finals = []

    def spy(run, **fields):
        if fields.get("state") in ("completed", "stopped", "failed"):
            finals.append((fields["state"], lock_free()))
        return written(run, **fields)

    monkeypatch.setattr(RunDir, "write_status", spy)
    data = make_color_dataset(tmp_path / "d", classes={"cats": (1, 2, 3)})  # refused after the lock
    assert core.train.main(["--data", str(data), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert finals == [("failed", True)]


def test_missing_weights_name_the_file_keras_expects(tmp_path, color_dataset):
    result = run_cli(
        "core.train",
        "--data",
        str(color_dataset),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--backbone",
        "mobilenet_v2_0.35",
        "--image-size",
        "96",
        env=unreachable_network_env(tmp_path),
    )
    _assert_one_line_error(result, "Could not download the ImageNet weights for mobilenet_v2_0.35")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in result.stderr
    assert str(tmp_path / "empty-keras-home" / "models") in result.stderr


def test_completed_run_directory_contract(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "labels.json", "metrics.jsonl", "status.json", "checkpoints"} <= names
    assert {p.name for p in (trained_run / "checkpoints").iterdir()} >= {
        "best.keras",
        "last.keras",
        "best.json",
    }
    assert json.loads((trained_run / "labels.json").read_text()) == ["blue", "red"]
    config = TrainConfig.from_json((trained_run / "config.json").read_text())
    assert (config.backbone, config.image_size, config.epochs) == ("mobilenet_v2_0.35", 32, 2)
    epochs, batches = RunDir(trained_run).metrics()
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all({"loss", "accuracy", "val_loss", "val_accuracy"} <= set(e) for e in epochs)
    # 16 train images / batch 8 = 2 batches, repeated so that the cached head takes HEAD_STEPS in all
    steps = head_steps_per_epoch(16, 8, 2)
    assert steps * 2 >= HEAD_STEPS and batches and all(b["batches"] == steps for b in batches)
    status = RunDir(trained_run).status()
    assert status["state"] == "completed" and status["epoch"] == 2
    best = json.loads((trained_run / "checkpoints" / "best.json").read_text())
    assert best["monitor"] == "val_accuracy" and best["epoch"] in (1, 2)
    assert not [p for p in (trained_run / "checkpoints").iterdir() if "tmp" in p.name]
    evaluation = json.loads((trained_run / "evaluation.json").read_text())  # evaluated on completion
    assert evaluation["validation"]["num_images"] == 4


def test_predict_cli_prints_one_json_line_per_image(trained_run, tmp_path):
    red = write_image(tmp_path / "red.jpg", (220, 40, 40))
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    result = run_cli("core.predict", "--run", str(trained_run), str(red), str(broken), str(red))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["file"] for line in lines] == [str(red), str(broken), str(red)]
    assert set(lines[0]["probabilities"]) == {"blue", "red"}
    assert sum(lines[0]["probabilities"].values()) == pytest.approx(1.0)
    assert lines[0]["label"] == max(lines[0]["probabilities"], key=lines[0]["probabilities"].get)
    assert "error" in lines[1] and "label" not in lines[1]
    assert lines[2]["probabilities"] == pytest.approx(lines[0]["probabilities"])


def test_predict_cli_on_a_run_without_checkpoint(tmp_path):
    result = run_cli("core.predict", "--run", str(tmp_path), "x.jpg")
    assert result.returncode == 2 and "not a finished run" in result.stderr


def test_checkpoint_save_is_atomic(tmp_path):
    from core.callbacks import save_atomic

    target = tmp_path / "best.keras"
    target.write_bytes(b"the previous good checkpoint")

    class CrashingModel:
        def save(self, path):
            Path(path).write_bytes(b"half a chec")
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_atomic(CrashingModel(), target)
    assert target.read_bytes() == b"the previous good checkpoint"


@pytest.mark.parametrize("how", ["stop-file", "sigterm", "sigkill"])
def test_stopping_a_launched_run(tmp_path, how):
    run_dir = launch_tiny_run(tmp_path, hold_at_epoch=2, epochs=200)
    wait_for(
        lambda: len(RunDir(run_dir).metrics()[0]) >= 1
    )  # epoch 1 done (checkpoints exist), then it waits
    pid = RunDir(run_dir).status()["pid"]
    if how == "stop-file":
        RunDir(run_dir).request_stop()
    else:
        os.kill(pid, signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    expected = "interrupted" if how == "sigkill" else "stopped"
    status = wait_for(lambda: (s := RunDir(run_dir).status())["state"] == expected and s)
    assert len(RunDir(run_dir).metrics()[0]) == (1 if how == "sigkill" else 2)  # a stop records epoch 2 early
    assert (run_dir / "checkpoints" / "best.keras").is_file()
    if how != "sigkill":
        assert status["ended_at"] >= status["started_at"]
