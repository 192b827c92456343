"""AppTest tests of the dashboard: every page renders, and each page's widgets do their job.

Paths: core.config.DATA_ROOT / RUNS_DIR and core.embeddings.CACHE_DIR are patched to temp
folders (pages read them at run time), and TLS_DATA_ROOT / TLS_RUNS_DIR / TLS_CACHE_DIR are
set for any process they start.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import core.advisor
import core.config
import core.embeddings
import core.gradcam
from core.backbones import WeightsUnavailableError
from core.config import PRESETS, SAMPLE_DATASET, TrainConfig, head_training_path
from core.reports import format_bytes
from tests.dashboard_helpers import class_zip_entries, free_port, make_zip, png_bytes, serve_directory
from tests.helpers import make_color_dataset, write_image

PROJ_ROOT = Path(__file__).resolve().parents[1]
APP = str(PROJ_ROOT / "streamlit_app.py")
PAGES = ["pages/home.py", "pages/data.py", "pages/train.py", "pages/checkpoints.py", "pages/predict.py"]
FOLDER = "A folder in the data folder"
UPLOAD = "Upload a zip"


@pytest.fixture
def dirs(tmp_path, monkeypatch, keras_home) -> SimpleNamespace:
    """Temp data, runs and cache folders; ImageNet weights in the session's Keras home (the
    Train page offers Start only for a backbone whose weights are there)."""
    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    data.mkdir()
    runs.mkdir()
    monkeypatch.setattr(core.config, "DATA_ROOT", data)
    monkeypatch.setattr(core.config, "RUNS_DIR", runs)
    monkeypatch.setattr(core.embeddings, "CACHE_DIR", cache)
    monkeypatch.setenv("TLS_DATA_ROOT", str(data))
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs))
    monkeypatch.setenv("TLS_CACHE_DIR", str(cache))
    return SimpleNamespace(data=data, runs=runs, cache=cache)


@pytest.fixture
def with_run(dirs, trained_run) -> Path:
    """A copy of the session's trained run (2 epochs, classes blue and red) in the runs folder."""
    return Path(shutil.copytree(trained_run, dirs.runs / trained_run.name, symlinks=True))


