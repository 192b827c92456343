"""The checkpoint callback: atomic files, best by the monitor, and throttled saving."""

import json
from pathlib import Path

from core.callbacks import AtomicCheckpoint


class FakeModel:
    """Records what it saved: its current 'weights' as the file content."""

    def __init__(self):
        self.weights = [0]

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.weights = list(weights)

    def save(self, path):
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
