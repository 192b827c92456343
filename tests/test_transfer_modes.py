"""Both kinds of transfer learning: feature extraction with classical classifiers, cached
head training, two-stage fine-tuning, and the embedding cache."""

import json

import numpy as np
import pytest

from core.config import AugmentConfig, TrainConfig, head_training_choice
from core.embeddings import CacheStats, EmbeddingCache, embed_paths
from core.embeddings import main as embeddings_main
from core.predict import load_classifier
from core.runs import RunDir, read_json
from core.train import main as train_main
from tests.helpers import make_color_dataset, write_image

# Real ImageNet weights at 96 px: random weights give near-constant embeddings that a
# decision tree cannot split, which would test nothing.
TINY = ["--backbone", "mobilenet_v2_0.35", "--image-size", "96", "--batch-size", "8", "--mode", "finetune"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch, use_keras_home):
    """Each test gets its own embedding cache folder."""
    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def _train(capsys, data, runs, *args):
    assert train_main(["--data", str(data), "--runs-dir", str(runs), *TINY, *args]) == 0
    return __import__("pathlib").Path(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("classifier", ["logreg", "svm", "knn", "tree"])
def test_each_classifier_trains_and_predicts(tmp_path, capsys, classifier):
    data = make_color_dataset(tmp_path / "d", per_class=10)
    run = _train(capsys, data, tmp_path / "runs", "--mode", "features", "--classifier", classifier)
    epochs, _ = RunDir(run).metrics()
    assert len(epochs) == 1 and epochs[0]["val_accuracy"] == 1.0  # red vs blue is easy
    assert RunDir(run).status()["state"] == "completed"
    assert (run / "checkpoints" / "classifier.joblib").exists() == (classifier != "logreg")
    classifier_model = load_classifier(run)
    probe = write_image(tmp_path / "probe.png", (220, 40, 40), seed=99)
    [result] = classifier_model.predict([str(probe)])
    assert result["label"] == "red" and sum(result["probabilities"].values()) == pytest.approx(1)


def test_an_svm_on_a_class_too_small_to_calibrate_is_a_clear_error(tmp_path, capsys):
    import shutil

    data = make_color_dataset(tmp_path / "d" / "train", per_class=3)
    shutil.copytree(data, tmp_path / "d" / "validation")
    for extra in ("1.png", "2.png"):
        (data / "red" / extra).unlink()  # one red training image: nothing to cross-validate
    args = ["--data", str(tmp_path / "d"), "--runs-dir", str(tmp_path / "runs"), *TINY]
    assert train_main([*args, "--mode", "features", "--classifier", "svm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: classifier: an SVM needs at least 2 training images in every class")
    assert "Traceback" not in "\n".join(err)
    assert train_main([*args, "--mode", "features", "--classifier", "knn", "--knn-neighbors", "1"]) == 0


def test_logistic_regression_is_folded_exactly_into_the_keras_model(tmp_path, capsys):
    """The saved Keras model gives the probabilities of the scikit-learn pipeline it replaced."""
    from core.classical import make_classifier, probabilities
    from core.data import load_image
    from core.model import feature_extractor

    data = make_color_dataset(
        tmp_path / "d", per_class=6, classes={"r": (220, 40, 40), "g": (40, 220, 40), "b": (40, 40, 220)}
    )
    run = _train(capsys, data, tmp_path / "runs", "--mode", "features", "--val-split", "0.34")
    loaded = load_classifier(run)
    embed = lambda paths: feature_extractor(loaded.model).predict_on_batch(
        np.stack([load_image(p, 96) for p in paths]).astype(np.float32)
    )
    train_files = sorted((run / "split" / "train").rglob("*.png"))
    labels = [loaded.class_names.index(p.parent.name) for p in train_files]
    reference = make_classifier(TrainConfig.from_dict(read_json(run / "config.json")))
    reference.fit(embed(train_files), labels)
    probes = sorted(data.rglob("*.png"))
    images = np.stack([load_image(p, 96) for p in probes])
    np.testing.assert_allclose(
        loaded.predict_arrays(images), probabilities(reference, embed(probes), 3), atol=1e-4
    )


def test_cached_head_training_skips_the_base_on_the_second_run(tmp_path, capsys):
    data = make_color_dataset(tmp_path / "d", per_class=8)
    first = _train(capsys, data, tmp_path / "runs", "--epochs", "2")
    second = _train(capsys, data, tmp_path / "runs", "--epochs", "2", "--dense-units", "16")
    assert RunDir(first).status()["cache_misses"] == 16 and RunDir(first).status()["cache_hits"] == 0
    assert RunDir(second).status()["cache_hits"] == 16 and RunDir(second).status()["cache_misses"] == 0
    assert read_json(second / "config.json")["head_training"] == "cached"
    assert [e["epoch"] for e in RunDir(second).metrics()[0]] == [1, 2]
    assert load_classifier(second).predict([str(next(data.rglob("*.png")))])[0]["label"]


def test_live_augmentation_trains_live_and_says_why(tmp_path, capsys):
    data = make_color_dataset(tmp_path / "d", per_class=8)
    run = _train(
        capsys,
        data,
        tmp_path / "runs",
        "--epochs",
        "1",
        "--config",
        str(_config_file(tmp_path, data, augment=AugmentConfig(rotation=20))),
    )
    status = RunDir(run).status()
    assert status["head_training"] == "live" and "augmentation" in status["head_training_reason"]
    assert read_json(run / "config.json")["head_training"] == "live"


def _config_file(tmp_path, data, **fields):
    path = tmp_path / "config.json"
    config = TrainConfig(data=str(data), backbone="mobilenet_v2_0.35", image_size=96, batch_size=8, **fields)
    path.write_text(config.to_json())
    return path


def test_head_training_choice_decisions():
    flip = AugmentConfig(horizontal_flip=True)
    assert head_training_choice(TrainConfig(data="d"))[0] == "cached"
    assert head_training_choice(TrainConfig(data="d", augment=flip))[0] == "live"
    assert head_training_choice(TrainConfig(data="d", augment=flip, augment_views=3))[0] == "cached"
    assert head_training_choice(TrainConfig(data="d", head_training="live"))[0] == "live"


def test_two_stage_fine_tuning(tmp_path, capsys):
    from core.model import BACKBONE_LAYER
    from core.tf_setup import keras

    data = make_color_dataset(tmp_path / "d", per_class=8)
    run = _train(
        capsys,
        data,
        tmp_path / "runs",
        "--epochs",
        "2",
        "--patience",
        "0",
        "--fine-tune-layers",
        "12",
        "--fine-tune-epochs",
        "2",
        "--learning-rate",
        "0.002",
    )
    epochs, _ = RunDir(run).metrics()
    assert [(e["epoch"], e["stage"]) for e in epochs] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert RunDir(run).status()["stage2_start_epoch"] == 3
    model = keras.models.load_model(run / "checkpoints" / "last.keras", safe_mode=True)
    base = model.get_layer(BACKBONE_LAYER)
    assert not any(layer.trainable for layer in base.layers[:-12] if layer.weights)
    top = base.layers[-12:]
    assert any(layer.trainable for layer in top if layer.weights)
    assert not any(layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))
    assert float(read_json(run / "config.json")["learning_rate"]) == 0.002


def test_embedding_cache_hits_misses_and_invalidation(tmp_path):
    from core.model import build_model, feature_extractor

    data = make_color_dataset(tmp_path / "d", per_class=3)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    config = TrainConfig(data=str(data), backbone="mobilenet_v2_0.35", image_size=96)
    extractor = feature_extractor(build_model(config, 2))
    cache = EmbeddingCache(tmp_path / "c")
    reports = []
    first = embed_paths(extractor, config.__class__(**{**config.to_dict(), "batch_size": 4}), paths, cache,
                        progress=lambda *a: reports.append(a))  # fmt: skip
    assert reports == [(4, 6), (6, 6)]  # after each batch
    stats = CacheStats()
    again = embed_paths(extractor, config, paths, cache, stats=stats)
    assert (stats.hits, stats.misses) == (6, 0)
    np.testing.assert_array_equal(first, again)
    write_image(__import__("pathlib").Path(paths[0]), (0, 255, 0), seed=5)  # change one file
    stats, reports = CacheStats(), []
    changed = embed_paths(extractor, config, paths, cache, stats=stats, progress=lambda *a: reports.append(a))
    assert (stats.hits, stats.misses) == (5, 1) and reports == [(1, 1)]  # progress counts computed images
    assert not np.allclose(changed[0], first[0]) and np.allclose(changed[1:], first[1:])
    other = CacheStats()
    embed_paths(
        extractor,
        config.__class__(**{**config.to_dict(), "augment": AugmentConfig(), "image_size": 128}),
        paths,
        cache,
        stats=other,
    )
    assert other.misses == 6  # another input size is another extractor


def test_the_same_photo_under_several_names_is_embedded_once_and_cached_once(tmp_path):
    import shutil

    from core.model import build_model, feature_extractor

    data = make_color_dataset(tmp_path / "d", per_class=2)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    for copy in range(12):  # many copies in one pass: the cache writes run in parallel
        shutil.copy(paths[0], data / "red" / f"copy-{copy}.png")
    paths = sorted(str(p) for p in data.rglob("*.png"))
    config = TrainConfig(data=str(data), backbone="mobilenet_v2_0.35", image_size=96, batch_size=4)
    cache = EmbeddingCache(tmp_path / "c")
    embeddings = embed_paths(feature_extractor(build_model(config, 2)), config, paths, cache)
    assert len(embeddings) == 16 and len(cache.files()) == 4  # 4 distinct photos
    assert not [p for p in (tmp_path / "c").rglob("*") if p.name.startswith(".")]  # no temp files left
    copies = [i for i, p in enumerate(paths) if "copy-" in p]
    np.testing.assert_allclose(embeddings[copies], embeddings[copies[:1]].repeat(12, 0), atol=1e-6)


def test_cache_size_limit_and_clear(tmp_path, capsys, monkeypatch):
    cache = EmbeddingCache(tmp_path / "c", limit_bytes=3000)
    for i in range(5):
        cache.put("x", f"{i:064d}", "plain", np.zeros(256, np.float32))  # ~1.1 kB each
    cache.enforce_limit()
    assert 0 < cache.size_bytes() <= 3000
    assert cache.get("x", f"{4:064d}", "plain") is not None  # the newest survive
    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "c")
    assert embeddings_main(["--clear"]) == 0
    assert "cleared" in capsys.readouterr().out and cache.size_bytes() == 0
    assert not list((tmp_path / "c").iterdir())  # the emptied folders are gone too


def test_features_mode_rejects_fine_tuning(tmp_path, capsys):
    data = make_color_dataset(tmp_path / "d", per_class=2)
    code = train_main(
        [
            "--data",
            str(data),
            "--runs-dir",
            str(tmp_path / "r"),
            *TINY,
            "--mode",
            "features",
            "--fine-tune-layers",
            "3",
        ]
    )
    assert code == 2 and "fine-tuning needs mode 'finetune'" in capsys.readouterr().err


def test_config_json_records_mode(tmp_path, capsys):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    run = _train(
        capsys, data, tmp_path / "runs", "--mode", "features", "--classifier", "knn", "--knn-neighbors", "3"
    )
    config = json.loads((run / "config.json").read_text())
    assert (config["mode"], config["classifier"], config["knn_neighbors"]) == ("features", "knn", 3)
