"""Hostile zips and broken run files: one clear message each, nothing left behind, no crash."""

import json
import resource
import shutil
import signal
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core.config
from core.predict import RunNotReadyError, load_classifier
from core.runs import RunDir
from core.uploads import UploadError, extract_dataset_upload
from tests.dashboard_helpers import class_zip_entries, make_zip, png_bytes
from tests.helpers import run_cli

PROJ_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "entries, message",
    [
        (
            {**class_zip_entries(), "horses/x": b"a file", "horses/x/y.png": png_bytes((1, 2, 3))},
            "a file and a folder",
        ),
        (
            {**class_zip_entries(), "horses/" + "n" * 300 + ".png": png_bytes((1, 2, 3))},
            "longer than 255 bytes",
        ),
        (
            {**class_zip_entries(), "/".join(["d"] * 3000) + "/a.png": png_bytes((1, 2, 3))},
            "more than 32 deep",
        ),
    ],
    ids=["file-and-folder", "300-char-name", "3000-deep"],
)
def test_bad_zips_are_refused_with_a_reason_and_leave_nothing(tmp_path, entries, message):
    archive = make_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(UploadError, match=message):
        extract_dataset_upload(archive, tmp_path / "uploads", "bad.zip")
    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_full_disk_during_an_upload_leaves_nothing(tmp_path):
    archive = make_zip(tmp_path / "big.zip", {**class_zip_entries(), "horses/big.png": bytes(300_000)})
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limits[1]))  # as a full disk: writes stop
    try:
        with pytest.raises(UploadError, match="cannot be unpacked here"):
            extract_dataset_upload(archive, tmp_path / "uploads", "big.zip")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert list((tmp_path / "uploads").iterdir()) == []


def test_the_upload_page_shows_a_bad_zip_as_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(core.config, "DATA_ROOT", tmp_path / "data")
    entries = {**class_zip_entries(), "horses/x": b"a file", "horses/x/y.png": png_bytes((1, 2, 3))}
    archive = make_zip(tmp_path / "clash.zip", entries)
    at = AppTest.from_file(str(PROJ_ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/data.py").run()
    at.radio(key="source").set_value("Upload a zip").run()
    at.file_uploader[0].set_value(("clash.zip", archive.read_bytes(), "application/zip")).run()
    assert not at.exception
    assert "a file and a folder" in "\n".join(e.value for e in at.error)


def _broken_copy(trained_run: Path, tmp_path: Path, breakage: str) -> Path:
    run = Path(shutil.copytree(trained_run, tmp_path / trained_run.name))
    if breakage == "empty-checkpoint":
        (run / "checkpoints" / "best.keras").write_bytes(b"")
    elif breakage == "image-size-text":
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "image_size": "big"}))
    elif breakage == "labels-object":
        (run / "labels.json").write_text('{"a": 1}')
    elif breakage == "labels-too-many":
        (run / "labels.json").write_text('["a", "b", "c"]')
    return run


@pytest.mark.parametrize(
    "breakage", ["empty-checkpoint", "image-size-text", "labels-object", "labels-too-many"]
)
def test_a_broken_run_file_is_one_clear_error(trained_run, tmp_path, breakage):
    run = _broken_copy(trained_run, tmp_path, breakage)
    with pytest.raises(RunNotReadyError, match=run.name):
        load_classifier(run)


def test_predict_on_an_empty_checkpoint_is_one_error_line_and_exit_2(trained_run, tmp_path):
    run = _broken_copy(trained_run, tmp_path, "empty-checkpoint")
    photo = tmp_path / "p.png"
    photo.write_bytes(png_bytes((200, 30, 30)))
    result = run_cli("core.predict", "--run", str(run), str(photo))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot load")


def test_zip_entries_are_checked_before_anything_is_written(tmp_path):
    archive = tmp_path / "order.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # the bad entry comes last
        for name, data in class_zip_entries().items():
            zf.writestr(name, data)
        zf.writestr("humans/" + "n" * 300, b"x")
    with pytest.raises(UploadError):
        extract_dataset_upload(archive, tmp_path / "uploads", "order.zip")
    assert not list((tmp_path / "uploads").rglob("*.png"))


def test_the_loser_of_a_launch_race_says_why_on_its_status(tmp_path, color_dataset):
    from core.config import TrainConfig
    from core.runs import TrainingLock

    run_dir = tmp_path / "runs" / "loser"
    run_dir.mkdir(parents=True)
    config = TrainConfig(data=str(color_dataset), backbone="mobilenet_v2_0.35", weights=None, image_size=32)
    (run_dir / "config.json").write_text(config.to_json())
    RunDir(run_dir).write_status(state="starting", pid=12345678)  # as the dashboard leaves it
    winner = TrainingLock(tmp_path / "runs")
    winner.acquire()
    winner.name_holder("the-winner")
    try:
        args = ("--config", str(run_dir / "config.json"), "--run-dir", str(run_dir))
        result = run_cli("core.train", *args)
    finally:
        winner.release()
    assert result.returncode == 2
    status = RunDir(run_dir).status()
    assert status["state"] == "failed" and status["error"] == "another training is running: the-winner"