def open_page(page: str | None, session: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def chart_spec(at: AppTest, key: str) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    return json.loads(chart.proto.spec)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


# --- every page ----------------------------------------------------------------------------


def test_entrypoint_opens_home(dirs):
    at = open_page(None)
    assert at.title[0].value == "Transfer Learning Studio"
    assert str(dirs.data) in texts(at.markdown) and str(dirs.runs) in texts(at.markdown)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_runs(dirs, page):
    at = open_page(page)
    assert at.title[0].value in {"Transfer Learning Studio", "Data", "Train", "Checkpoints", "Predict"}
    if page in ("pages/checkpoints.py", "pages/predict.py", "pages/train.py"):
        assert "No " in texts(at.info)  # a guard, not an empty page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_trained_run(with_run, page):
    at = open_page(page)
    assert not at.error


# --- Home ----------------------------------------------------------------------------------


def _horse_or_human_zips(root: Path) -> Path:
    make_zip(root / "horse-or-human.zip", class_zip_entries(per_class=2))
    make_zip(root / "validation-horse-or-human.zip", class_zip_entries(per_class=1))
    return root


def test_home_download_from_a_local_server(dirs, tmp_path, monkeypatch):
    served = _horse_or_human_zips(tmp_path / "served")
    at = open_page("pages/home.py")
    with serve_directory(served) as base:
        monkeypatch.setenv("TLS_HORSE_OR_HUMAN_URL_BASE", base)
        button(at, "Download the full horse-or-human dataset").click().run()
    assert not at.exception and not at.error
    target = dirs.data / "downloads" / "horse-or-human"
    assert "Downloaded and unpacked" in texts(at.success)
    assert len(list((target / "train" / "horses").iterdir())) == 2
    assert len(list((target / "validation" / "humans").iterdir())) == 1


def test_home_download_offline_is_a_clear_error(dirs, monkeypatch):
    monkeypatch.setenv("TLS_HORSE_OR_HUMAN_URL_BASE", f"http://127.0.0.1:{free_port()}")
    at = open_page("pages/home.py")
    button(at, "Download the full horse-or-human dataset").click().run()
    assert not at.exception
    (error,) = at.error
    assert "The download failed: could not reach 127.0.0.1" in error.value
    assert not (dirs.data / "downloads" / "horse-or-human").exists()


# --- Data ----------------------------------------------------------------------------------


def test_data_sample_is_the_default_and_remembered_for_train(dirs):
    at = open_page("pages/data.py")
    assert at.session_state["dataset"] == str(SAMPLE_DATASET)
    assert [m.value for m in at.metric][:3] == ["2", "100", "0"]
    spec = chart_spec(at, "counts_chart")
    assert [t["name"] for t in spec["data"]] == ["all"]
    assert spec["data"][0]["y"] == [50, 50]
    at.switch_page("pages/train.py").run()
    assert str(SAMPLE_DATASET) in texts(at.caption)


def preview_grids(at: AppTest) -> tuple[list[str], list[str]]:
    """The image URLs (content hashes) of the two 8-image grids: one image x8, a random batch."""
    urls = [image.value[0] for image in at.image]
    assert len(urls) == 16
    return urls[:8], urls[8:]


def test_moving_an_augmentation_slider_changes_the_preview(dirs):
    at = open_page("pages/data.py")
    one_image, batch = preview_grids(at)
    assert len(set(one_image)) == 1  # no augmentation yet: 8 identical copies
    at.slider(key="aug_rotation").set_value(40.0).run()
    assert not at.exception
    rotated_one, rotated_batch = preview_grids(at)
    assert len(set(rotated_one)) == 8  # each copy rotated its own way
    assert not set(rotated_batch) & set(batch)
    assert at.session_state["augment"]["rotation"] == 40.0
    [regenerate] = [b for b in at.button if b.label == "Regenerate"]
    regenerate.click().run()
    assert set(preview_grids(at)[1]) != set(rotated_batch)  # a new random batch


def test_reference_recipe_button_sets_every_slider(dirs):
    at = open_page("pages/data.py")
    [button] = [b for b in at.button if b.label == "Use the reference recipe"]
    button.click().run()
    assert at.slider(key="aug_rotation").value == 40
    assert at.slider(key="aug_width_shift").value == 0.2
    assert at.checkbox(key="aug_horizontal_flip").value is True
    assert at.session_state["augment"] == {**core.config.REFERENCE_AUGMENT.__dict__}


def _messy_dataset(root: Path) -> Path:
    make_color_dataset(root, per_class=3, classes={"blue": (40, 40, 220)})
    make_color_dataset(root, per_class=8, classes={"red": (220, 40, 40)})
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "blue" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_data_folder_report_counts_skips_and_imbalance(dirs):
    _messy_dataset(dirs.data / "mine")
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(FOLDER).run()
    assert at.selectbox(key="folder").value == "mine"
    assert [m.value for m in at.metric][:3] == ["2", "11", "2"]
    assert "imbalanced" in texts(at.warning) and "2.7x" in texts(at.warning)
    skipped = at.dataframe[1].value
    assert sorted(skipped["file"]) == ["blue/broken.png", "red/notes.txt"]
    assert at.session_state["dataset"] == str(dirs.data / "mine")


def test_split_makes_a_new_folder_and_selects_it(dirs):
    make_color_dataset(dirs.data / "colors", per_class=8)
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(FOLDER).run()
    at.slider[0].set_value(0.25)  # validation
    at.slider[1].set_value(0.25)  # test
    [submit] = [b for b in at.button if b.label == "Split into a new folder"]
    submit.click().run()
    assert not at.exception and not at.error
    output = dirs.data / "splits" / "colors-split"
    assert sorted(p.name for p in output.iterdir()) == ["test", "train", "validation"]
    assert at.selectbox(key="folder").value == "splits/colors-split"
    assert at.session_state["dataset"] == str(output)
    spec = chart_spec(at, "counts_chart")
    assert [t["name"] for t in spec["data"]] == ["train", "validation", "test"]
    assert sum(sum(t["y"]) for t in spec["data"]) == 16


def test_upload_a_zip_of_class_folders(dirs):
    archive = make_zip(dirs.data.parent / "pets.zip", class_zip_entries("pets/", per_class=3))
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(UPLOAD).run()
    at.file_uploader[0].set_value(("pets.zip", archive.read_bytes(), "application/zip")).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="folder").value == "uploads/pets/pets"
    assert "Unpacked pets.zip" in texts(at.success)
    assert [m.value for m in at.metric][:2] == ["2", "6"]


def test_upload_an_unsafe_zip_is_refused(dirs):
    archive = make_zip(
        dirs.data.parent / "evil.zip", {**class_zip_entries(), "../../escaped.png": png_bytes((1, 1, 1))}
    )
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(UPLOAD).run()
    at.file_uploader[0].set_value(("evil.zip", archive.read_bytes(), "application/zip")).run()
    assert not at.exception
    assert "That zip cannot be used" in texts(at.error) and "leaves its folder" in texts(at.error)
    assert not list(dirs.data.parent.rglob("escaped.png"))
    assert not (dirs.data / "uploads").exists() or not any((dirs.data / "uploads").iterdir())


# --- Train ---------------------------------------------------------------------------------


class FakeTrainer:
    """Stands in for the `python -m core.train` process: alive (our pid), never trains."""

    commands: list = []
    real_popen = subprocess.Popen

    def __new__(cls, command, *args, **kwargs):
        if "core.train" not in command:
            return cls.real_popen(command, *args, **kwargs)
        cls.commands.append(command)
        return super().__new__(cls)

    def __init__(self, command, *args, **kwargs):
        self.pid = os.getpid()

    def wait(self):
        return 0


@pytest.fixture
def fake_trainer(monkeypatch):
    FakeTrainer.commands = []
    monkeypatch.setattr(subprocess, "Popen", FakeTrainer)
    return FakeTrainer


