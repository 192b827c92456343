"""RunDir: one type owns a run folder's layout, and every reader of it is total.

A file of the wrong shape makes a *broken* run: listed with the reason, deletable, shown by
every page without an exception, and one `error:` line (exit 2) from every CLI.
"""

import json
import shutil
from pathlib import Path

import pytest

from core.runs import (
    BROKEN,
    COMPLETED,
    STOPPED,
    RunDir,
    RunError,
    delete_run,
    list_runs,
)
from tests.helpers import run_cli, write_image
from tests.page_helpers import PAGES, open_page, texts

# (file, content, the reason the run is broken, or None when the run is merely degraded)
BAD_FILES = [
    ("status.json", '"running"', "status.json is not a JSON object"),
    ("status.json", '{"state": "completed", "started_at": "yesterday"}', "started_at is not a number"),
    ("status.json", '{"state": ["completed"]}', "state is not a word"),
    ("status.json", '{"state": "running", "pid": "123"}', "pid is not a number"),
    ("config.json", "[1, 2]", "config.json is not a JSON object"),
    ("config.json", "{half", "config.json is not a JSON object"),
    ("labels.json", '{"a": 1}', "labels.json is not a list of class names"),
    ("labels.json", "[1, 2]", "labels.json is not a list of class names"),
]


def _run_with(root: Path, trained_run: Path, name: str, content: str) -> Path:
    run_dir = Path(shutil.copytree(trained_run, root / trained_run.name, symlinks=True))
    (run_dir / name).write_text(content)
    return run_dir


def test_the_layout_names_every_file(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.config_file == tmp_path / "r" / "config.json"
    assert run.checkpoint("last") == tmp_path / "r" / "checkpoints" / "last.keras"
    assert run.best_record_file == tmp_path / "r" / "checkpoints" / "best.json"
    assert (run.split_dir, run.stop_file) == (tmp_path / "r" / "split", tmp_path / "r" / "STOP")


def test_a_thumbnail_is_a_file_inside_the_run_folder(tmp_path):
    run = RunDir(tmp_path / "r")
    run.evaluation_dir.mkdir(parents=True)
    (run.evaluation_dir / "a.png").write_bytes(b"png")
    (tmp_path / "outside.png").write_bytes(b"png")
    assert run.thumbnail("evaluation/a.png") == (run.evaluation_dir / "a.png").resolve()
    assert run.thumbnail("evaluation/missing.png") is None and run.thumbnail(None) is None
    assert run.thumbnail("../outside.png") is None  # a hand-edited record cannot point outside
    assert run.thumbnail(str(tmp_path / "outside.png")) is None


@pytest.mark.parametrize("name, content, reason", BAD_FILES)
def test_a_file_of_the_wrong_shape_is_a_broken_run_that_can_be_deleted(
    tmp_path, trained_run, name, content, reason
):
    run_dir = _run_with(tmp_path, trained_run, name, content)
    (summary,) = list_runs(tmp_path)
    assert summary.state == BROKEN and reason in summary.error
    assert RunDir(run_dir).resume_refusal()  # never resumable
    delete_run(run_dir)
    assert not run_dir.exists()


def test_values_that_are_not_numbers_are_left_out_of_the_metrics(tmp_path, trained_run):
    run_dir = Path(shutil.copytree(trained_run, tmp_path / "r"))
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "val_accuracy": "0.99", "loss": 0.1}\n["not", "a", "record"]\n')
        handle.write('{"epoch": "4", "val_accuracy": 1.0}\n')
    epochs, _ = RunDir(run_dir).metrics()
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert "val_accuracy" not in epochs[-1] and epochs[-1]["loss"] == 0.1
    summary = RunDir(run_dir).summary()
    assert summary.state == COMPLETED and summary.epochs_done == 3
    assert summary.best_val_accuracy == max(e["val_accuracy"] for e in epochs[:2])


def test_resume_refusal_is_one_rule(tmp_path, trained_run):
    run = RunDir(shutil.copytree(trained_run, tmp_path / "r"))
    assert "only a stopped, interrupted or failed run can resume" in run.resume_refusal()
    run.write_status(state=STOPPED)
    assert run.resume_refusal() is None
    run.checkpoint("last").unlink()
    assert "saved no checkpoint" in run.resume_refusal()
    config = json.loads(run.config_file.read_text())
    run.config_file.write_text(json.dumps({**config, "mode": "features"}))
    assert "nothing to resume" in run.resume_refusal()


def test_train_config_of_a_broken_run_is_a_one_line_run_error(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(RunError, match="has no config.json"):
        run.train_config()
    run.config_file.write_text("[1, 2]")
    with pytest.raises(RunError, match="config.json is unusable"):
        run.train_config()


@pytest.mark.parametrize("name, content", [("config.json", "[1, 2]"), ("labels.json", '{"a": 1}')])
@pytest.mark.parametrize(
    "command",
    [
        ["core.predict", "--run", "{run}", "{image}"],
        ["core.evaluate", "--run", "{run}"],
        ["core.export", "--run", "{run}", "--format", "keras"],
        ["core.train", "--resume", "{run}"],
    ],
    ids=["predict", "evaluate", "export", "resume"],
)
def test_every_cli_answers_a_broken_run_with_one_error_line(tmp_path, trained_run, name, content, command):
    run_dir = _run_with(tmp_path, trained_run, name, content)
    if command[0] == "core.train":
        RunDir(run_dir).write_status(state=STOPPED)
    image = write_image(tmp_path / "red.png", (220, 40, 40))
    result = run_cli(*[arg.format(run=run_dir, image=image) for arg in command])
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    assert name in line


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_broken_run_without_an_exception(dirs, trained_run, page):
    for number, (name, content, _) in enumerate(BAD_FILES[:3] + BAD_FILES[4:5]):
        run_dir = _run_with(dirs.runs / str(number), trained_run, name, content)
        shutil.move(run_dir, dirs.runs / f"{trained_run.name}-{number}")
        shutil.rmtree(dirs.runs / str(number))
    at = open_page(page)
    assert not at.exception


def test_the_checkpoints_page_names_the_problem_and_deletes_the_run(dirs, trained_run):
    run_dir = _run_with(dirs.runs, trained_run, "status.json", '"running"')
    at = open_page("pages/checkpoints.py")
    assert "broken: status.json is not a JSON object" in texts(at.error)
    at.checkbox(key=f"confirm_{run_dir.name}").check().run()
    [delete] = [b for b in at.button if b.label == "Delete run"]
    delete.click().run()
    assert not run_dir.exists() and not at.exception
