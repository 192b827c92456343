"""The feature-extraction engine: LiteRT agrees with Keras on real photos, falls back to
Keras when conversion fails or disagrees, and converts once per extractor."""

import numpy as np
import pytest

from core import engine
from core.config import TrainConfig
from core.data import load_image
from core.embeddings import CacheStats, embed_paths


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch, use_keras_home):
    """Each test converts into its own cache folder (engines live beside the embeddings)."""
    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache" / "embeddings")
    monkeypatch.delenv("TLS_ENGINE", raising=False)
    return tmp_path / "cache" / "engines"


def _extractor(size: int = 32, weights=None, seed: int = 0):
    from core.model import build_model, feature_extractor
    from core.tf_setup import keras

    config = TrainConfig(data="unused", backbone="mobilenet_v2_0.35", image_size=size, weights=weights)
    keras.utils.set_random_seed(seed)  # the same seed builds the same random weights
    return config, feature_extractor(build_model(config, 2))


def _photos(root, count: int) -> list[str]:
    folders = sorted(p for p in (root / "validation").iterdir() if p.is_dir())
    return [str(p) for folder in folders for p in sorted(folder.iterdir())[: count // len(folders)]]


def test_litert_matches_keras_on_real_photos_with_imagenet_weights(monkeypatch, horse_or_human):
    monkeypatch.setenv("TLS_ENGINE", "litert")  # 12 photos: "auto" would leave them to Keras
    config, extractor = _extractor(size=96, weights="imagenet")
    config.batch_size = 5  # a smaller last batch: the interpreter resizes
    paths = _photos(horse_or_human, 12)
    stats = CacheStats()
    embeddings = embed_paths(extractor, config, paths, cache=None, stats=stats)
    assert stats.engine.startswith("litert (checked against Keras")
    images = np.stack([load_image(p, 96) for p in paths]).astype(np.float32)
    expected = extractor.predict_on_batch(images)
    assert embeddings.shape == expected.shape == (12, 1280)
    assert np.abs(embeddings - expected).max() <= 1e-3
    assert np.abs(expected).max() > 0.1  # real features, not a degenerate all-zero pass


def test_a_failed_conversion_falls_back_to_keras_and_says_why(monkeypatch, tmp_path):
    def broken(model, path):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(engine, "convert_extractor", broken)
    monkeypatch.setenv("TLS_ENGINE", "litert")
    config, extractor = _extractor()
    probe = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    chosen = engine.choose_engine(extractor, config, probe, images=1000)
    assert chosen.name == "keras"
    assert chosen.reason == "LiteRT conversion failed: RuntimeError: converter exploded"
    np.testing.assert_allclose(chosen.run(probe)[0], extractor.predict_on_batch(probe), atol=1e-6)


def test_an_engine_that_disagrees_with_keras_is_not_used(monkeypatch):
    real_run = engine.LiteRTEngine.run
    monkeypatch.setattr(
        engine.LiteRTEngine, "run", lambda self, batch: [o + 0.01 for o in real_run(self, batch)]
    )
    config, extractor = _extractor()
    probe = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    chosen = engine.choose_engine(extractor, config, probe, images=1000)
    assert chosen.name == "keras" and chosen.reason.startswith("LiteRT differs from Keras by 0.01")


def test_a_conversion_is_checked_once_and_later_runs_read_the_recorded_check(monkeypatch, private_cache):
    checks = []
    real_check = engine.max_difference
    monkeypatch.setattr(engine, "max_difference", lambda *a: (checks.append(1), real_check(*a))[1])
    config, extractor = _extractor()
    probe = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    first = engine.choose_engine(extractor, config, probe, images=1000)
    assert first.name == "litert" and first.reason.startswith("checked against Keras: max difference")
    assert len(checks) == 1
    _, same = _extractor()  # a later process: the same conversion, its check read from the record
    later = engine.choose_engine(same, config, probe, images=1000)
    assert later.name == "litert" and later.reason.startswith("checked against Keras when converted")
    assert len(checks) == 1
    (record_file,) = private_cache.glob("*.parity.json")
    record_file.write_text(record_file.read_text().replace(engine.litert_version(), "0.0.1"))
    assert engine.choose_engine(_extractor()[1], config, probe, images=1000).name == "litert"
    assert len(checks) == 2  # another LiteRT: checked again


def test_a_recorded_disagreement_keeps_later_runs_on_keras(monkeypatch):
    real_run = engine.LiteRTEngine.run
    with monkeypatch.context() as patched:
        patched.setattr(
            engine.LiteRTEngine, "run", lambda self, batch: [o + 0.01 for o in real_run(self, batch)]
        )
        config, extractor = _extractor()
        probe = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
        assert engine.choose_engine(extractor, config, probe, images=1000).name == "keras"
    later = engine.choose_engine(_extractor()[1], config, None, images=1000)  # no probe: the record decides
    assert later.name == "keras" and later.reason.endswith("on the probe when converted")


def test_few_images_stay_with_keras_unless_an_engine_is_already_converted(monkeypatch):
    config, extractor = _extractor()
    few = engine.choose_engine(extractor, config, None, images=10)
    assert few.name == "keras" and few.reason.startswith("only 10 images")
    assert engine.choose_engine(extractor, config, None, images=1000).name == "litert"  # converts
    assert engine.choose_engine(extractor, config, None, images=10).name == "litert"  # already there


def test_conversion_is_cached_and_invalidated_by_new_weights_or_size(monkeypatch, private_cache):
    conversions = []
    real_convert = engine.convert_extractor
    monkeypatch.setattr(engine, "convert_extractor", lambda m, p: (conversions.append(p), real_convert(m, p)))
    config, extractor = _extractor(seed=0)
    probe = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    assert engine.choose_engine(extractor, config, probe, images=1000).name == "litert"
    assert len(conversions) == 1 and conversions[0].parent == private_cache and conversions[0].is_file()
    _, same = _extractor(seed=0)  # another process would build exactly this: a cache hit
    assert engine.choose_engine(same, config, probe, images=1000).name == "litert"
    assert len(conversions) == 1
    _, reseeded = _extractor(seed=1)  # other weights under the same names
    assert engine.engine_key(reseeded, config) != engine.engine_key(extractor, config)
    assert engine.choose_engine(reseeded, config, probe, images=1000).name == "litert"
    assert len(conversions) == 2
    larger_config, larger = _extractor(size=48, seed=0)
    assert engine.engine_key(larger, larger_config) not in {p.stem for p in conversions}
    assert not list(private_cache.glob(".*"))  # no temp files left


def test_several_outputs_come_back_in_order(monkeypatch):
    from core.tf_setup import keras

    config, extractor = _extractor()
    projected = keras.layers.Dense(7, name="projected")(extractor.output)
    multi = keras.Model(extractor.input, [projected, extractor.output])  # the order differs from build order
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    chosen = engine.choose_engine(multi, config, images, images=1000)
    assert chosen.name == "litert"
    outputs, expected = chosen.run(images), multi.predict_on_batch(images)
    assert [o.shape for o in outputs] == [e.shape for e in expected] == [(3, 7), (3, 1280)]
    for got, want in zip(outputs, expected):
        assert np.abs(got - want).max() <= 1e-3
