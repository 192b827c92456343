"""The strategy advisor: the four quadrants, the presets, and similarity measured on real weights.

The similarity claim is tested on real data: horse-or-human renders must score as similar
to ImageNet (the top layer of the pretrained network is its best, far above random
weights), and flat colours as different (random features separate them as well as
ImageNet's: ImageNet adds nothing). Without the real weights the first would not hold.
"""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from core.advisor import (
    AUTO_PRESET,
    LARGE_DATASET_PER_CLASS,
    LARGE_DIFFERENT,
    LARGE_SIMILAR,
    PRESETS,
    SIMILARITY_THRESHOLD,
    SMALL_DIFFERENT,
    SMALL_SIMILAR,
    advise,
    choose_strategy,
    similarity_from_scores,
    transfer_scores,
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
        (LARGE_DATASET_PER_CLASS, 1.0, ("large", "similar", LARGE_SIMILAR)),
        (10, SIMILARITY_THRESHOLD - 0.01, ("small", "different", SMALL_DIFFERENT)),
        (5000, 0.1, ("large", "different", LARGE_DIFFERENT)),
    ],
)
def test_the_four_quadrants(smallest, similarity, expected):
    assert choose_strategy(smallest, similarity) == expected


def test_similarity_is_the_share_of_imagenets_gain_the_top_layer_keeps():
    def similarity(top, earlier, random):
        return similarity_from_scores({"imagenet": {"block": earlier, "top": top}, "random": {"top": random}})

    assert similarity(1.0, 0.9, 0.6) == 1.0  # the top is the best layer
    assert similarity(0.85, 0.89, 0.6) == pytest.approx(0.25 / 0.29)  # an earlier layer does better
    assert similarity(0.7, 0.95, 0.6) == pytest.approx(0.1 / 0.35)
    assert similarity(1.0, 1.0, 1.0) == 0.0  # random features do as well: ImageNet adds nothing
    assert similarity(0.5, 0.6, 0.7) == 0.0


def test_presets_are_valid_train_configs_for_their_backbone():
    assert set(PRESETS) == {SMALL_SIMILAR, LARGE_SIMILAR, SMALL_DIFFERENT, LARGE_DIFFERENT}
    assert set(AUTO_PRESET) == PRESET_FIELDS  # the one-click preset replaces all a strategy set
    TrainConfig(data="x", **AUTO_PRESET).validate()
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


def test_real_photos_are_similar_and_flat_colours_different(tmp_path, keras_home):
    photos = advise(horse_or_human_subset(tmp_path / "hoh", 8, "train", stride=60), sample_per_class=8)
    colours = advise(make_color_dataset(tmp_path / "colours", per_class=8), sample_per_class=8)
    assert photos.similarity >= SIMILARITY_THRESHOLD, photos
    assert photos.scores["imagenet"]["top"] >= max(photos.scores["random"].values()) + 0.2, photos.scores
    assert colours.similarity == 0.0, colours  # random weights separate colours as well
    assert (photos.similarity_label, colours.similarity_label) == ("similar", "different")
    assert photos.strategy == SMALL_SIMILAR and colours.strategy == SMALL_DIFFERENT
    assert photos.preset == colours.preset == AUTO_PRESET  # one click: auto measures on all images
    assert photos.sample_size == 16 and photos.images_per_class_min == 8
    top, control = photos.scores["imagenet"]["top"], max(photos.scores["random"].values())
    for number in ("8 images", f"{top:.3f}", f"{control:.3f}", f"{photos.similarity:.2f}", SMALL_SIMILAR):
        assert number in photos.explanation


def test_counts_come_from_the_train_split_and_bad_images_are_left_out(tmp_path, keras_home):
    root = tmp_path / "split"
    for split, per_class in (("train", {"a": 5, "b": 3}), ("validation", {"a": 2, "b": 2})):
        for name, n in per_class.items():
            for i in range(n):
                write_image(
                    root / split / name / f"{i}.png", (200, 100, 50) if name == "a" else (9, 9, 9), seed=i
                )
    advice = advise(root, sample_per_class=2)
    assert advice.counts == {"a": 5, "b": 3}
    assert (advice.images_per_class_min, advice.images_per_class_mean) == (3, 4.0)
    assert advice.sample_size == 4 and advice.size_label == "small"
    broken = root / "train" / "a" / "broken.png"
    broken.write_bytes(b"not an image")
    paths = [
        broken,
        *sorted((root / "train" / "a").glob("[0-9].png"))[:2],
        *(root / "train" / "b").glob("*.png"),
    ]
    _, used = transfer_scores(paths, [0, 0, 0, 1, 1, 1])
    assert used == 5
    with pytest.raises(ValueError, match="none of the sampled images"):
        transfer_scores([broken], [0])


def test_cli_names_the_missing_weights_file(tmp_path, color_dataset):
    result = run_cli("core.advisor", str(color_dataset), env=unreachable_network_env(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Could not download the ImageNet weights for mobilenet_v2 ")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in line
    assert str(tmp_path / "empty-keras-home" / "models") in line


def test_cli_refuses_a_missing_dataset(tmp_path):
    result = run_cli("core.advisor", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: dataset folder not found: {tmp_path / 'nope'}"