def _start(at: AppTest) -> AppTest:
    [start] = [b for b in at.button if b.label == "Start training"]
    return start.click().run()


def test_start_writes_a_run_stop_writes_stop_and_a_second_start_is_refused(dirs, fake_trainer):
    data = make_color_dataset(dirs.data / "colors")
    at = open_page("pages/train.py", {"dataset": str(data)})
    assert at.radio(key="quick:mode").value == "auto"  # the default: measure, keep the best
    assert "**Auto:**" in plan(at)
    at.radio(key="quick:mode").set_value("finetune").run()
    at.number_input(key="quick:epochs").set_value(1)
    at.number_input(key="quick:image_size").set_value(32)
    at.checkbox(key="quick:weights").uncheck()
    _start(at)
    assert not at.exception and not at.error
    (run_dir,) = [p for p in dirs.runs.iterdir() if p.is_dir()]
    saved = json.loads((run_dir / "config.json").read_text())
    quick = PRESETS["quick"]
    assert saved["data"] == str(data) and saved["epochs"] == 1 and saved["image_size"] == 32
    assert saved["weights"] is None and saved["backbone"] == quick["backbone"]
    assert saved["augment"]["horizontal_flip"] is True  # the preset's: the Data page set none
    assert ["-m", "core.train"] == fake_trainer.commands[0][1:3] and str(run_dir) in fake_trainer.commands[0]
    assert at.session_state["train_run"] == str(run_dir)
    assert f"Run {run_dir.name}" in texts(at.subheader)
    assert at.get("progress")[0].proto.text.startswith("Start-up: ")

    at.button(key="stop").click().run()
    assert (run_dir / "STOP").exists()
    assert "Stop requested" in texts(at.info)

    [start] = [b for b in at.button if b.label == "Start training"]
    assert start.disabled  # a second training is refused before it is tried
    assert f"A training is already running: {run_dir.name}" in texts(at.info)
    assert len([p for p in dirs.runs.iterdir() if p.is_dir()]) == 1


def test_start_uses_the_data_page_augmentation(dirs, fake_trainer):
    data = make_color_dataset(dirs.data / "colors")
    augment = {**core.config.AugmentConfig(rotation=30, zoom=0.1).__dict__}
    at = open_page("pages/train.py", {"dataset": str(data), "augment": augment})
    assert at.radio(key="quick:augment").value == "preset"  # previewing alone changes nothing
    at.radio(key="quick:augment").set_value("Data page").run()
    assert "augment its training images with: **rotate up to ±30°, zoom" in texts(at.caption)
    _start(at)
    (run_dir,) = [p for p in dirs.runs.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "config.json").read_text())["augment"] == augment


def test_choosing_a_preset_resets_the_form(dirs):
    at = open_page("pages/train.py")
    assert at.selectbox(key="quick:backbone").value == "mobilenet_v2_0.35"
    at.selectbox[0].set_value("seed").run()
    assert at.selectbox(key="seed:backbone").value == "inception_v3"
    assert at.radio(key="seed:pooling").value == "flatten"
    assert at.number_input(key="seed:dense").value == 1024


def test_a_missing_dataset_blocks_start_with_the_reason(dirs, fake_trainer):
    at = open_page("pages/train.py", {"dataset": str(dirs.data / "missing")})
    [start] = [b for b in at.button if b.label == "Start training"]
    assert start.disabled
    assert "Cannot start: Dataset: the folder is gone" in texts(at.error)
    assert not fake_trainer.commands


def _fake_run(runs: Path, name: str, status: dict, lines: list[dict]) -> Path:
    run_dir = runs / name
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"backbone": "mobilenet_v2_0.35", "image_size": 96}))
    (run_dir / "status.json").write_text(json.dumps(status))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run_dir


def test_live_view_of_a_running_run(dirs):
    now = time.time()
    lines = [
        {"epoch": 1, "batch": 4, "batches": 4, "time": now - 9, "accuracy": 0.5},
        {"epoch": 1, "accuracy": 0.6, "loss": 0.7, "val_accuracy": 0.55, "val_loss": 0.8, "seconds": 8.0},
        {"epoch": 2, "batch": 2, "batches": 4, "time": now},
    ]
    status = {"state": "running", "pid": os.getpid(), "epochs": 3, "batches": 4, "started_at": now - 10}
    run_dir = _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    at = open_page("pages/train.py")
    assert f"Run {run_dir.name}" in texts(at.subheader)
    progress = at.get("progress")[0].proto
    # 1.5 epochs of 8 s left, then the evaluation (its default 20 s: no finished run to learn from)
    assert progress.text == "Training: epoch 2/3 · batch 2/4 · about 32 s left in all"
    spec = chart_spec(at, "accuracy_chart")
    assert [(t["name"], t["x"], t["y"]) for t in spec["data"]] == [
        ("train", [1], [0.6]),
        ("validation", [1], [0.55]),
    ]
    assert [b.label for b in at.button if b.key == "stop"] == ["Stop"]


