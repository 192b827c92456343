"""The whole-run progress model: timelines, active durations, rates learned, the estimate."""

import json

import pytest

from core.progress_model import (
    DEFAULT_RATES,
    EMBEDDING,
    EVALUATING,
    STARTING,
    TRAINING,
    close_timeline,
    enter_phase,
    estimate,
    learned_rates,
    merge_rates,
    phase_seconds,
    planned_phases,
    run_duration,
    run_rates,
)

COUNTS = {"train": {"a": 40, "b": 40}, "validation": {"a": 10, "b": 10}}
CACHED = {"mode": "finetune", "head_training": "cached", "epochs": 5, "batch_size": 16, "backbone": "m"}
LIVE = {**CACHED, "head_training": "live"}


def timeline(*segments):
    return [{"phase": p, "start": s, "end": e} for p, s, e in segments]


def test_enter_phase_closes_the_open_segment_and_ignores_the_same_phase():
    line = enter_phase([], STARTING, 0.0)
    line = enter_phase(line, STARTING, 5.0)  # already open: unchanged
    line = enter_phase(line, TRAINING, 10.0)
    assert line == timeline((STARTING, 0.0, 10.0), (TRAINING, 10.0, None))
    assert close_timeline(line, 12.0)[-1]["end"] == 12.0
    # A process that died: its last phase ends with its last record, or where it began if none.
    assert close_timeline(line, None)[-1]["end"] == 10.0


def test_a_resumed_run_counts_active_time_only():
    # Trained 0-100 s, sat stopped for an hour, resumed for 50 s more.
    line = timeline((STARTING, 0, 20), (TRAINING, 20, 100), (STARTING, 3700, 3710), (TRAINING, 3710, 3750))
    status = {"state": "completed", "timeline": line, "started_at": 0, "ended_at": 3750, "updated_at": 3750}
    assert run_duration(status) == pytest.approx(150)
    assert phase_seconds(line, 3750) == {STARTING: 30, TRAINING: 120}


def test_a_running_run_counts_up_to_now_and_an_old_run_uses_its_end_stamps():
    status = {"state": "running", "timeline": timeline((STARTING, 0, 20), (TRAINING, 20, None))}
    assert run_duration(status, now=50) == pytest.approx(50)
    assert run_duration({"started_at": 10, "ended_at": 70}) == 60


def test_embedding_is_planned_only_when_the_base_runs_once_per_image():
    assert planned_phases(CACHED) == [STARTING, EMBEDDING, TRAINING, EVALUATING]
    assert planned_phases(LIVE) == [STARTING, TRAINING, EVALUATING]
    assert planned_phases({"mode": "features"}) == [STARTING, EMBEDDING, TRAINING, EVALUATING]


def test_the_eta_during_start_up_counts_every_phase_still_to_come():
    """The issue's run: 5 epochs took 0.6 s, start-up and evaluation ~20 s each. The old
    estimate counted epochs only; this one must be dominated by the phases around them."""
    rates = {"starting_s": 20, "embed_s_per_image": 0.05, "cached_batch_s": 0.01, "evaluate_s_per_image": 0.5}
    status = {"state": "running", "timeline": timeline((STARTING, 0, None))}
    progress = estimate(status, CACHED, COUNTS, [], [], rates, now=5)
    assert progress.phase == STARTING
    embedding, evaluation = 100 * 0.05, DEFAULT_RATES["evaluate_overhead_s"] + 20 * 0.5
    training = 5 * 5 * 0.01  # 5 epochs of ceil(80 / 16) batches
    assert progress.eta_s == pytest.approx(15 + embedding + training + evaluation)
    assert [p.state for p in progress.phases] == ["current", "todo", "todo", "todo"]
    assert 0 < progress.fraction < 0.25


def test_while_training_the_last_epoch_the_evaluation_is_still_ahead():
    status = {
        "state": "running",
        "epochs": 5,
        "batches": 5,
        "timeline": timeline((STARTING, 0, 20), (EMBEDDING, 20, 25), (TRAINING, 25, None)),
    }
    epochs = [{"epoch": i, "seconds": 0.1} for i in range(1, 5)]
    batches = [{"epoch": 5, "batch": 4, "time": 25.5}]
    rates = {"evaluate_s_per_image": 1.0, "evaluate_overhead_s": 10}
    progress = estimate(status, CACHED, COUNTS, epochs, batches, rates, now=25.5)
    assert progress.eta_s == pytest.approx(0.1 * (1 - 4 / 5) + 10 + 20 * 1.0)
    assert progress.detail == "epoch 5/5 · batch 4/5"
    assert [p.state for p in progress.phases] == ["done", "done", "current", "todo"]


def test_embedding_time_left_comes_from_its_own_rate_once_it_has_one():
    status = {
        "state": "running",
        "timeline": timeline((STARTING, 0, 10), (EMBEDDING, 10, None)),
        "embedded": 25,
        "to_embed": 100,
    }
    progress = estimate(status, CACHED, COUNTS, [], [], {"embed_s_per_image": 99.0}, now=20)
    # 25 images in 10 s: 30 s for the other 75, whatever the rate learned elsewhere says.
    assert progress.eta_s == pytest.approx(30 + progress.phases[2].seconds + progress.phases[3].seconds)
    assert progress.detail == "25/100 images"


