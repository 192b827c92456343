"""core.reports: the plain summaries the dashboard shows, from config and run files."""

import json

from core.config import AugmentConfig, TrainConfig
from core.reports import (
    cache_line,
    evaluable_splits,
    format_bytes,
    gallery_caption,
    head_training_line,
    stage2_start,
    training_plan,
)

FLIP = AugmentConfig(horizontal_flip=True)


def test_plan_of_a_cached_head_and_stage_2():
    config = TrainConfig(mode="finetune", fine_tune_layers=30, learning_rate=1e-3, fine_tune_lr_factor=0.1)
    lines = training_plan(config)
    assert lines[0].startswith("**Stage 1, the head (cached):** the frozen base runs once per image")
    assert "top 30 backbone layers" in lines[1] and "learning rate 0.0001" in lines[1]


def test_plan_of_live_augmentation_says_why_it_is_live():
    (line,) = training_plan(TrainConfig(mode="finetune", augment=FLIP))
    assert "(live)" in line and "cache augmented views instead (augmented views > 0)" in line


def test_plan_of_feature_extraction():
    lines = training_plan(TrainConfig(mode="features", classifier="svm", augment=FLIP, augment_views=2))
    assert lines == [
        "**Feature extraction:** the frozen mobilenet_v2 embeds every image once plus 2 augmented "
        "view(s) of each training image; the embeddings are cached on disk, and a **support vector "
        "machine** classifier is fitted on them."
    ]
    ignored = training_plan(TrainConfig(mode="features", augment=FLIP))
    assert "augmentation is not used" in ignored[1]


def test_stage2_start_from_status_or_from_the_records():
    records = [{"epoch": 1, "stage": 1}, {"epoch": 2, "stage": 2}, {"epoch": 3, "stage": 2}]
    assert stage2_start({"stage2_start_epoch": 4}, records) == 4
    assert stage2_start({}, records) == 2
    assert stage2_start({}, records[:1]) is None


def test_status_lines():
    status = {"head_training": "cached", "head_training_reason": "why", "cache_hits": 3, "cache_misses": 1}
    assert head_training_line(status) == "cached (why)"
    assert cache_line(status) == "3 read from the embedding cache, 1 computed"
    assert head_training_line({}) is None and cache_line({}) is None


def test_evaluable_splits_from_dataset_json(tmp_path):
    assert evaluable_splits(tmp_path) == ["validation", "test", "train"]  # not recorded: offer all
    counts = {"train": {"a": 1}, "validation": {"a": 1}}
    (tmp_path / "dataset.json").write_text(json.dumps({"counts": counts}))
    assert evaluable_splits(tmp_path) == ["validation", "train"]


def test_gallery_caption_and_bytes():
    entry = {"true": "horses", "predicted": "humans", "probabilities": {"horses": 0.17, "humans": 0.83}}
    assert gallery_caption(entry) == "true horses · predicted humans 83%"
    sizes = (0, 1023, 3456, 4.5 * 1024**2, 4 * 1024**3, 5000 * 1024**3)
    assert [format_bytes(n) for n in sizes] == ["0 B", "1023 B", "3.4 KB", "4.5 MB", "4.0 GB", "5000.0 GB"]