def test_two_sessions_watching_one_run_see_the_same_curves(dirs):
    now = time.time()
    lines = [
        {
            "epoch": e,
            "accuracy": 0.5 + e / 10,
            "loss": 1 - e / 10,
            "val_accuracy": 0.4 + e / 10,
            "val_loss": 1.1 - e / 10,
            "seconds": 5.0,
        }
        for e in (1, 2)
    ]
    status = {"state": "running", "pid": os.getpid(), "epochs": 5, "batches": 4, "started_at": now - 10}
    _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    first, second = open_page("pages/train.py"), open_page("pages/train.py")  # two browser tabs
    for key in ("accuracy_chart", "loss_chart"):
        assert chart_spec(first, key)["data"] == chart_spec(second, key)["data"]
    assert [t["y"] for t in chart_spec(second, "accuracy_chart")["data"]] == [
        [0.6, 0.7],
        pytest.approx([0.5, 0.6]),
    ]


def test_a_failed_run_shows_its_error(dirs):
    status = {"state": "failed", "error": "dataset folder not found: /nowhere", "started_at": 1.0}
    _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, [])
    at = open_page("pages/train.py")
    assert "The run failed: dataset folder not found: /nowhere" in texts(at.error)


def test_train_page_shows_the_latest_completed_run(with_run):
    at = open_page("pages/train.py")
    assert "Completed: 2 epochs" in texts(at.success)
    spec = chart_spec(at, "loss_chart")
    assert [t["name"] for t in spec["data"]] == ["train", "validation"]
    assert spec["data"][0]["x"] == [1, 2]
    assert not at.get("progress")  # no progress bar, no Stop button: nothing is running
    assert not [b for b in at.button if b.key == "stop"]


# --- Checkpoints ---------------------------------------------------------------------------


def test_checkpoints_lists_the_run_and_its_checkpoints(with_run):
    at = open_page("pages/checkpoints.py")
    table = at.dataframe[0].value
    assert list(table["run"]) == [with_run.name]
    assert list(table["state"]) == ["completed"] and list(table["epochs"]) == [2]
    assert sorted(b.proto.label for b in at.get("download_button")) == ["Download best", "Download last"]
    markdown = texts(at.markdown)
    assert "**best.keras**" in markdown and "val_accuracy" in markdown
    compare = chart_spec(at, "compare_chart")
    assert [t["name"] for t in compare["data"]] == [with_run.name]
    assert compare["data"][0]["x"] == [1, 2]


def test_compare_two_runs(with_run, dirs):
    other = shutil.copytree(with_run, dirs.runs / "20200101-000000-other-32", symlinks=True)
    at = open_page("pages/checkpoints.py")
    at.multiselect[0].set_value([with_run.name, other.name]).run()
    compare = chart_spec(at, "compare_chart")
    # The legend names each run's dataset (the old-style name lacks it: it is added)
    assert [t["name"] for t in compare["data"]] == [with_run.name, f"{other.name} · colors"]


def test_delete_needs_confirmation(with_run):
    at = open_page("pages/checkpoints.py")
    [delete] = [b for b in at.button if b.label == "Delete run"]
    assert delete.disabled
    at.checkbox(key=f"confirm_{with_run.name}").check().run()
    [delete] = [b for b in at.button if b.label == "Delete run"]
    delete.click().run()
    assert not with_run.exists()
    assert f"Deleted {with_run.name}" in texts(at.success)
    assert "No runs" in texts(at.info)


# --- Predict -------------------------------------------------------------------------------


def test_predict_labels_uploads_and_reports_an_unreadable_one(with_run, tmp_path):
    red = write_image(tmp_path / "red.png", (220, 40, 40), size=48).read_bytes()
    at = open_page("pages/predict.py")
    assert at.radio[0].value == "best"
    uploads = [("red.png", red, "image/png"), ("junk.png", b"not an image", "image/png")]
    at.file_uploader[0].set_value(uploads).run()
    assert not at.exception and not at.error
    labels = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert len(labels) == 1 and labels[0].split()[1] in {"blue", "red"}
    assert at.image[0].captions == ["red.png"]
    probs = chart_spec(at, "probs_0")["data"][0]
    assert sorted(probs["y"]) == ["blue", "red"] and sum(probs["x"]) == pytest.approx(1.0, abs=1e-4)
    assert "junk.png" in texts(at.warning) and "not an image" in texts(at.warning)


def test_predict_a_camera_photo(with_run):
    at = open_page("pages/predict.py")
    at.toggle(key="camera").set_value(True).run()
    photo = (SAMPLE_DATASET / "humans" / sorted(os.listdir(SAMPLE_DATASET / "humans"))[0]).read_bytes()
    at.camera_input[0].set_value(("camera.jpg", photo, "image/jpeg")).run()
    assert not at.exception and not at.error
    labels = [m.value for m in at.markdown if m.value.startswith("### ")]
    # A photo of a person, to a model of colours, is none of its classes.
    assert labels in (["### None of these  \n(closest: blue)"], ["### None of these  \n(closest: red)"])
    assert chart_spec(at, "probs_0")["data"][0]["orientation"] == "h"


