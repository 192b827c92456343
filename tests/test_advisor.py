"""The strategy advisor: the four quadrants, the presets, and similarity measured on real weights.

The similarity claim is tested on real data: horse-or-human renders must score as similar
to ImageNet and synthetic noise and flat colours as different. With random weights (or
without the pretrained BatchNorm statistics) the ordering would not hold.
"""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from core.advisor import (
    DIVERGENCE_SCALE,
    LARGE_DATASET_PER_CLASS,
    LARGE_DIFFERENT,
    LARGE_SIMILAR,
    PRESETS,
    SIMILARITY_THRESHOLD,
    SMALL_DIFFERENT,
    SMALL_SIMILAR,
    advise,
    choose_strategy,
    imagenet_divergence,
    similarity_from_divergence,
)
from core.config import TrainConfig
from core.model import build_model
from tests.helpers import (
    horse_or_human_subset,
    make_color_dataset,
    run_cli,
    unreachable_network_env,
    write_image,
)

PRESET_FIELDS = {
    "mode",
    "classifier",
    "fine_tune_layers",
    "feature_layer",
    "backbone",
    "epochs",
    "learning_rate",
}


def _noise_dataset(root, per_class: int = 8, size: int = 64):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    return root


@pytest.mark.parametrize(
    "smallest, similarity, expected",
    [
        (LARGE_DATASET_PER_CLASS - 1, SIMILARITY_THRESHOLD, ("small", "similar", SMALL_SIMILAR)),
        (LARGE_DATASET_PER_CLASS, 0.9, ("large", "similar", LARGE_SIMILAR)),
        (10, SIMILARITY_THRESHOLD - 0.01, ("small", "different", SMALL_DIFFERENT)),
        (5000, 0.1, ("large", "different", LARGE_DIFFERENT)),
    ],
)
def test_the_four_quadrants(smallest, similarity, expected):
    assert choose_strategy(smallest, similarity) == expected


def test_similarity_is_one_at_zero_divergence_and_half_at_the_scale():
    assert similarity_from_divergence(0.0) == 1.0
    assert similarity_from_divergence(DIVERGENCE_SCALE) == pytest.approx(0.5)
    values = [similarity_from_divergence(d) for d in (0.0, 0.1, 0.5, 2.0, 100.0)]
    assert values == sorted(values, reverse=True) and all(0 < v <= 1 for v in values)


def test_presets_are_valid_train_configs_for_their_backbone():
    assert set(PRESETS) == {SMALL_SIMILAR, LARGE_SIMILAR, SMALL_DIFFERENT, LARGE_DIFFERENT}
    for strategy, preset in PRESETS.items():
        assert set(preset) == PRESET_FIELDS, strategy
        TrainConfig(data="x", **preset).validate()  # every key is a TrainConfig field in range
    assert PRESETS[SMALL_SIMILAR]["mode"] == PRESETS[SMALL_DIFFERENT]["mode"] == "features"
    assert PRESETS[SMALL_DIFFERENT]["feature_layer"] and not PRESETS[SMALL_SIMILAR]["feature_layer"]
    assert 0 < PRESETS[LARGE_SIMILAR]["fine_tune_layers"] < PRESETS[LARGE_DIFFERENT]["fine_tune_layers"]
    # The earlier layer exists in the preset's backbone, and "more of the network" fits in it.
    config = TrainConfig(data="x", weights=None, image_size=96, **PRESETS[SMALL_DIFFERENT])
    assert build_model(config, 2).get_layer("backbone").output.shape[1:] == (6, 6, 576)
    full = build_model(dataclasses.replace(config, feature_layer=None), 2).get_layer("backbone")
    assert PRESETS[LARGE_DIFFERENT]["fine_tune_layers"] < len(full.layers)


def test_real_photos_are_similar_and_synthetic_images_different(tmp_path, keras_home):
    photos = advise(horse_or_human_subset(tmp_path / "hoh", 8, "train", stride=60), sample_per_class=8)
    noise = advise(_noise_dataset(tmp_path / "noise"), sample_per_class=8)
    colours = advise(make_color_dataset(tmp_path / "colours", per_class=8), sample_per_class=8)
    assert photos.similarity >= SIMILARITY_THRESHOLD + 0.15, photos  # measured ~0.9
    assert noise.similarity <= SIMILARITY_THRESHOLD - 0.1, noise  # measured ~0.31
    assert colours.similarity <= SIMILARITY_THRESHOLD - 0.1, colours  # measured ~0.34
    assert (photos.similarity_label, noise.similarity_label) == ("similar", "different")
    assert photos.strategy == SMALL_SIMILAR and noise.strategy == SMALL_DIFFERENT
    assert photos.preset == PRESETS[SMALL_SIMILAR] and noise.preset == PRESETS[SMALL_DIFFERENT]
    assert photos.sample_size == 16 and photos.images_per_class_min == 8
    for number in ("8 images", f"{photos.divergence:.3f}", f"{photos.similarity:.2f}", SMALL_SIMILAR):
        assert number in photos.explanation


def test_counts_come_from_the_train_split_and_bad_images_are_left_out(tmp_path, keras_home):
    root = tmp_path / "split"
    for split, per_class in (("train", {"a": 5, "b": 3}), ("validation", {"a": 2, "b": 2})):
        for name, n in per_class.items():
            for i in range(n):
                write_image(root / split / name / f"{i}.png", (200, 100, 50), seed=i)
    advice = advise(root, sample_per_class=2)
    assert advice.counts == {"a": 5, "b": 3}
    assert (advice.images_per_class_min, advice.images_per_class_mean) == (3, 4.0)
    assert advice.sample_size == 4 and advice.size_label == "small"
    broken = root / "train" / "a" / "broken.png"
    broken.write_bytes(b"not an image")
    divergence, used = imagenet_divergence([broken, root / "train" / "a" / "0.png"])
    assert used == 1 and divergence > 0
    with pytest.raises(ValueError, match="none of the sampled images"):
        imagenet_divergence([broken])


def test_cli_names_the_missing_weights_file(tmp_path, color_dataset):
    result = run_cli("core.advisor", str(color_dataset), env=unreachable_network_env(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Could not download the ImageNet weights for mobilenet_v2_0.35")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in line
    assert str(tmp_path / "empty-keras-home" / "models") in line


def test_cli_refuses_a_missing_dataset(tmp_path):
    result = run_cli("core.advisor", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: dataset folder not found: {tmp_path / 'nope'}"
