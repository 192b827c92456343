"""The Train page: starting and stopping a run, presets, both kinds of transfer learning,
and the live view of a running run.

Fixtures `dirs`, `with_run`, `fake_trainer` and `fresh_caches` are in conftest.py; helpers in
tests/page_helpers.py.
"""

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core.config
from core.config import PRESETS, TrainConfig, field_limits, head_training_choice
from core.runs import RunDir
from tests.helpers import make_color_dataset
from tests.page_helpers import (
    button,
    chart_spec,
    fake_run,
    open_page,
    plan,
    texts,
)


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


def test_live_view_of_a_running_run(dirs):
    now = time.time()
    lines = [
        {"epoch": 1, "batch": 4, "batches": 4, "time": now - 9, "accuracy": 0.5},
        {"epoch": 1, "accuracy": 0.6, "loss": 0.7, "val_accuracy": 0.55, "val_loss": 0.8, "seconds": 8.0},
        {"epoch": 2, "batch": 2, "batches": 4, "time": now},
    ]
    status = {"state": "running", "pid": os.getpid(), "epochs": 3, "batches": 4, "started_at": now - 10}
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
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


@pytest.mark.parametrize("looks", [1, 2, 3])
def test_a_run_ending_while_the_page_draws_never_leaves_it_saying_one_is_running(dirs, monkeypatch, looks):
    """Issue 15: a completed run showed "A training is already running" beside its result. Here
    the run ends right after the page's `looks`-th look at active_run: the page must agree with
    itself (Start disabled exactly when it says a run trains, never that beside "Completed")."""
    import core.runs
    import ui.run_watch

    lines = [{"epoch": 1, "accuracy": 0.6, "loss": 0.7, "val_accuracy": 0.55, "val_loss": 0.8}]
    status = {"state": "running", "pid": os.getpid(), "epochs": 1, "started_at": time.time() - 5}
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    at = open_page("pages/train.py")
    real, looked = core.runs.active_run, []

    def ends_after_a_look(runs_dir):
        found = real(runs_dir)
        looked.append(found)
        if len(looked) == looks:
            RunDir(run_dir).write_status(state="completed", ended_at=time.time())
        return found

    for module in (core.runs, ui.run_watch):
        monkeypatch.setattr(module, "active_run", ends_after_a_look)
    at.run()
    assert not at.exception
    says_running = f"A training is already running: {run_dir.name}" in texts(at.info)
    assert says_running == button(at, "Start training").disabled
    assert not (says_running and "Completed" in texts(at.success))


def _beside_start(at: AppTest) -> list:
    """The elements in the column beside the Start button, in order."""
    columns = list(at.columns)
    for column, beside in zip(columns, columns[1:], strict=False):
        if [e for e in column.children.values() if getattr(e, "label", None) == "Start training"]:
            return list(beside.children.values())
    raise AssertionError("no Start button")


def test_the_reason_beside_start_is_replaced_in_place_when_the_run_ends(dirs):
    """The browser keeps an element that a rerun does not draw again until the whole page is
    drawn: the "already running" box stayed beside the enabled Start (seen in Chromium) while
    the completed run's charts were drawn. The reason's place always holds one element, so the
    rerun that enables Start replaces it at once."""
    status = {"state": "running", "pid": os.getpid(), "epochs": 1, "started_at": time.time() - 5}
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, [])
    at = open_page("pages/train.py")
    (first, *_) = _beside_start(at)
    assert first.value == f"A training is already running: {run_dir.name}. Stop it or wait."
    RunDir(run_dir).write_status(state="completed", ended_at=time.time())
    at.run()
    assert not button(at, "Start training").disabled
    (first, *_) = _beside_start(at)
    assert first.type == "empty"


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
    fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    first, second = open_page("pages/train.py"), open_page("pages/train.py")  # two browser tabs
    for key in ("accuracy_chart", "loss_chart"):
        assert chart_spec(first, key)["data"] == chart_spec(second, key)["data"]
    assert [t["y"] for t in chart_spec(second, "accuracy_chart")["data"]] == [
        [0.6, 0.7],
        pytest.approx([0.5, 0.6]),
    ]


def test_a_failed_run_shows_its_error(dirs):
    status = {"state": "failed", "error": "dataset folder not found: /nowhere", "started_at": 1.0}
    fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, [])
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


def test_train_page_reattaches_to_the_active_run(with_run, dirs):
    status = {"state": "running", "pid": os.getpid(), "epochs": 2, "started_at": time.time()}
    active = fake_run(dirs.runs, "20200101-000000-mobilenet_v2_0.35-96", status, [])
    at = open_page("pages/train.py", {"train_run": str(with_run)})  # this session started another run
    assert f"Run {active.name}" in texts(at.subheader)
    assert at.get("progress")[0].proto.text.startswith("Start-up: ")


def test_live_view_names_the_phase_between_epochs(dirs):
    status = {"state": "running", "pid": os.getpid(), "epochs": 1, "phase": "computing embeddings (1/2)"}
    fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, [])
    at = open_page("pages/train.py")
    assert at.get("progress")[0].proto.text.startswith("Embedding images: reading the images · about ")


def _saved_config(runs: Path) -> dict:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return json.loads((run_dir / "config.json").read_text())


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
    assert saved.augment.horizontal_flip and head_training_choice(saved)[0] == "cached"


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
    fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
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
    fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    at = open_page("pages/train.py")
    assert at.get("progress")[0].proto.text.startswith("Evaluation: classifying the validation images")


def test_a_completed_features_run_is_shown_as_one_fit_not_as_epochs(dirs):
    lines = [{"epoch": 1, "accuracy": 1.0, "loss": 0.01, "val_accuracy": 0.9, "val_loss": 0.2, "stage": 1}]
    status = {"state": "completed", "epochs": 1, "started_at": 100.0, "ended_at": 112.0}
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2_0.35-96", status, lines)
    (run_dir / "config.json").write_text(json.dumps({"mode": "features", "classifier": "svm"}))
    at = open_page("pages/train.py")
    assert "Completed: support vector machine fitted on the embeddings in 12 s." in texts(at.success)
    # No one-dot curve:
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("accuracy_chart")]
    assert "Epoch" not in [m.label for m in at.metric]
    assert [m.value for m in at.metric if m.label == "Validation accuracy"] == ["0.900"]
    assert "no epochs: on the training images accuracy 1.000" in texts(at.caption)


def test_knob_widgets_take_their_ranges_from_the_config_table(dirs):
    at = open_page("pages/train.py")
    at.radio(key="quick:mode").set_value("finetune").run()
    dropout = at.slider(key="quick:dropout")
    assert (dropout.min, dropout.max) == (0.0, field_limits("dropout").high)
    at.switch_page("pages/data.py").run()
    rotation = at.slider(key="aug_rotation")
    assert (rotation.min, rotation.max) == (0.0, field_limits("augment.rotation").high)