def test_train_page_reattaches_to_the_active_run(with_run, dirs):
    status = {"state": "running", "pid": os.getpid(), "epochs": 2, "started_at": time.time()}
    active = _fake_run(dirs.runs, "20200101-000000-mobilenet_v2_0.35-96", status, [])
    at = open_page("pages/train.py", {"train_run": str(with_run)})  # this session started another run
    assert f"Run {active.name}" in texts(at.subheader)
    assert at.get("progress")[0].proto.text.startswith("Start-up: ")


def test_live_view_names_the_phase_between_epochs(dirs):
    status = {"state": "running", "pid": os.getpid(), "epochs": 1, "phase": "computing embeddings (1/2)"}
    _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, [])
    at = open_page("pages/train.py")
    assert at.get("progress")[0].proto.text.startswith("Embedding images: reading the images · about ")


# --- Train: the two kinds of transfer learning ----------------------------------------------


def _saved_config(runs: Path) -> dict:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return json.loads((run_dir / "config.json").read_text())


def plan(at: AppTest) -> str:
    return "\n".join(i.value for i in at.info if i.proto.icon == ":material/route:")


def test_features_mode_with_knn_writes_its_config(dirs, fake_trainer):
    data = make_color_dataset(dirs.data / "colors")
    at = open_page("pages/train.py", {"dataset": str(data)})
    at.radio(key="quick:mode").set_value("features").run()
    assert not [n for n in at.number_input if n.key == "quick:epochs"]  # a classifier fits once
    assert at.number_input(key="quick:classifier_c").value == 1.0  # logistic regression's C
    at.radio(key="quick:classifier").set_value("knn").run()
    assert not [n for n in at.number_input if n.key == "quick:classifier_c"]
    at.number_input(key="quick:knn").set_value(3).run()
    assert "Feature extraction" in plan(at) and "**k nearest neighbours** classifier" in plan(at)
    assert "plus 1 augmented view(s) of each training image" in plan(at)  # the quick preset's flips
    _start(at)
    assert not at.exception and not at.error
    saved = _saved_config(dirs.runs)
    assert (saved["mode"], saved["classifier"], saved["knn_neighbors"]) == ("features", "knn", 3)
    assert saved["fine_tune_layers"] == 0


def test_the_default_quick_preset_trains_the_head_on_cached_embeddings(dirs, fake_trainer):
    data = make_color_dataset(dirs.data / "colors")
    at = open_page("pages/train.py", {"dataset": str(data)})
    assert at.selectbox[0].value == "quick"  # the page's default preset, in auto mode
    assert "embeds every image once" in plan(at) and "(live)" not in plan(at)
    at.radio(key="quick:mode").set_value("finetune").run()  # a Keras head: the flips are a cached view
    assert "Stage 1, the head (cached):** the frozen base runs once per image plus 1 augmented" in plan(at)
    _start(at)
    assert not at.exception and not at.error
    saved = TrainConfig.from_dict(_saved_config(dirs.runs))
    assert saved.augment.horizontal_flip and head_training_path(saved)[0] == "cached"


def test_svm_and_tree_show_their_own_hyperparameters(dirs):
    at = open_page("pages/train.py")
    at.radio(key="quick:mode").set_value("features").run()
    at.radio(key="quick:classifier").set_value("svm").run()
    assert at.radio(key="quick:kernel").value == "rbf"
    assert at.number_input(key="quick:classifier_c").value == 1.0
    at.radio(key="quick:classifier").set_value("tree").run()
    assert at.number_input(key="quick:depth").value == 0
    assert not [r for r in at.radio if r.key == "quick:kernel"]


def test_fine_tune_with_stage_2_shows_the_plan_and_writes_it(dirs, fake_trainer):
    data = make_color_dataset(dirs.data / "colors")
    at = open_page("pages/train.py", {"dataset": str(data)})
    at.radio(key="quick:mode").set_value("finetune").run()
    assert at.number_input(key="quick:ft_epochs").disabled  # 0 layers: no stage 2
    assert "Stage 1, the head (cached)" in plan(at)  # the quick preset's flips are a cached view
    at.number_input(key="quick:views").set_value(0).run()
    assert "Stage 1, the head (live)" in plan(at) and "live augmentation" in plan(at)  # flips need images
    at.number_input(key="quick:ft_layers").set_value(20).run()
    at.number_input(key="quick:ft_factor").set_value(0.2).run()
    assert "Stage-2 learning rate: 0.001 x 0.2 = 0.0002" in texts(at.caption)
    assert "top 20 backbone layers" in plan(at) and "0.0002" in plan(at)
    at.number_input(key="quick:views").set_value(2).run()
    assert "Stage 1, the head (cached)" in plan(at) and "2 augmented view(s)" in plan(at)
    at.radio(key="quick:head_training").set_value("live").run()
    assert "the head (live):** chosen in the config" in plan(at)
    at.checkbox(key="quick:class_weights").check()
    at.selectbox(key="quick:monitor").set_value("val_macro_f1")
    _start(at)
    assert not at.exception and not at.error
    saved = _saved_config(dirs.runs)
    assert (saved["fine_tune_layers"], saved["fine_tune_lr_factor"], saved["augment_views"]) == (20, 0.2, 2)
    assert saved["head_training"] == "live" and saved["class_weights"] is True
    assert saved["monitor"] == "val_macro_f1" and saved["mode"] == "finetune"


