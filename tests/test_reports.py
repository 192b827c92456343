"""core.reports: the plain summaries the dashboard shows, from config and run files."""

import json
from collections import Counter

from core.config import AugmentConfig, TrainConfig
from core.data import DatasetReport, SkippedFile
from core.exclusions import Exclusions
from core.reports import (
    cache_line,
    decisions_line,
    evaluable_splits,
    finding_caption,
    format_bytes,
    gallery_caption,
    head_training_line,
    health_summary_line,
    image_sizes_line,
    skipped_rows,
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


def test_image_sizes_line_lists_the_commonest_and_says_when_there_are_more():
    sizes = Counter({(300, 300): 90, (64, 48): 8, (32, 32): 2})
    line = image_sizes_line(sizes)
    assert line.startswith("Image sizes (3 different): 300x300 (90), 64x48 (8), 32x32 (2).")
    assert image_sizes_line(sizes, shown=2).startswith("Image sizes (3 different): 300x300 (90), 64x48 (8) .")


def test_skipped_rows_are_relative_to_the_dataset_unless_outside_it(tmp_path):
    root = tmp_path / "pets"
    inside, outside = str(root / "cats" / "x.txt"), "/elsewhere/y.png"
    skipped = [SkippedFile(inside, "not an image"), SkippedFile(outside, "bad")]
    report = DatasetReport(str(root), ["cats", "dogs"], {}, skipped, Counter())
    assert skipped_rows(report) == [
        {"file": "cats/x.txt", "reason": "not an image"},
        {"file": "/elsewhere/y.png", "reason": "bad"},
    ]


def test_finding_captions_say_what_each_kind_found():
    duplicate = {"kind": "duplicate", "files": ["a", "b"], "label": "red", "score": 0.9912, "exact": False}
    assert finding_caption(duplicate) == "2 copies (similarity 0.991, all red)"
    splits = ["train", "validation", "train"]
    exact = {**duplicate, "kind": "leakage", "exact": True, "label": None, "splits": splits}
    expected = "2 copies across train / validation (identical files, with different labels)"
    assert finding_caption(exact) == expected
    label = {"kind": "label_issue", "files": ["a"], "label": "blue", "suggested": "red", "score": 0.123}
    assert finding_caption(label) == "In blue, but looks like red (label quality 0.12)"
    outlier = {"kind": "outlier", "files": ["a"], "label": "blue", "score": 7.26}
    assert finding_caption(outlier) == "Unlike every other photo (in blue; 7.3 deviations out)"


def test_health_summary_and_decisions_lines():
    summary = {"images": 12, "backbone": "mobilenet_v2", "image_size": 224, "seconds": 3.5}
    assert health_summary_line(summary) == "Checked 12 photos with mobilenet_v2 at 224 px in 3.5 s."
    assert health_summary_line({}) == "Checked ? photos with ? at ? px in ? s."
    decided = Exclusions(["a.png", "b.png"], {"c.png": "red"})
    assert decisions_line(decided) == "Decided so far: 2 photo(s) left out, 1 moved."
