"""AppTests of what a new user found (issue 15): honest progress over every phase, inputs
checked before Start, runs told apart by their dataset, and the user's place kept."""

import json
import os
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import core.checks
import core.config
import core.embeddings
import core.launch
from core.text import code
from tests import page_helpers
from tests.helpers import make_color_dataset
from tests.page_helpers import open_page, texts


@pytest.fixture
def spawned(monkeypatch) -> list:
    """Launches recorded instead of started: the run folder and config are real."""
    calls = []
    monkeypatch.setattr(core.launch, "_spawn", lambda run, args, mode: calls.append(run.path))
    return calls


def start_button(at: AppTest):
    [button] = [b for b in at.button if b.label == "Start training"]
    return button


def fake_run(runs: Path, name: str, status: dict, lines=(), config: dict | None = None, counts=None) -> Path:
    """A hand-written run of the dataset "hands", 2 epochs (over `config`)."""
    hands = {"data": "/datasets/hands", "epochs": 2}
    return page_helpers.fake_run(runs, name, status, lines, {**hands, **(config or {})}, counts)


def segments(*parts):
    return [{"phase": p, "start": s, "end": e} for p, s, e in parts]


# --- 1. Honest progress ------------------------------------------------------------------------


def test_every_phase_is_named_and_the_eta_counts_those_to_come(dirs):
    now = time.time()
    status = {
        "state": "running",
        "pid": os.getpid(),
        "embedded": 25,
        "to_embed": 100,
        "timeline": segments(("starting", now - 30, now - 10), ("embedding", now - 10, None)),
    }
    counts = {"train": {"a": 40, "b": 40}, "validation": {"a": 10, "b": 10}}
    cached = {"head_training": "cached"}
    fake_run(dirs.runs, "20260101-000000-hands-mobilenet_v2_0.35-96", status, config=cached, counts=counts)
    at = open_page("pages/train.py")
    progress = at.get("progress")[0].proto.text
    assert progress.startswith("Embedding images: 25/100 images · about ")
    # 75 more images at the measured 0.4 s each is 30 s; training and evaluation come on top.
    eta_s = int(progress.split("about ")[1].split(" s")[0]) if "min" not in progress else 60
    assert eta_s > 30
    phases = texts(at.caption)
    assert "1. Start-up 20 s" in phases and "2. **Embedding images**" in phases
    assert "3. Training" in phases and "4. Evaluation" in phases


def test_a_resumed_run_counts_its_active_time_only(dirs):
    line = segments(
        ("starting", 0, 20), ("training", 20, 100), ("starting", 3700, 3710), ("training", 3710, 3750)
    )
    status = {"state": "completed", "started_at": 0, "ended_at": 3750, "updated_at": 3750, "timeline": line}
    lines = [{"epoch": 1, "val_accuracy": 0.9, "val_loss": 0.3}, {"epoch": 2, "val_accuracy": 0.9}]
    fake_run(dirs.runs, "20260101-000000-hands-mobilenet_v2_0.35-96", status, lines)
    at = open_page("pages/train.py")
    assert "Completed: 2 epochs in 2 min 30 s." in texts(at.success)  # not the hour it sat stopped


def test_a_failed_run_says_why_in_place_of_the_charts(dirs):
    status = {"state": "failed", "error": "the ImageNet weights are missing", "started_at": 1.0}
    fake_run(dirs.runs, "20260101-000000-hands-mobilenet_v2_0.35-96", status)
    at = open_page("pages/train.py")
    assert "The run failed: the ImageNet weights are missing" in texts(at.error)
    assert not at.get("plotly_chart")  # no empty "waiting for the first epoch" charts


# --- 2. Checked inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("quick:batch", -5, "Batch size: must be between 1 and 1024, got -5"),
        ("quick:epochs", 0, "Epochs: must be between 1 and 1000, got 0"),
        ("quick:dense", 100000, "Dense units: must be between 0 and 8192, got 100000"),
    ],
)
def test_an_invalid_value_disables_start_with_the_reason_beside_it(dirs, spawned, key, value, reason):
    at = open_page("pages/train.py", {"dataset": str(make_color_dataset(dirs.data / "colors"))})
    at.radio(key="quick:mode").set_value("finetune").run()  # its epochs and head (auto: the default)
    assert not start_button(at).disabled
    at.number_input(key=key).set_value(value).run()
    assert start_button(at).disabled
    assert f"Cannot start: {reason}" in texts(at.error)
    assert not spawned and not list(dirs.runs.iterdir())


def test_an_image_size_without_weights_is_snapped_with_a_message(dirs, spawned):
    at = open_page("pages/train.py", {"dataset": str(make_color_dataset(dirs.data / "colors"))})
    at.number_input(key="quick:image_size").set_value(33).run()
    assert "33 px becomes 96 px" in texts(at.info)
    start_button(at).click().run()
    (run_dir,) = spawned
    assert json.loads((run_dir / "config.json").read_text())["image_size"] == 96


def test_a_backbone_without_weights_says_what_to_do_and_cannot_start(dirs, spawned, monkeypatch):
    monkeypatch.setattr(core.checks, "can_download", lambda *args, **kwargs: False)  # offline
    st.cache_data.clear()  # the page caches whether it can download
    at = open_page("pages/train.py", {"dataset": str(make_color_dataset(dirs.data / "colors"))})
    backbone = at.selectbox(key="quick:backbone")
    assert "ImageNet weights missing here" in backbone.format_func("inception_v3")
    assert "ImageNet weights missing here" not in backbone.format_func("mobilenet_v2_0.35")
    backbone.set_value("inception_v3").run()
    assert start_button(at).disabled
    assert "put the file 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5' in" in texts(at.error)