def test_live_view_shows_the_head_path_and_marks_stage_2(dirs):
    lines = [
        {"epoch": e, "accuracy": 0.5 + e / 10, "loss": 1 - e / 10, "val_accuracy": 0.5, "val_loss": 0.9}
        | {"stage": 1 if e <= 2 else 2}
        for e in (1, 2, 3)
    ]
    status = {
        "state": "running",
        "pid": os.getpid(),
        "epochs": 4,
        "batches": 4,
        "stage": 2,
        "stage2_start_epoch": 3,
        "head_training": "cached",
        "head_training_reason": "the frozen base runs once per image",
        "cache_hits": 12,
        "cache_misses": 4,
    }
    _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    at = open_page("pages/train.py")
    caption = texts(at.caption)
    assert "head training: **cached (the frozen base runs once per image)**" in caption
    assert "12 read from the embedding cache, 4 computed" in caption
    for key in ("accuracy_chart", "loss_chart"):
        (line,) = chart_spec(at, key)["layout"]["shapes"]
        assert (line["x0"], line["x1"], line["line"]["dash"]) == (2.5, 2.5, "dash")


def test_live_view_names_the_evaluating_phase_after_the_last_epoch(dirs):
    lines = [{"epoch": 1, "accuracy": 0.6, "val_accuracy": 0.5}]
    status = {"state": "running", "pid": os.getpid(), "epochs": 1, "batches": 2, "phase": "evaluating"}
    _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    at = open_page("pages/train.py")
    assert at.get("progress")[0].proto.text.startswith("Evaluation: classifying the validation images")


def test_a_completed_features_run_is_shown_as_one_fit_not_as_epochs(dirs):
    lines = [{"epoch": 1, "accuracy": 1.0, "loss": 0.01, "val_accuracy": 0.9, "val_loss": 0.2, "stage": 1}]
    status = {"state": "completed", "epochs": 1, "started_at": 100.0, "ended_at": 112.0}
    run_dir = _fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    (run_dir / "config.json").write_text(json.dumps({"mode": "features", "classifier": "svm"}))
    at = open_page("pages/train.py")
    assert "Completed: support vector machine fitted on the embeddings in 12 s." in texts(at.success)
    # No one-dot curve:
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("accuracy_chart")]
    assert "Epoch" not in [m.label for m in at.metric]
    assert [m.value for m in at.metric if m.label == "Validation accuracy"] == ["0.900"]
    assert "no epochs: on the training images accuracy 1.000" in texts(at.caption)


# --- Data: the strategy advisor -------------------------------------------------------------


def _advice(**changes) -> core.advisor.Advice:
    advice = core.advisor.Advice(
        images_per_class_min=8,
        images_per_class_mean=8.0,
        counts={"blue": 8, "red": 8},
        similarity=0.31,
        scores={"imagenet": {"block_13_expand_relu": 0.9, "top": 0.7}, "random": {"top": 0.6}},
        sample_size=16,
        similarity_method="cross-validated logistic regression on 16 sample images",
        size_label="small",
        similarity_label="different",
        strategy=core.advisor.SMALL_DIFFERENT,
        explanation="Your smallest class has 8 images. Recommended: an earlier layer.",
        preset=dict(core.advisor.PRESETS[core.advisor.SMALL_DIFFERENT]),
    )
    return dataclasses.replace(advice, **changes)


@pytest.fixture
def fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _strategy_page(dirs) -> tuple[AppTest, Path]:
    data = make_color_dataset(dirs.data / "colors")
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(FOLDER).run()
    return at, data


