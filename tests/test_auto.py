"""Auto mode: selection on synthetic embeddings where the right answer is known, folds with
a rare class, the fine-tuning decision, the learning curve, the multi-layer embedding cache,
and an end-to-end run that is an ordinary run (its checkpoint predicts what it reported)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.auto import (
    AUTO_FILE,
    TIE,
    Candidate,
    CrossValidationError,
    KerasHead,
    curve_reading,
    cv_folds,
    fine_tune_decision,
    leaderboard_rows,
    learning_curve,
    rank,
    select,
    stage_ends,
)
from tests.helpers import make_color_dataset


def _blobs(n_per_class: int, dim: int, separation: float, classes: int = 3, seed: int = 0):
    """Gaussian classes whose means differ by `separation` along random directions (0: pure noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * separation
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


def _candidate(classifier: str, layer, mean: float, std: float = 0.01) -> Candidate:
    return Candidate(classifier, layer, {}, mean, std, [mean] * 5, 0.1)


def test_stage_ends_are_the_last_layer_before_each_resolution_drop_ignoring_padding():
    shapes = [
        ("conv1", (None, 16, 16, 8)),
        ("block_1_expand", (None, 16, 16, 24)),
        ("block_1_pad", (None, 17, 17, 24)),  # grows the map: not an end
        ("block_1_depthwise", (None, 8, 8, 24)),
        ("block_2_add", (None, 8, 8, 24)),
        ("block_3_depthwise", (None, 4, 4, 32)),
        ("top", (None, 4, 4, 64)),
        ("pool", (None, 64)),  # not a feature map
    ]
    assert stage_ends(shapes) == ["block_1_expand", "block_2_add"]


def test_candidate_layers_of_mobilenet_v2_are_the_ends_of_the_two_stages_before_the_last():
    from core.auto import candidate_layers
    from core.backbones import build_backbone

    base = build_backbone("mobilenet_v2_0.35", 96, None)
    layers = candidate_layers(base)
    assert layers == ["block_6_expand_relu", "block_13_expand_relu", None]
    sizes = [base.get_layer(name).output.shape[1] for name in layers[:-1]] + [base.output.shape[1]]
    assert sizes == [12, 6, 3]  # each a stage further down


def test_folds_are_bounded_by_the_rarest_class_and_each_holds_it():
    y = np.array([0] * 20 + [1] * 20 + [2] * 3)
    folds = cv_folds(y)
    assert len(folds) == 3
    for train, test in folds:
        assert 2 in y[test] and 2 in y[train]
        assert len(set(train) & set(test)) == 0
    assert len(cv_folds(np.array([0] * 30 + [1] * 30))) == 5
    assert len(cv_folds(np.array([0] * 500 + [1] * 500))) == 3  # a large split: fewer, costlier folds


def test_a_class_with_one_training_image_cannot_be_cross_validated():
    with pytest.raises(CrossValidationError, match="at least 2 training images"):
        cv_folds(np.array([0] * 10 + [1]))


def test_selection_finds_the_layer_that_carries_the_signal():
    """The top layer is noise, an earlier one separates the classes: the earlier one wins."""
    x_good, y = _blobs(15, 16, 2.0, seed=1)
    x_noise, _ = _blobs(15, 32, 0.0, seed=2)
    folds = cv_folds(y)
    ranked, why = select({"block_5": x_good, None: x_noise}, y, 3, folds, classifiers=("logreg", "knn"))
    assert ranked[0].layer == "block_5"
    assert ranked[0].cv_mean > 0.9
    top = max(c.cv_mean for c in ranked if c.layer is None)
    assert top < 0.7  # noise: about chance (1/3)
    assert "block_5" in why and "cross-validated macro-F1" in why


def test_selection_prefers_knn_where_no_linear_boundary_exists():
    """Two classes on concentric rings: no line separates them, neighbours do."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 80)
    radius = np.repeat([1.0, 3.0], 40) + rng.normal(0, 0.1, 80)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).astype(np.float32)
    y = np.repeat([0, 1], 40)
    ranked, _ = select({None: x}, y, 2, cv_folds(y), classifiers=("logreg", "knn"))
    assert ranked[0].classifier == "knn"
    assert ranked[0].cv_mean > 0.95
    logreg = next(c for c in ranked if c.classifier == "logreg")
    assert logreg.cv_mean < 0.8


def test_a_perfect_candidate_ends_the_search():
    x, y = _blobs(10, 8, 8.0)
    calls = []
    ranked, why = select({"early": x, None: x}, y, 3, cv_folds(y), on_candidate=lambda n, d: calls.append(n))
    assert len(ranked) == 1 and ranked[0].cv_mean == 1.0
    assert calls == ["logistic regression @ top"]
    assert "no other candidate was tried" in why


def test_a_candidate_within_one_standard_error_of_perfect_is_unbeatable():
    from core.auto import unbeatable

    assert unbeatable(_candidate("logreg", None, 1.0, 0.0))
    assert unbeatable(_candidate("logreg", None, 0.98, 0.05))  # 0.02 <= 0.05 / sqrt(5)
    assert not unbeatable(_candidate("logreg", None, 0.97, 0.02))


def test_ties_go_to_the_simpler_candidate_and_a_clear_win_to_the_better():
    tied = rank(
        [
            _candidate("knn", None, 0.951),
            _candidate("logreg", "early", 0.95),
            _candidate("logreg", None, 0.95),
        ]
    )
    assert [(c.classifier, c.layer) for c in tied] == [("logreg", None), ("logreg", "early"), ("knn", None)]
    clear = rank([_candidate("logreg", None, 0.90), _candidate("knn", None, 0.90 + 2 * TIE)])
    assert clear[0].classifier == "knn"


def test_the_keras_head_converges_on_few_images_and_folds_its_standardisation():
    """30 images: a fixed number of steps, not of epochs; the exported Dense weights work on raw
    embeddings exactly as the head does on standardised ones."""
    x, y = _blobs(10, 64, 1.0, seed=3)
    x = x * 5 + 3  # far from standardised, as real embeddings are
    head = KerasHead(3, dropout=0.2, batch_size=16).fit(x, y)
    assert np.mean(head.predict(x) == y) == 1.0
    ((kernel, bias),) = head.dense_weights()
    logits = x @ kernel + bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), head.predict_proba(x), atol=1e-4)
    refit = head.fit(x[::-1].copy(), y[::-1].copy())  # a second fold reuses the model from scratch
    assert np.mean(refit.predict(x) == y) == 1.0


def test_fine_tuning_is_tried_only_on_evidence():
    earlier_wins = [_candidate("logreg", "mid", 0.89), _candidate("logreg", None, 0.85)]
    decision = fine_tune_decision(earlier_wins, 150)
    assert decision["try"] and "beats the top by 0.040" in decision["reason"]
    assert decision["evidence"]["earlier_minus_top"] == pytest.approx(0.04)
    assert not fine_tune_decision([_candidate("logreg", None, 0.995)], 5000)["try"]  # no room
    top_wins = [_candidate("logreg", None, 0.90), _candidate("logreg", "mid", 0.89)]
    assert not fine_tune_decision(top_wins, 40)["try"]  # few images, top as good
    many = fine_tune_decision(top_wins, 600)
    assert many["try"] and "600 images" in many["reason"]


def test_the_learning_curve_rises_where_more_data_helps_and_reads_so():
    x, y = _blobs(60, 40, 0.35, classes=2, seed=4)  # hard: more images keep helping
    candidate = Candidate("logreg", None, {"C": 1.0}, 0, 0, [], 0)
    curve = learning_curve(candidate, x, y, cv_folds(y), 2)
    assert curve["fractions"] == [0.25, 0.5, 0.75, 1.0]
    assert curve["images"][0] < curve["images"][-1]
    assert curve["mean"][-1] > curve["mean"][0]
    assert curve_reading([0.7, 0.8, 0.85, 0.9], [10, 20, 30, 40]).startswith("Still rising")
    assert curve_reading([0.9, 0.95, 0.96, 0.961], [10, 20, 30, 40]).startswith("Flat")


def test_leaderboard_rows_mark_the_winner():
    auto = {
        "candidates": [_candidate("logreg", None, 0.9).to_dict(), _candidate("knn", "mid", 0.8).to_dict()],
        "winner": _candidate("logreg", None, 0.9).to_dict(),
    }
    rows = leaderboard_rows(auto)
    assert rows[0]["candidate"].endswith("← chosen") and rows[0]["CV macro-F1"] == "0.900 ± 0.010"
    assert rows[1]["layer"] == "mid" and "chosen" not in rows[1]["candidate"]


def test_the_multi_output_extractor_caches_every_layer_once(tmp_path):
    """One pass stores each layer under its own key; a second run reads them all."""
    import dataclasses

    from core.auto import layer_extractor
    from core.backbones import build_backbone
    from core.config import TrainConfig
    from core.embeddings import CacheStats, EmbeddingCache, embed_paths, extractor_key

    data = make_color_dataset(tmp_path / "d", per_class=3)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    config = TrainConfig(data=str(data), backbone="mobilenet_v2_0.35", weights=None, image_size=32)
    base = build_backbone(config.backbone, 32, None)
    layers = ["block_6_expand_relu", None]
    keys = [extractor_key(dataclasses.replace(config, feature_layer=layer)) for layer in layers]
    cache, first, second = EmbeddingCache(tmp_path / "cache"), CacheStats(), CacheStats()
    arrays = embed_paths(layer_extractor(config, base, layers), config, paths, cache, stats=first, keys=keys)
    assert [a.shape for a in arrays] == [
        (6, base.get_layer(layers[0]).output.shape[-1]),
        (6, base.output.shape[-1]),
    ]
    assert (first.hits, first.misses) == (0, 6)
    assert {p.parts[-4] for p in cache.files()} == set(keys)  # one entry per layer per image
    again = embed_paths(None, config, paths, cache, stats=second, keys=keys)  # no model needed
    assert (second.hits, second.misses) == (6, 0)
    for a, b in zip(arrays, again):
        np.testing.assert_array_equal(a, b)


def test_the_default_run_is_auto_and_its_checkpoint_predicts_what_it_reported(tmp_path, capsys, monkeypatch):
    """No --mode: auto. auto.json lists every candidate and the winner; the saved best.keras
    (an ordinary run) gives the validation accuracy the run recorded."""
    from core.train import main as train_main

    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache")
    data = make_color_dataset(tmp_path / "colors", per_class=10)
    args = ["--data", str(data), "--runs-dir", str(tmp_path / "runs"), "--backbone", "mobilenet_v2_0.35",
            "--weights", "none", "--image-size", "32", "--batch-size", "8"]  # fmt: skip
    assert train_main(args) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((run / "config.json").read_text())
    assert config["mode"] == "auto"
    auto = json.loads((run / AUTO_FILE).read_text())
    assert auto["state"] == "done" and auto["candidates"] and auto["winner"]["name"] in auto["reason"]
    assert auto["layers"][-1] == "top" and len(auto["layers"]) == 3
    assert {"try", "reason", "evidence"} <= set(auto["fine_tune"])
    assert len(auto["learning_curve"]["mean"]) == 4
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["winner"] == auto["winner"]["name"]
    recorded = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["val_accuracy"]
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["validation"]["accuracy"] == pytest.approx(recorded)


def _forced_trial(tmp_path, capsys, monkeypatch, batch_size: int, epochs: int) -> tuple[Path, dict]:
    """A default (auto) run on 10 red and 10 blue images (16 for training) whose fine-tuning
    decision is forced to "try": (run directory, auto.json)."""
    import core.auto
    from core.train import main as train_main

    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(
        core.auto, "fine_tune_decision", lambda ranked, n: {"try": True, "reason": "forced", "evidence": {}}
    )
    data = make_color_dataset(tmp_path / "colors", per_class=10)
    args = ["--data", str(data), "--runs-dir", str(tmp_path / "runs"), "--backbone", "mobilenet_v2_0.35",
            "--weights", "none", "--image-size", "32", "--batch-size", str(batch_size)]  # fmt: skip
    assert train_main([*args, "--fine-tune-epochs", str(epochs)]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    return run, json.loads((run / AUTO_FILE).read_text())


def test_the_fine_tuning_trial_is_judged_on_held_out_training_images(tmp_path, capsys, monkeypatch):
    """When the evidence says fine-tuning is worth trying, stage 2 runs on 80% of the training
    split and is kept only if it beats the embedding winner on the other 20%; either way the
    saved checkpoint gives the validation accuracy the run recorded."""
    run, auto = _forced_trial(tmp_path, capsys, monkeypatch, batch_size=8, epochs=1)
    trial = auto["fine_tune"]["trial"]
    assert trial["holdout_images"] == 4 and trial["layers_unfrozen"] > 0  # 20% of 16 training images
    assert set(trial["holdout_macro_f1"]) == {"fine_tuned", auto["candidates"][0]["name"]}
    probe = trial["averaged_with"]  # the fine-tuned model averaged with the best linear probe below it
    assert probe["name"].startswith("logistic regression") and probe["name"].endswith(trial["from_layer"])
    assert 0 <= probe["holdout_macro_f1"] <= 1
    trial_epochs = [
        json.loads(line) for line in (run / "finetune_trial" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e["stage"] for e in trial_epochs if "batch" not in e] == [2]
    assert auto["winner"]["name"].startswith("fine-tuned") == trial["kept"]
    assert (run / "checkpoints" / "classifier.joblib").exists() is False or not trial["kept"]
    recorded = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["val_accuracy"]
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["validation"]["accuracy"] == pytest.approx(recorded)


def test_a_fine_tuning_trial_that_wins_is_done_again_on_the_whole_training_split(
    tmp_path, capsys, monkeypatch
):
    """The trial (80% of the training split) only decides; the kept model is fine-tuned again on
    all of it for the trial's best number of epochs, as the embedding winner is refitted on all."""
    import core.auto

    monkeypatch.setattr(core.auto, "TIE", -1.0)  # any trial wins
    monkeypatch.setattr(core.auto, "_probe_below", lambda ranked, layer: None)  # the fine-tuned model alone
    run, auto = _forced_trial(tmp_path, capsys, monkeypatch, batch_size=4, epochs=2)
    trial = auto["fine_tune"]["trial"]
    best_epoch = json.loads((run / "finetune_trial" / "checkpoints" / "best.json").read_text())["epoch"]
    assert trial["kept"] and trial["refit_epochs"] == best_epoch
    assert "fine-tuned again on the whole training split" in trial["reason"]
    refit = [json.loads(line) for line in (run / "finetune_all" / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in refit if "batch" not in r]) == best_epoch
    trial_log = (run / "finetune_trial" / "metrics.jsonl").read_text().splitlines()
    assert {json.loads(line).get("batches") for line in trial_log} - {None} == {3}  # 12 of 16 images
    assert {r["batches"] for r in refit if "batch" in r} == {4}  # all 16 training images, batches of 4
    final = run / "finetune_all" / "checkpoints" / "last.keras"  # its last epoch
    assert (run / "checkpoints" / "best.keras").read_bytes() == final.read_bytes()
    from core.model import ImagePreprocess  # noqa: F401  registers the custom layer and metric
    from core.tf_setup import keras

    optimizer = keras.models.load_model(final).optimizer  # the kept model's last epoch is a settled one:
    assert (
        int(optimizer.iterations) == 4 * best_epoch and float(optimizer.learning_rate) < 1e-9
    )  # lr annealed to 0
    recorded = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["val_accuracy"]
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["validation"]["accuracy"] == pytest.approx(recorded)


@pytest.mark.slow
def test_few_shot_real_photos_the_default_matches_logistic_regression_and_finetune_converges(
    tmp_path, capsys, monkeypatch, use_keras_home
):
    """10 real photos per class: the default (auto) is within 0.01 of (or above) logistic
    regression on the same embeddings, and so is fine-tune mode's Keras head (which trains by
    steps, so 20 images do not leave it unconverged). Later runs read the embeddings cached."""
    from core.train import main as train_main
    from tests.helpers import horse_or_human_subset

    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache")
    data = tmp_path / "hoh"
    horse_or_human_subset(data / "train", 10, "train", stride=50)
    horse_or_human_subset(data / "validation", 40, "validation", stride=3)
    common = [
        "--data",
        str(data),
        "--backbone",
        "mobilenet_v2_0.35",
        "--image-size",
        "128",
        "--batch-size",
        "16",
    ]

    def accuracy(mode: str) -> float:
        assert train_main([*common, "--runs-dir", str(tmp_path / mode), "--mode", mode]) == 0
        run = Path(capsys.readouterr().out.strip().splitlines()[-1])
        return json.loads((run / "evaluation.json").read_text())["validation"]["accuracy"]

    auto, logreg, finetune = accuracy("auto"), accuracy("features"), accuracy("finetune")
    assert logreg >= 0.8, logreg  # the real weights were loaded: random ones score about 0.5
    assert auto >= logreg - 0.01, (auto, logreg)
    assert finetune >= logreg - 0.01, (finetune, logreg)


def test_a_trial_won_by_the_average_keeps_one_model_that_averages_the_two(tmp_path, capsys, monkeypatch):
    """When the fine-tuned model averaged with the linear probe scores best on the held-out
    images, the run's checkpoint is that one model: the fine-tuned backbone refitted on every
    training image, with both pooled maps feeding one output layer, and it predicts what the
    run recorded."""
    import core.auto
    from core.model import POOL_LAYER
    from core.predict import load_classifier

    measured = core.auto._trial_scores
    monkeypatch.setattr(  # the average wins, whatever the tiny trial measured
        core.auto, "_trial_scores", lambda *a: {**measured(*a), "averaged": 2.0}
    )
    run, auto = _forced_trial(tmp_path, capsys, monkeypatch, batch_size=4, epochs=1)
    trial = auto["fine_tune"]["trial"]
    assert trial["kept"] and trial["kept_averaged"] and trial["refit_epochs"] == 1
    assert auto["winner"]["name"].endswith(f"+ {trial['averaged_with']['name']}")
    assert "averaged with" in auto["reason"] and "kept, averaged" in core.auto.fine_tune_line(auto)
    model = load_classifier(run).model
    assert len(model.get_layer(POOL_LAYER).input) == 2  # the top's and the probe layer's pooled maps
    assert len(model.get_layer("backbone").output) == 2
    recorded = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["val_accuracy"]
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["validation"]["accuracy"] == pytest.approx(recorded)
    assert (run / "checkpoints" / "last.keras").read_bytes() == (
        run / "checkpoints" / "best.keras"
    ).read_bytes()


def test_the_fine_tuning_line_says_what_the_trial_measured():
    from core.auto import fine_tune_line

    trial = {
        "layers_unfrozen": 35,
        "holdout_images": 192,
        "kept": False,
        "holdout_macro_f1": {"fine_tuned": 0.9475, "linear SVM (C=0.01) @ block_13": 0.9477},
    }
    line = fine_tune_line(
        {"fine_tune": {"try": True, "reason": "an earlier layer beats the top", "trial": trial}}
    )
    assert line == (
        "Fine-tuning the backbone: tried, because an earlier layer beats the top. The top 35 layers "
        "fine-tuned reached 0.948 macro-F1 on 192 held-out training images against 0.948 for linear SVM "
        "(C=0.01) @ block_13: not kept."
    )
    averaged = {**trial, "kept": True, "kept_averaged": True, "refit_epochs": 3}
    averaged["averaged_with"] = {"name": "logistic regression (C=0.1) @ block_13", "holdout_macro_f1": 0.9612}
    assert fine_tune_line(
        {"fine_tune": {"try": True, "reason": "an earlier layer beats the top", "trial": averaged}}
    ) == (
        "Fine-tuning the backbone: tried, because an earlier layer beats the top. The top 35 layers "
        "fine-tuned reached 0.948 macro-F1 on 192 held-out training images, 0.961 averaged with logistic "
        "regression (C=0.1) @ block_13, against 0.948 for linear SVM (C=0.01) @ block_13: kept, averaged, "
        "then fine-tuned again on the whole training split (3 epoch(s))."
    )
    assert fine_tune_line({"fine_tune": {"try": False, "reason": "no room"}}) == (
        "Fine-tuning the backbone: skipped: no room."
    )
    assert fine_tune_line({}) is None
    demo = {"fine_tune": {"try": True, "reason": "many images", "not_run": "the demo does not fine-tune"}}
    assert fine_tune_line(demo) == (
        "Fine-tuning the backbone: worth trying: many images (not run: the demo does not fine-tune)."
    )


def test_the_cached_head_takes_enough_steps_however_few_images_there_are():
    from core.auto import HEAD_STEPS
    from core.stages import head_steps_per_epoch

    assert head_steps_per_epoch(30, 16, 10) * 10 >= HEAD_STEPS  # not 2 batches an epoch: 20 steps in all
    assert head_steps_per_epoch(10_000, 32, 10) == 313  # plenty of images: one pass per epoch, as before
