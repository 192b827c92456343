"""Calibrated confidence (temperature scaling) and "none of these" (the open-set threshold)."""

import json
from pathlib import Path

import numpy as np
import pytest

from core.trust import (
    Trust,
    assess,
    expected_calibration_error,
    fit_temperature,
    load_trust,
    openset_scores,
    with_temperature,
)
from tests.helpers import horse_or_human_subset, run_cli
from tests.real_assets import pbc_blood_cells


def _over_confident(n: int = 4000, classes: int = 3, seed: int = 0):
    """Labels drawn from honest probabilities, and those probabilities sharpened (logits x 3)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 1.5
    honest = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in honest])
    return with_temperature(honest, 1 / 3), labels


def test_temperature_scaling_lowers_the_ece_of_an_over_confident_model():
    probs, labels = _over_confident()
    temperature = fit_temperature(probs, labels)
    assert 2.5 < temperature < 3.5  # it undoes the sharpening
    before, after = (
        expected_calibration_error(probs, labels),
        expected_calibration_error(with_temperature(probs, temperature), labels),
    )
    assert after < before / 3 and after < 0.03
    assert (with_temperature(probs, temperature).argmax(1) == probs.argmax(1)).all()  # accuracy kept


def test_temperature_handles_a_sigmoid_model_two_columns():
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0.02, 0.98, 3000)
    labels = (rng.uniform(size=3000) < p1).astype(int)
    sharp = with_temperature(np.stack([1 - p1, p1], 1), 0.25)
    assert fit_temperature(sharp, labels) == pytest.approx(4.0, rel=0.15)


def test_open_set_scores_are_distances_to_the_nearest_reference():
    reference = np.eye(4, 8)
    scores = openset_scores(np.array([[2, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1.0]]), reference)
    assert scores == pytest.approx([0.0, 1.0])


def test_validation_fits_and_stores_what_prediction_applies(tmp_path):
    rng = np.random.default_rng(0)
    train, val = rng.normal(size=(200, 16)) + 5, rng.normal(size=(100, 16)) + 5
    probs, labels = _over_confident(100, 2)
    result = assess(tmp_path, "validation", probs, labels, val, train)
    saved = json.loads((tmp_path / "trust.json").read_text())
    assert saved["openset"]["threshold"] == result["openset"]["threshold"]
    assert result["openset"]["rejected"] <= 0.05
    assert result["calibration"]["ece_after"] < result["calibration"]["ece_before"]
    trust = load_trust(tmp_path)
    assert isinstance(trust, Trust) and trust.reference.shape == (200, 16)
    far = -rng.normal(size=(10, 16)) - 5  # another direction entirely
    _, _, unknown = trust.judge(with_temperature(probs[:10], 1), far)
    assert unknown.all()
    test = assess(tmp_path, "test", probs, labels, val, train)  # judged with validation's threshold
    assert test["openset"]["threshold"] == result["openset"]["threshold"]


def test_predict_lines_say_whether_a_photo_is_unknown(trained_run, color_dataset):
    assert (trained_run / "trust.json").is_file()  # training evaluated validation
    photo = next((color_dataset / "red").iterdir())
    result = run_cli("core.predict", "--run", str(trained_run), str(photo))
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(line["unknown"], bool) and line["openset_score"] >= 0
    assert 0 <= line["confidence"] <= 1
    evaluation = json.loads((trained_run / "evaluation.json").read_text())["validation"]
    assert evaluation["calibration"]["ece_before"] >= 0 and evaluation["openset"]["rejected"] <= 0.05


@pytest.mark.slow
def test_a_horse_or_human_model_calls_blood_cells_unknown(tmp_path, keras_home):
    """Real MobileNetV2 x0.35 on horse-or-human: blood-cell photos are "none of these", while
    held-out horse-or-human photos the model never saw are mostly accepted."""
    data = tmp_path / "data"
    horse_or_human_subset(data / "train", 60, "train", stride=8)
    horse_or_human_subset(data / "validation", 20, "validation", offset=0, stride=6)
    held_out = horse_or_human_subset(tmp_path / "held-out", 20, "validation", offset=1, stride=6)
    result = run_cli("core.train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"),
                     "--backbone", "mobilenet_v2_0.35", "--image-size", "128", "--mode", "features",
                     env={"KERAS_HOME": str(keras_home),
                          "TLS_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = Path(result.stdout.strip().splitlines()[-1])
    evaluation = json.loads((run / "evaluation.json").read_text())["validation"]
    assert evaluation["openset"]["rejected"] <= 0.05

    from core.predict import load_classifier

    classifier = load_classifier(run)
    cells = sorted(pbc_blood_cells().rglob("*.jpg"))
    unknown_cells = [r["unknown"] for r in classifier.predict([str(p) for p in cells])]
    known = [r["unknown"] for r in classifier.predict([str(p) for p in sorted(held_out.rglob("*.jpg"))])]
    assert np.mean(unknown_cells) >= 0.9 and len(cells) >= 40
    assert np.mean(known) <= 0.2


def test_predict_csv_classifies_a_folder(trained_run, color_dataset):
    result = run_cli("core.predict", "--run", str(trained_run), "--csv", str(color_dataset))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "file,label,probability,confidence,unknown,openset_score,error"
    files = sorted(line.split(",")[0] for line in lines[1:])
    assert files == sorted(str(p) for p in color_dataset.rglob("*.png")) and len(files) == 16
    assert all(line.split(",")[4] in ("True", "False") for line in lines[1:])