def test_the_advisor_recommends_and_fills_the_train_form(dirs, fresh_caches, monkeypatch):
    calls = []
    monkeypatch.setattr(core.advisor, "advise", lambda path: calls.append(path) or _advice())
    at, data = _strategy_page(dirs)
    assert not calls  # nothing measured until asked
    button(at, "Recommend a strategy").click().run()
    assert not at.exception and not at.error
    assert f"Recommended: **{core.advisor.SMALL_DIFFERENT}**" in texts(at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Smallest class"] == "8 images" and metrics["Similarity to ImageNet"] == "0.31"
    assert "logistic regression on 16 sample images" in texts(at.caption)
    assert "Recommended: an earlier layer." in texts(at.markdown)
    button(at, "Use this on the Train page").click().run()
    assert calls == [str(data)]  # measured once: the second run read the cache
    assert at.session_state["advised"]["preset"]["feature_layer"] == "block_13_expand_relu"

    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "advisor"
    assert at.radio(key="advisor:mode").value == "features"
    assert at.text_input(key="advisor:feature_layer").value == "block_13_expand_relu"
    assert at.selectbox(key="advisor:backbone").value == "mobilenet_v2"
    assert at.radio(key="advisor:classifier").value == "logreg"
    assert "layer `block_13_expand_relu`" in plan(at)


def test_the_advisor_offline_says_where_the_weights_go(dirs, fresh_caches, monkeypatch):
    message = "Could not download the ImageNet weights for mobilenet_v2_0.35 (offline?): put the file there."

    def offline(path):
        raise WeightsUnavailableError(message)

    monkeypatch.setattr(core.advisor, "advise", offline)
    at, _ = _strategy_page(dirs)
    button(at, "Recommend a strategy").click().run()
    assert not at.exception
    assert message in texts(at.error)
    assert "advised" not in at.session_state


# --- Checkpoints: evaluation and resume -----------------------------------------------------


def test_the_evaluation_of_a_trained_run(with_run):
    evaluation = json.loads((with_run / "evaluation.json").read_text())["validation"]
    at = open_page("pages/checkpoints.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"] == f"{evaluation['accuracy']:.3f}"
    assert metrics["Macro F1"] == f"{evaluation['macro']['f1']:.3f}"
    assert metrics["Misclassified"] == f"{evaluation['num_misclassified']} of {evaluation['num_images']}"
    heatmap = chart_spec(at, "confusion_matrix")["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["z"] == evaluation["confusion_matrix"]
    assert heatmap["x"] == ["blue", "red"]
    bars = chart_spec(at, "per_class_chart")["data"]
    assert [b["name"] for b in bars] == ["precision", "recall", "f1"]
    table = at.dataframe[1].value
    assert list(table["class"]) == ["blue", "red"] and list(table["support"]) == [2, 2]
    assert "AUC" in chart_spec(at, "roc_chart")["data"][1]["name"]
    assert "AP" in chart_spec(at, "pr_chart")["data"][-1]["name"]
    shown = len(evaluation["misclassified"]) + len(evaluation["top_losses"])
    assert len(at.image) == shown
    captions = [c for image in at.image for c in image.captions]
    entry = (evaluation["misclassified"] or evaluation["top_losses"])[0]  # the converged head may err on none
    assert shown and f"true {entry['true']} · predicted {entry['predicted']}" in captions[0]
    assert [b.label for b in at.button if b.label.startswith("Evaluate on")] == ["Evaluate on train"]


def test_the_gallery_shows_grad_cam_overlays_made_at_evaluation(with_run):
    evaluation = json.loads((with_run / "evaluation.json").read_text())["validation"]
    entries = evaluation["misclassified"] + evaluation["top_losses"]
    assert all((with_run / e["gradcam_thumbnail"]).is_file() for e in entries)  # written by the engine
    at = open_page("pages/checkpoints.py")
    shown = len(at.image)
    at.toggle(key="gallery_gradcam").set_value(True).run()
    assert not at.exception and len(at.image) == 2 * shown
    assert "Grad-CAM: where it looked" in [c for image in at.image for c in image.captions]


def test_evaluate_on_another_split_runs_core_evaluate(with_run):
    at = open_page("pages/checkpoints.py")
    button(at, "Evaluate on train").click().run()
    assert not at.exception and not at.error
    assert "Evaluated train: accuracy" in texts(at.success)
    assert set(json.loads((with_run / "evaluation.json").read_text())) == {"validation", "train"}
    assert at.radio(key="evaluation_split").value == "train"
    assert not [b for b in at.button if b.label.startswith("Evaluate on")]


def test_a_failed_evaluation_shows_its_one_line_error(with_run, monkeypatch):
    def failing(command, **kwargs):
        assert command[1:3] == ["-m", "core.evaluate"] and command[-2:] == ["--split", "train"]
        stderr = "some warning\nerror: the dataset has no train split; available: validation\n"
        return subprocess.CompletedProcess(command, 2, "", stderr)

    at = open_page("pages/checkpoints.py")
    monkeypatch.setattr(subprocess, "run", failing)
    button(at, "Evaluate on train").click().run()
    assert not at.exception
    assert (
        texts(at.error) == "Cannot evaluate on train: the dataset has no train split; available: validation"
    )


def _set_state(run_dir: Path, **fields) -> None:
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, **fields}))


def test_resume_a_stopped_run(with_run, fake_trainer):
    at = open_page("pages/checkpoints.py")
    assert not [b for b in at.button if b.key == "resume"]  # a completed run has nothing to resume
    _set_state(with_run, state="stopped")
    at = open_page("pages/checkpoints.py")
    at.button(key="resume").click().run()
    assert not at.exception and not at.error
    (command,) = fake_trainer.commands
    assert command[1:] == ["-m", "core.train", "--resume", str(with_run)]
    assert f"Resuming {with_run.name}" in texts(at.success)
    assert at.session_state["train_run"] == str(with_run)


def test_resume_refused_while_another_run_trains(with_run, dirs, fake_trainer):
    _set_state(with_run, state="interrupted")
    at = open_page("pages/checkpoints.py")
    status = {"state": "running", "pid": os.getpid(), "epochs": 2, "started_at": time.time()}
    busy = _fake_run(dirs.runs, "20200101-000000-mobilenet_v2_0.35-96", status, [])
    at.button(key="resume").click().run()
    assert f"Cannot resume: a training is already running: {busy.name}" in texts(at.error)
    assert not fake_trainer.commands


