"""The Checkpoints page: listing, comparing and deleting runs, evaluation, resume and export.

Fixtures `dirs`, `with_run`, `fake_trainer` and `fresh_caches` are in conftest.py; helpers in
tests/page_helpers.py.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from core.export import export_name
from core.launch import export_job, overlays_job
from tests.helpers import wait_for
from tests.page_helpers import (
    button,
    chart_spec,
    fake_run,
    open_page,
    texts,
)


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


def test_grad_cam_overlays_left_by_the_training_are_drawn_in_the_background_when_asked(with_run):
    evaluation = json.loads((with_run / "evaluation.json").read_text())["validation"]
    entries = evaluation["misclassified"] + evaluation["top_losses"]
    assert evaluation["overlays_pending"] and not any(e["gradcam_thumbnail"] for e in entries)
    at = open_page("pages/checkpoints.py")
    shown = len(at.image)
    at.toggle(key="gallery_gradcam").set_value(True).run()
    assert not at.exception and len(at.image) == shown
    assert "Drawing where the model looked" in texts(at.info)
    job = wait_for(lambda: (j := overlays_job(with_run, "validation")) and not j.running and j)
    assert job.error is None
    at.run()  # what the polling fragment does once the drawing has ended
    assert not at.exception and len(at.image) == 2 * shown
    assert "Grad-CAM: where it looked" in [c for image in at.image for c in image.captions]
    assert "Drawing" not in texts(at.info)


def test_overlays_that_could_not_be_drawn_say_why_and_can_be_drawn_again(with_run, monkeypatch):
    from core.launch import BackgroundJob

    failed = BackgroundJob(running=False, started_at=time.time(), error="the checkpoint is unreadable")
    started = []
    monkeypatch.setattr("ui.evaluation_photos.overlays_job", lambda run_dir, split: failed)
    monkeypatch.setattr("ui.evaluation_photos.start_overlays", lambda run_dir, split: started.append(split))
    at = open_page("pages/checkpoints.py")
    at.toggle(key="gallery_gradcam").set_value(True).run()
    assert not at.exception and not started  # a failed drawing is not retried behind the user's back
    assert "The Grad-CAM overlays could not be drawn: the checkpoint is unreadable" in texts(at.warning)
    button(at, "Draw them again").click().run()
    assert not at.exception and started == ["validation"]


def test_two_visitors_asking_for_the_overlays_at_once_both_watch_one_drawing(with_run, monkeypatch):
    from core.launch import BackgroundJob
    from core.runs import RunError

    jobs = iter([None, BackgroundJob(running=True, started_at=time.time(), error=None)])
    last = {}

    def overlays_job(run_dir, split):  # none when this page looked, one running right after
        last["job"] = next(jobs, last.get("job"))
        return last["job"]

    def already_started(run_dir, split):
        raise RunError("the drawing of the Grad-CAM overlays is already running")

    monkeypatch.setattr("ui.evaluation_photos.overlays_job", overlays_job)
    monkeypatch.setattr("ui.evaluation_photos.start_overlays", already_started)
    at = open_page("pages/checkpoints.py")
    at.toggle(key="gallery_gradcam").set_value(True).run()
    assert not at.exception and not at.error
    assert "Drawing where the model looked" in texts(at.info)


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
    busy = fake_run(dirs.runs, "20200101-000000-mobilenet_v2_0.35-96", status, [])
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


KERAS, INT8 = "Keras (.keras)", "TFLite, int8 (a quarter of the size; refused if it disagrees)"


def _wait_for_export(run_dir: Path, fmt: str, quantize: str | None = None) -> None:
    """Until the background export process has ended (whatever it took)."""
    deadline = time.monotonic() + 600
    while (job := export_job(run_dir, fmt, quantize)) and job.running:
        assert time.monotonic() < deadline, "the export process never ended"
        time.sleep(0.2)


def _zip_buttons(at) -> list:
    return [b for b in at.get("download_button") if "zip" in str(b.proto.label).lower()]


def test_export_a_run_as_a_verified_zip_to_download(with_run):
    at = open_page("pages/checkpoints.py")
    at.selectbox(key=f"export_format_{with_run.name}").set_value(KERAS).run()
    button(at, "Export and verify").click().run()
    assert not at.exception and not at.error
    _wait_for_export(with_run, "keras")
    at.run()
    assert not at.exception and not at.error
    assert "agreement 100.0%" in texts(at.success)
    [archive] = (with_run / "exports").glob("*.zip")
    names = __import__("zipfile").ZipFile(archive).namelist()
    assert any(n.endswith("model.keras") for n in names) and any(n.endswith("labels.json") for n in names)
    assert _zip_buttons(at)
    # Issue 15: a result is shown for its own format only, and is back when the format is.
    at.selectbox(key=f"export_format_{with_run.name}").set_value(INT8).run()
    assert "agreement" not in texts(at.success) and not _zip_buttons(at)
    at.selectbox(key=f"export_format_{with_run.name}").set_value(KERAS).run()
    assert "agreement 100.0%" in texts(at.success) and _zip_buttons(at)


def _publish_fake_export(run_dir: Path, fmt: str, quantize: str | None) -> None:
    """What `python -m core.export` leaves in the exports folder, written by hand (no TensorFlow)."""
    name = export_name(run_dir, fmt, quantize)
    (run_dir / "exports" / name).mkdir(parents=True)
    record = {"artefact": "model.tflite", "agreement": 1.0, "max_prob_diff": 1e-6, "n_images": 4,
              "size_bytes": 2_000_000, "format": fmt, "quantize": quantize}  # fmt: skip
    (run_dir / "exports" / name / "export.json").write_text(json.dumps(record))
    (run_dir / "exports" / f"{name}.zip").write_bytes(b"zip")


def test_an_export_result_disappears_when_the_format_changes(with_run):
    """Issue 15: after a float32 export, choosing int8 must not show float32's result or zip."""
    _publish_fake_export(with_run, "tflite", None)
    at = open_page("pages/checkpoints.py")
    at.selectbox(key=f"export_format_{with_run.name}").set_value("TFLite, float32").run()
    assert "tflite-float32: agreement 100.0% on 4 validation images" in texts(at.success)
    assert len(_zip_buttons(at)) == 1
    at.selectbox(key=f"export_format_{with_run.name}").set_value(INT8).run()
    assert "tflite-float32" not in texts(at.success) and not _zip_buttons(at)


