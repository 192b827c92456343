"""Class imbalance: the warning, class weights, and macro-F1 as a monitor."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from core.config import TrainConfig
from core.model import MacroF1
from core.runs import RunDir, read_json
from core.stages import class_weights
from core.train import main as train_main
from tests.helpers import make_color_dataset


@pytest.mark.parametrize("num_classes", [2, 3])
def test_macro_f1_metric_matches_scikit_learn(num_classes):
    rng = np.random.default_rng(num_classes)
    y_true = rng.integers(0, num_classes, 50)
    if num_classes == 2:
        y_pred = rng.uniform(0, 1, (50, 1)).astype("float32")
        predicted = (y_pred[:, 0] > 0.5).astype(int)
        targets = y_true.reshape(-1, 1).astype("float32")
    else:
        y_pred = rng.dirichlet(np.ones(num_classes), 50).astype("float32")
        predicted, targets = y_pred.argmax(1), y_true
    metric = MacroF1(num_classes)
    metric.update_state(targets[:25], y_pred[:25])
    metric.update_state(targets[25:], y_pred[25:])  # accumulates across batches
    assert float(metric.result()) == pytest.approx(f1_score(y_true, predicted, average="macro"), abs=1e-6)


def test_class_weights_are_inverse_frequency():
    config = TrainConfig(data="d", class_weights=True)
    weights = class_weights(config, [0] * 30 + [1] * 10, 2)
    assert weights == pytest.approx({0: 40 / 60, 1: 40 / 20})
    assert class_weights(TrainConfig(data="d"), [0, 1], 2) is None


@pytest.mark.parametrize(
    "extra",
    [["--mode", "finetune"], ["--mode", "finetune", "--head-training", "live"], ["--mode", "features"]],
    ids=["cached", "live", "features"],
)
def test_imbalanced_run_warns_weights_classes_and_monitors_macro_f1(tmp_path, capsys, use_keras_home, extra):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    make_color_dataset(tmp_path / "d", per_class=16, classes={"red": (220, 40, 40)})  # red: 16, blue: 4
    code = train_main(
        [
            "--data",
            str(data),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--backbone",
            "mobilenet_v2_0.35",
            "--image-size",
            "96",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--class-weights",
            "--monitor",
            "val_macro_f1",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "warning: classes are imbalanced (largest/smallest = 4.0)" in out
    run = __import__("pathlib").Path(out.strip().splitlines()[-1])
    epochs, _ = RunDir(run).metrics()
    assert all("val_macro_f1" in e and "macro_f1" in e for e in epochs)
    best = read_json(run / "checkpoints" / "best.json")
    assert best["monitor"] == "val_macro_f1"
    assert best["value"] == pytest.approx(max(e["val_macro_f1"] for e in epochs))
    assert read_json(run / "config.json")["class_weights"] is True