def test_run_details_show_the_head_path_and_cache(with_run):
    _set_state(
        with_run, head_training="cached", head_training_reason="because", cache_hits=20, cache_misses=0
    )
    at = open_page("pages/checkpoints.py")
    caption = texts(at.caption)
    assert "head training: **cached (because)**" in caption
    assert "20 read from the embedding cache, 0 computed" in caption


# --- Predict: Grad-CAM ----------------------------------------------------------------------


def test_gradcam_overlay_beside_each_photo(with_run, tmp_path):
    red = write_image(tmp_path / "red.png", (220, 40, 40), size=48).read_bytes()
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value([("red.png", red, "image/png")]).run()
    assert len(at.image) == 1
    at.toggle(key="gradcam").set_value(True).run()
    assert not at.exception and not at.error and not at.warning
    original, overlay = at.image
    assert original.captions == ["red.png"]
    label = [m.value for m in at.markdown if m.value.startswith("### ")][0].split()[1]
    assert overlay.captions == [f"Grad-CAM: where it saw {label}"]
    assert original.value[0] != overlay.value[0]  # another picture, not the photo again


def test_gradcam_not_available_says_so(with_run, tmp_path, monkeypatch):
    monkeypatch.setattr(core.gradcam, "gradcam_available", lambda model: False)
    red = write_image(tmp_path / "red.png", (220, 40, 40), size=48).read_bytes()
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value([("red.png", red, "image/png")])
    at.toggle(key="gradcam").set_value(True).run()
    assert not at.exception
    assert "Grad-CAM is not available for this classifier" in texts(at.info)
    assert len(at.image) == 1 and [m for m in at.markdown if m.value.startswith("### ")]


# --- Home: the embedding cache --------------------------------------------------------------


def test_clear_the_embedding_cache_after_confirming(dirs):
    for i in range(3):
        path = dirs.cache / "mobilenet_v2-imagenet-224-top-avg" / "plain" / f"{i:02d}" / f"{i:02d}.npy"
        path.parent.mkdir(parents=True)
        np.save(path, np.zeros(256, np.float32))
    size = format_bytes(sum(p.stat().st_size for p in dirs.cache.rglob("*.npy")))
    at = open_page("pages/home.py")
    assert f"**3 embeddings, {size}**" in texts(at.markdown) and str(dirs.cache) in texts(at.markdown)
    assert button(at, "Clear the embedding cache").disabled
    at.checkbox(key="confirm_clear_cache").check().run()
    button(at, "Clear the embedding cache").click().run()
    assert not at.exception and not at.error
    assert not list(dirs.cache.rglob("*.npy"))
    assert f"Cleared the embedding cache: {size} freed." in texts(at.success)
    assert "**0 embeddings, 0 B**" in texts(at.markdown)
    assert not [b for b in at.button if b.label == "Clear the embedding cache"]


# --- TensorFlow stays out of the pages that only read run files ---------------------------

NO_TENSORFLOW = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("streamlit_app.py", default_timeout=60)
at.run()
for page in ("pages/train.py", "pages/checkpoints.py"):
    at.switch_page(page).run()
    assert not at.exception, at.exception
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules), len(at.get("plotly_chart")))
"""


def test_home_train_and_checkpoints_never_import_keras(with_run):
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported, charts = result.stdout.strip().rsplit(" ", 1)
    assert imported == "[]" and int(charts) >= 6  # the evaluation's charts were drawn too


def test_export_a_run_as_a_verified_zip_to_download(with_run):
    at = open_page("pages/checkpoints.py")
    at.selectbox(key=f"export_format_{with_run.name}").set_value("Keras (.keras)").run()
    button(at, "Export and verify").click().run()
    assert not at.exception and not at.error
    assert "agree" in texts(at.success).lower()
    [archive] = (with_run / "exports").glob("*.zip")
    names = __import__("zipfile").ZipFile(archive).namelist()
    assert any(n.endswith("model.keras") for n in names) and any(n.endswith("labels.json") for n in names)
    assert [b for b in at.get("download_button") if "zip" in str(b.proto.label).lower()]


def test_a_refused_export_shows_its_one_line_error(with_run, monkeypatch):
    def failing(command, **kwargs):
        assert command[1:3] == ["-m", "core.export"]
        return subprocess.CompletedProcess(command, 2, "", "error: verification failed: agrees on 97.0%\n")

    at = open_page("pages/checkpoints.py")
    monkeypatch.setattr(subprocess, "run", failing)
    button(at, "Export and verify").click().run()
    assert texts(at.error) == "Cannot export: verification failed: agrees on 97.0%"


def test_demo_mode_turns_deleting_off(with_run, monkeypatch):
    monkeypatch.setenv("TLS_DEMO_MODE", "1")
    at = open_page("pages/checkpoints.py")
    assert "turned off in this demo" in texts(at.info)
    assert not [b for b in at.button if b.label == "Delete run"]
    assert with_run.is_dir()