GATED_REFUSAL = """import pathlib, sys, time
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.05)
sys.stderr.write("some warning\\nerror: verification failed: agrees on 97.0%\\n")
sys.exit(2)
"""


def test_the_page_answers_while_an_export_runs_then_shows_its_error(with_run, tmp_path, monkeypatch):
    """Issue 15: the export runs in the background: no page run waits for it, no stale download
    button is left greyed out meanwhile, and a format change made meanwhile loses nothing."""
    gate, popen = tmp_path / "go", subprocess.Popen

    def gated_export(command, *args, **kwargs):  # a `core.export` that ends when the test says
        if "core.export" not in command:
            return popen(command, *args, **kwargs)
        assert command[1:] == ["-m", "core.export", "--run", str(with_run), "--format", "keras"]
        return popen([sys.executable, "-c", GATED_REFUSAL, str(gate)], *args, **kwargs)

    _publish_fake_export(with_run, "keras", None)  # an earlier export of the same format
    at = open_page("pages/checkpoints.py")
    at.selectbox(key=f"export_format_{with_run.name}").set_value(KERAS).run()
    assert _zip_buttons(at)
    monkeypatch.setattr(subprocess, "Popen", gated_export)
    button(at, "Export and verify").click().run()
    assert not at.exception and not at.error
    assert f"Exporting {with_run.name} as {KERAS}" in texts(at.info)
    assert button(at, "Export and verify").disabled and not _zip_buttons(at)  # being replaced
    at.selectbox(key=f"export_format_{with_run.name}").set_value(INT8).run()  # answered at once
    assert "Exporting" not in texts(at.info) and not button(at, "Export and verify").disabled
    at.selectbox(key=f"export_format_{with_run.name}").set_value(KERAS).run()
    assert "Exporting" in texts(at.info)
    gate.touch()
    _wait_for_export(with_run, "keras")
    at.run()
    assert texts(at.error) == "Cannot export: verification failed: agrees on 97.0%"
    assert _zip_buttons(at)  # nothing was written: the earlier export is still there


def test_demo_mode_turns_deleting_off(with_run, monkeypatch):
    monkeypatch.setenv("TLS_DEMO_MODE", "1")
    at = open_page("pages/checkpoints.py")
    assert "turned off in this demo" in texts(at.info)
    assert not [b for b in at.button if b.label == "Delete run"]
    assert with_run.is_dir()
