"""The checkpoint callback: atomic files, best by the monitor, and throttled saving."""

import json
from pathlib import Path

from core.callbacks import AtomicCheckpoint


class FakeModel:
    """Records what it saved: its current 'weights' as the file content."""

    def __init__(self):
        self.weights = [0]
        self.saves = 0

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.weights = list(weights)

    def save(self, path):
        self.saves += 1
        Path(path).write_text(json.dumps(self.weights))


def _epochs(checkpoint, model, accuracies):
    for epoch, accuracy in enumerate(accuracies):
        model.weights = [epoch + 1]  # "training" changes the weights every epoch
        checkpoint.on_epoch_end(epoch, {"val_accuracy": accuracy})


def _saved(run_dir, name):
    return json.loads((run_dir / "checkpoints" / name).read_text())


def test_every_epoch_saves_last_and_improvements_save_best(tmp_path):
    model = FakeModel()
    checkpoint = AtomicCheckpoint(tmp_path, model, "val_accuracy")
    _epochs(checkpoint, model, [0.5, 0.8, 0.7])
    assert _saved(tmp_path, "best.keras") == [2] and _saved(tmp_path, "last.keras") == [3]
    assert _saved(tmp_path, "best.json") == {"epoch": 2, "monitor": "val_accuracy", "value": 0.8}


def test_throttled_saving_keeps_the_best_weights_until_the_end(tmp_path):
    model = FakeModel()
    checkpoint = AtomicCheckpoint(tmp_path, model, "val_accuracy", every_s=3600)
    _epochs(checkpoint, model, [0.5, 0.9, 0.6, 0.7])
    assert _saved(tmp_path, "best.keras") == [1]  # the first save happens at once, then waits
    checkpoint.on_train_end()
    assert _saved(tmp_path, "best.keras") == [2] and _saved(tmp_path, "best.json")["epoch"] == 2
    assert _saved(tmp_path, "last.keras") == [4]
    assert model.weights == [4]  # the model itself keeps its last weights


def test_a_lower_loss_is_better(tmp_path):
    model = FakeModel()
    checkpoint = AtomicCheckpoint(tmp_path, model, "val_loss")
    for epoch, loss in enumerate([0.9, 0.4, 0.6]):
        model.weights = [epoch + 1]
        checkpoint.on_epoch_end(epoch, {"val_loss": loss})
    assert _saved(tmp_path, "best.keras") == [2]


def test_when_the_last_epoch_is_the_best_one_save_serves_both_names(tmp_path):
    model = FakeModel()
    checkpoint = AtomicCheckpoint(tmp_path, model, "val_accuracy", every_s=3600)
    _epochs(checkpoint, model, [0.5, 0.6, 0.9])
    assert model.saves == 1  # epoch 1: best.keras written, last.keras linked to it
    checkpoint.on_train_end()
    assert model.saves == 2  # the end: epoch 3 is both the best and the last
    best, last = tmp_path / "checkpoints" / "best.keras", tmp_path / "checkpoints" / "last.keras"
    assert _saved(tmp_path, "best.keras") == [3] == _saved(tmp_path, "last.keras")
    assert best.stat().st_ino == last.stat().st_ino
    assert _saved(tmp_path, "best.json")["epoch"] == 3
    checkpoint.every_s, model.weights = 0.0, [4]  # saving last again must leave best alone
    checkpoint.on_epoch_end(3, {"val_accuracy": 0.1})
    assert _saved(tmp_path, "last.keras") == [4] and _saved(tmp_path, "best.keras") == [3]
