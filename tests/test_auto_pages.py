"""Auto mode on the dashboard: the live leaderboard on Train, and per run on Checkpoints with
the learning curve and the fine-tuning decision (AppTest on hand-written auto.json files)."""

from __future__ import annotations

import json
import os
import time

from core.auto import AUTO_FILE, Candidate
from core.plots import leaderboard_figure, learning_curve_figure
from tests.page_helpers import chart_spec, fake_run, open_page, texts

TOP = Candidate("logreg", None, {"C": 0.1}, 0.93, 0.02, [0.93] * 5, 1.2).to_dict()
EARLY = Candidate("logreg", "block_13_expand_relu", {"C": 1.0}, 0.96, 0.01, [0.96] * 5, 0.8).to_dict()
KNN = Candidate("knn", None, {"k": 5}, 0.88, 0.03, [0.88] * 5, 0.1).to_dict()
CURVE = {
    "fractions": [0.25, 0.5, 0.75, 1.0],
    "images": [20.0, 40.0, 60.0, 80.0],
    "mean": [0.8, 0.88, 0.93, 0.96],
    "std": [0.05, 0.03, 0.02, 0.01],
    "reading": "Still rising: more photos per class should help.",
}


def test_leaderboard_figure_puts_the_best_on_top_and_colours_the_winner():
    fig = leaderboard_figure([EARLY, TOP, KNN], EARLY["name"])
    (bars,) = fig.data
    assert list(bars.y) == [KNN["name"], TOP["name"], EARLY["name"]]  # the first bar is drawn lowest
    assert list(bars.error_x.array) == [0.03, 0.02, 0.01]
    assert bars.marker.color[-1] != bars.marker.color[0]


def test_learning_curve_figure_plots_score_against_images():
    (line,) = learning_curve_figure(CURVE).data
    assert list(line.x) == CURVE["images"] and list(line.y) == CURVE["mean"]
    assert list(line.error_y.array) == CURVE["std"]


def test_train_page_shows_the_leaderboard_live_while_candidates_are_tried(dirs):
    trying = "k nearest neighbours @ top"
    status = {"state": "running", "pid": os.getpid(), "epochs": 1, "started_at": time.time(),
              "phase": f"auto: trying {trying}", "candidate": trying}  # fmt: skip
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2-224", status, [])
    (run_dir / "config.json").write_text(json.dumps({"mode": "auto", "backbone": "mobilenet_v2"}))
    auto = {"state": "selecting", "candidates": [EARLY, TOP], "trying": "k nearest neighbours @ top"}
    (run_dir / AUTO_FILE).write_text(json.dumps(auto))
    at = open_page("pages/train.py")
    assert at.get("progress")[0].proto.text.startswith("Trying candidates: trying k nearest neighbours @ top")
    assert "Trying k nearest neighbours @ top..." in texts(at.caption)
    spec = chart_spec(at, "live_leaderboard")
    assert spec["data"][0]["y"] == [TOP["name"], EARLY["name"]]
    assert "Kind: **auto**" in texts(at.caption)


def test_checkpoints_shows_an_auto_runs_choice_learning_curve_and_fine_tuning_decision(dirs):
    status = {
        "state": "completed",
        "epochs": 1,
        "started_at": 100.0,
        "ended_at": 130.0,
        "winner": EARLY["name"],
    }
    lines = [{"epoch": 1, "accuracy": 1.0, "loss": 0.1, "val_accuracy": 0.95, "val_loss": 0.2, "stage": 1}]
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2-224", status, lines)
    (run_dir / "config.json").write_text(json.dumps({"mode": "auto", "backbone": "mobilenet_v2"}))
    auto = {
        "state": "done",
        "candidates": [EARLY, TOP, KNN],
        "winner": EARLY,
        "reason": f"{EARLY['name']} has the best 5-fold cross-validated macro-F1 on the training split.",
        "fine_tune": {"try": False, "reason": "the rarest class has only 40 images", "evidence": {}},
        "learning_curve": CURVE,
    }
    (run_dir / AUTO_FILE).write_text(json.dumps(auto))
    at = open_page("pages/checkpoints.py")
    assert not at.exception
    assert f"**Chosen:** {auto['reason']}" in texts(at.markdown)
    board = chart_spec(at, "run_leaderboard")
    assert board["data"][0]["y"][-1] == EARLY["name"]
    curve = chart_spec(at, "run_learning_curve")
    assert curve["data"][0]["y"] == CURVE["mean"]
    assert CURVE["reading"] in texts(at.caption)
    assert "Fine-tuning the backbone: skipped: the rarest class has only 40 images." in texts(at.caption)
    table = [d for d in at.dataframe if "CV macro-F1" in d.value.columns][0].value
    assert list(table["CV macro-F1"]) == ["0.960 ± 0.010", "0.930 ± 0.020", "0.880 ± 0.030"]
    assert table["candidate"][0].endswith("← chosen")
    train = open_page("pages/train.py")
    assert f"Completed: {EARLY['name']} chosen and fitted in 30 s." in texts(train.success)


def test_a_hand_edited_auto_json_is_said_on_both_pages_not_a_traceback(dirs):
    """A field of the wrong type (here the fine-tuning trial's probe) is named; both pages render."""
    status = {"state": "completed", "epochs": 1, "started_at": 100.0, "ended_at": 130.0}
    lines = [{"epoch": 1, "accuracy": 1.0, "loss": 0.1, "val_accuracy": 0.95, "val_loss": 0.2, "stage": 1}]
    run_dir = fake_run(dirs.runs, "20260101-000000-mobilenet_v2-224", status, lines)
    (run_dir / "config.json").write_text(json.dumps({"mode": "auto", "backbone": "mobilenet_v2"}))
    trial = {"layers_unfrozen": 35, "holdout_images": 144, "kept": True, "averaged_with": "oops",
             "holdout_macro_f1": {"fine_tuned": 0.93, EARLY["name"]: 0.91}}  # fmt: skip
    auto = {"state": "done", "candidates": [EARLY, TOP], "winner": EARLY, "reason": "edited",
            "fine_tune": {"try": True, "reason": "forced", "evidence": {}, "trial": trial}}  # fmt: skip
    (run_dir / AUTO_FILE).write_text(json.dumps(auto))
    for page in ("pages/checkpoints.py", "pages/train.py"):
        at = open_page(page)
        assert not at.exception
        assert f"This run's {AUTO_FILE} is not as auto mode writes it (TypeError" in texts(at.warning)