def test_the_train_page_repeats_the_data_warnings(dirs):
    data = make_color_dataset(dirs.data / "lopsided", per_class=12)
    for i in range(2, 12):  # the red class keeps 2 images of 12
        (data / "red" / f"{i}.png").unlink()
    at = open_page("pages/train.py", {"dataset": str(data)})
    warnings = texts(at.warning)
    assert "The classes are imbalanced (the largest has 6.0x" in warnings
    assert "Too few images per class: red (2)" in warnings


def test_an_imbalanced_run_leads_with_macro_f1(dirs):
    status = {"state": "completed", "started_at": 0.0, "ended_at": 10.0}
    lines = [{"epoch": 1, "val_accuracy": 0.923, "val_macro_f1": 0.48, "val_loss": 0.3}]
    counts = {"train": {"big": 40, "small": 2}, "validation": {"big": 10, "small": 1}}
    fake_run(dirs.runs, "20260101-000000-hands-mobilenet_v2_0.35-96", status, lines, counts=counts)
    at = open_page("pages/train.py")
    assert [m.label for m in at.metric][:3] == ["Epoch", "Validation macro F1", "Validation accuracy"]
    assert "Macro F1 comes first: the classes are imbalanced" in texts(at.caption)


def test_a_one_class_folder_is_listed_with_its_reason(dirs):
    make_color_dataset(dirs.data / "good")
    make_color_dataset(dirs.data / "solo", classes={"cats": (1, 2, 3)})
    at = open_page("pages/data.py")
    at.radio(key="source").set_value("A folder in the data folder").run()
    assert at.selectbox(key="folder").options == ["good"]
    assert f"{code('solo')}: only one class folder (cats): training needs at least two" in texts(at.markdown)


# --- 3. Runs you can tell apart ---------------------------------------------------------------


def test_the_run_header_names_the_runs_dataset_not_the_chosen_one(dirs):
    status = {"state": "completed", "started_at": 0.0, "ended_at": 10.0}
    fake_run(dirs.runs, "20260101-000000-hands-mobilenet_v2_0.35-96", status, [{"epoch": 1}])
    at = open_page("pages/train.py")  # the sample is the chosen dataset
    captions = texts(at.caption)
    assert "New runs train on **horse-or-human**" in captions
    assert f"Dataset: **hands** ({code('/datasets/hands')})" in captions


def test_the_dataset_and_augmentation_survive_a_reload(dirs):
    make_color_dataset(dirs.data / "colors")
    params = {"dataset": "colors", "augment": '{"rotation":30.0}'}
    at = open_page("pages/train.py", params=params)  # a reload: a new session, the same URL
    assert "New runs train on **colors**" in texts(at.caption)
    at.radio(key="quick:augment").set_value("Data page").run()
    assert "augment its training images with: **rotate up to ±30° (fill: nearest)**" in texts(at.caption)
    assert at.query_params["dataset"] == "colors"


def test_checkpoints_and_compare_show_the_dataset(dirs):
    status = {"state": "completed", "started_at": 0.0, "ended_at": 10.0}
    lines = [{"epoch": 1, "val_accuracy": 0.8}]
    fake_run(dirs.runs, "20200101-000000-mobilenet_v2_0.35-96", status, lines)  # an old name
    at = open_page("pages/checkpoints.py")
    assert list(at.dataframe[0].value["dataset"]) == ["hands"]
    assert at.selectbox(key="checkpoints_run").format_func("20200101-000000-mobilenet_v2_0.35-96") == (
        "20200101-000000-mobilenet_v2_0.35-96 · hands"
    )
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("compare_chart")]
    assert json.loads(chart.proto.spec)["data"][0]["name"] == "20200101-000000-mobilenet_v2_0.35-96 · hands"


# --- 4. Keep the user's place -----------------------------------------------------------------


def test_a_finished_run_links_to_its_evaluation(dirs):
    status = {"state": "completed", "started_at": 0.0, "ended_at": 10.0}
    run = fake_run(dirs.runs, "20260101-000000-hands-mobilenet_v2_0.35-96", status, [{"epoch": 1}])
    fake_run(dirs.runs, "20260102-000000-other-mobilenet_v2_0.35-96", {"state": "failed"})  # newer
    at = open_page("pages/train.py", {"train_run": str(run)})
    at.button(key="next_evaluation").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="checkpoints_run").value == run.name
    assert at.session_state["checkpoints_tab"] == "Evaluation"


def test_uploads_can_be_renamed_and_deleted_on_the_data_page(dirs):
    make_color_dataset(dirs.data / "uploads" / "hands")
    at = open_page("pages/data.py")
    at.radio(key="source").set_value("Upload a zip").run()
    at.text_input(key="upload_name:hands").set_value("gloves").run()
    at.button(key="upload_rename:hands").click().run()
    assert [p.name for p in (dirs.data / "uploads").iterdir()] == ["gloves"]
    assert "Renamed hands to gloves." in texts(at.success)
    at.button(key="upload_delete:gloves").click().run()
    assert not list((dirs.data / "uploads").iterdir())
    assert "Deleted the upload gloves." in texts(at.success)
