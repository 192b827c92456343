"""Evaluating a frozen-base run reuses the embeddings the run computed: no second backbone pass."""

import json
from pathlib import Path

import numpy as np
import pytest

import core.embeddings
from core.evaluate import (
    _predict_all,
    _scan,
    _split_images,
    dataset_root,
    evaluate_run,
    predict_from_embeddings,
)
from core.predict import Classifier, load_classifier
from core.train import main as train_main
from tests.helpers import make_color_dataset

TINY = ["--backbone", "mobilenet_v2_0.35", "--image-size", "96", "--batch-size", "8", "--epochs", "2"]


@pytest.fixture
def backbone_calls(tmp_path, monkeypatch, use_keras_home) -> dict:
    """Counts images run through the backbone: by the embedding engine or the whole model."""
    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache")
    calls = {"embedded": 0, "whole_model": 0}
    run_batches, predict_arrays = core.embeddings._run_batches, Classifier.predict_arrays

    def counted_run_batches(extractor, config, batches, total, store):
        calls["embedded"] += total
        return run_batches(extractor, config, batches, total, store)

    def counted_predict_arrays(self, images):
        calls["whole_model"] += len(images)
        return predict_arrays(self, images)

    monkeypatch.setattr(core.embeddings, "_run_batches", counted_run_batches)
    monkeypatch.setattr(Classifier, "predict_arrays", counted_predict_arrays)
    return calls


@pytest.mark.parametrize(
    "mode, extra",
    [
        ("features", ["--classifier", "knn"]),  # a classifier beside the extractor
        ("features", []),  # logistic regression, folded into the model the run holds
        ("finetune", []),
        ("auto", []),
    ],
)
def test_a_frozen_base_run_is_evaluated_without_a_second_backbone_pass(
    tmp_path, capsys, backbone_calls, mode, extra
):
    data = make_color_dataset(tmp_path / "d", per_class=8)
    args = ["--data", str(data), "--runs-dir", str(tmp_path / "runs"), *TINY, "--mode", mode, *extra]
    assert train_main(args) == 0  # trains, then evaluates with the model it holds
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert backbone_calls == {"embedded": 16, "whole_model": 0}  # every image once, none again
    during_training = json.loads((run / "evaluation.json").read_text())["validation"]
    # Grad-CAM overlays are left for later, where there can be any: a scikit-learn kNN has none
    assert during_training["overlays_pending"] is (extra == [])

    result = evaluate_run(run)  # from disk this time: the checkpoint loaded anew
    assert backbone_calls == {"embedded": 16, "whole_model": 0}
    same = ("num_images", "accuracy", "confusion_matrix")
    assert {k: result[k] for k in same} == {k: during_training[k] for k in same}
    assert result["loss"] == pytest.approx(during_training["loss"], abs=1e-5)

    classifier = load_classifier(run)
    paths, labels = _split_images(_scan(dataset_root(run)), "validation", classifier.class_names)
    config = json.loads((run / "config.json").read_text())
    assert len(paths) == result["num_images"]
    slow, _, _ = _predict_all(classifier, paths, 8)  # what evaluation computed before: the whole model
    np.testing.assert_allclose(predict_from_embeddings(classifier, config, paths), slow, atol=1e-4)
    assert result["accuracy"] == np.mean(slow.argmax(1) == np.asarray(labels))  # the same verdicts


def test_a_fine_tuned_or_random_base_is_evaluated_through_the_whole_model(tmp_path, backbone_calls):
    config = {"data": "unused", "backbone": "mobilenet_v2_0.35", "image_size": 96}
    classifier = Classifier(
        model=None, class_names=["a", "b"], image_size=96, run_dir=tmp_path, checkpoint="best"
    )
    # Stage 2 changed the base; random weights differ per seed, which the cache does not name.
    assert predict_from_embeddings(classifier, {**config, "fine_tune_layers": 2}, ["x.png"]) is None
    assert predict_from_embeddings(classifier, {**config, "weights": None}, ["x.png"]) is None
    # Auto mode kept a fine-tuned backbone (or has chosen nothing yet).
    assert predict_from_embeddings(classifier, {**config, "mode": "auto"}, ["x.png"]) is None
    fine_tuned = {"winner": {"classifier": "finetune", "layer": "top"}}
    for record in (fine_tuned, [], {"winner": ["top"]}, {"winner": {}}):  # the last three: hand-edited
        (tmp_path / "auto.json").write_text(json.dumps(record))
        assert predict_from_embeddings(classifier, {**config, "mode": "auto"}, ["x.png"]) is None
    assert backbone_calls == {"embedded": 0, "whole_model": 0}


def test_gallery_gradcam_in_one_batch_equals_one_image_at_a_time(use_keras_home, horse_or_human):
    from core.config import TrainConfig
    from core.data import load_image
    from core.gradcam import gradcam, gradcam_batch
    from core.model import build_model

    model = build_model(TrainConfig(data="unused", backbone="mobilenet_v2_0.35", image_size=96), 3)
    photos = sorted((horse_or_human / "validation" / "horses").iterdir())[:3]
    images = [load_image(photo, size) for photo, size in zip(photos, (96, 120, 80))]  # any sizes
    together = gradcam_batch(model, images, [0, 2, 1])
    assert sum(heat.max() == 1.0 for heat in together) >= 2  # real heatmaps, scaled to their peaks
    for image, heat, class_index in zip(images, together, [0, 2, 1]):
        assert heat.shape == image.shape[:2]
        np.testing.assert_allclose(heat, gradcam(model, image, class_index), atol=1e-5)