def test_a_finished_run_reports_its_phases_done_and_no_eta():
    status = {
        "state": "completed",
        "updated_at": 60,
        "timeline": timeline((STARTING, 0, 20), (TRAINING, 20, 40), (EVALUATING, 40, 60)),
    }
    progress = estimate(status, LIVE, COUNTS, [{"epoch": 1}], [], now=999)
    assert progress.eta_s is None and progress.fraction == 1.0 and not progress.active
    assert [(p.phase, p.state, p.seconds) for p in progress.phases] == [
        (STARTING, "done", 20),
        (TRAINING, "done", 20),
        (EVALUATING, "done", 20),
    ]


def test_run_rates_measure_each_phase():
    status = {
        "state": "completed",
        "updated_at": 100,
        "cache_misses": 100,
        "batches": 5,
        "head_training": "cached",
        "timeline": timeline(
            (STARTING, 0, 20), (EMBEDDING, 20, 30), (TRAINING, 30, 35), (EVALUATING, 35, 55)
        ),
    }
    epochs = [{"epoch": 1, "seconds": 0.5}, {"epoch": 2, "seconds": 0.5}]
    rates = run_rates(status, CACHED, COUNTS, epochs)
    assert rates == pytest.approx(
        {"starting_s": 20, "embed_s_per_image": 0.1, "cached_batch_s": 0.1, "evaluate_s_per_image": 1.0}
    )


def test_merge_rates_prefers_the_same_backbone_and_size_then_falls_back():
    history = [
        ({"backbone": "big", "image_size": 224}, {"embed_s_per_image": 1.0, "starting_s": 30}),
        ({"backbone": "small", "image_size": 160}, {"embed_s_per_image": 0.01, "starting_s": 10}),
    ]
    merged = merge_rates(history, "small", 160)
    assert merged["embed_s_per_image"] == 0.01
    other = merge_rates(history, "medium", 192)
    assert other["embed_s_per_image"] == DEFAULT_RATES["embed_s_per_image"]  # not from another backbone
    assert other["starting_s"] == 20  # start-up hardly depends on it: the median of all


def test_learned_rates_read_completed_runs_only(tmp_path):
    for name, state, starting in (("1", "completed", 7.0), ("2", "failed", 99.0)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"backbone": "m", "image_size": 96}))
        (run / "status.json").write_text(json.dumps({"state": state, "rates": {"starting_s": starting}}))
    assert learned_rates(tmp_path, "m", 96)["starting_s"] == 7.0


def test_the_first_epoch_is_timed_from_its_batches():
    status = {"state": "running", "epochs": 2, "batches": 10, "timeline": timeline((TRAINING, 0, None))}
    batches = [{"epoch": 1, "batch": 2, "time": 10.0}, {"epoch": 1, "batch": 4, "time": 12.0}]
    no_evaluation = {"evaluate_s_per_image": 0, "evaluate_overhead_s": 0}
    progress = estimate(status, LIVE, COUNTS, [], batches, no_evaluation, now=12)
    assert progress.eta_s == pytest.approx(6 + 10)  # 1 s per batch: 6 left in this epoch, 10 in the next


@pytest.mark.parametrize(
    "text, phase", [("computing embeddings (1/2): 3/9 images", EMBEDDING), ("evaluating", EVALUATING)]
)
def test_a_run_without_a_timeline_is_placed_by_its_phase_text(text, phase):
    progress = estimate({"state": "running", "phase": text}, CACHED, COUNTS, [{"epoch": 1}], [], now=0)
    assert progress.phase == phase and progress.eta_s > 0


def test_a_failed_run_has_no_estimate():
    progress = estimate({"state": "failed", "error": "boom"}, LIVE, COUNTS, [], [], now=0)
    assert (progress.eta_s, progress.fraction, progress.active) == (None, 0.0, False)


def test_a_real_run_records_its_phases_and_rates(trained_run):
    """The training process writes the timeline the estimate reads, and its rates at the end."""
    status = json.loads((trained_run / "status.json").read_text())
    phases = [segment["phase"] for segment in status["timeline"]]
    assert phases == [STARTING, EMBEDDING, TRAINING, EVALUATING]  # cached embeddings: 4 phases
    assert all(segment["end"] >= segment["start"] for segment in status["timeline"])
    assert run_duration(status) <= status["ended_at"] - status["started_at"] + 1
    assert {"starting_s", "cached_batch_s", "evaluate_s_per_image"} <= set(status["rates"])
    # Embeddings read from the cache measure nothing about computing one.
    assert ("embed_s_per_image" in status["rates"]) == bool(status["cache_misses"])


def test_feature_extraction_fits_a_classifier_rather_than_training_epochs():
    status = {
        "state": "running",
        "timeline": timeline((STARTING, 0, 10), (EMBEDDING, 10, 20), (TRAINING, 20, None)),
    }
    progress = estimate(status, {"mode": "features"}, COUNTS, [], [], now=21)
    assert (progress.label, progress.detail) == (
        "Fitting the classifier",
        "fitting the classifier on the embeddings",
    )
