"""core.reports: the plain summaries the dashboard shows, from config and run files."""

import json
import time
from collections import Counter

from core.config import AugmentConfig, TrainConfig
from core.data import DatasetReport, SkippedFile
from core.exclusions import Exclusions
from core.progress_model import PhaseState, RunProgress
from core.reports import (
    cache_line,
    checkpoint_line,
    completed_line,
    decisions_line,
    evaluable_splits,
    evaluation_caption,
    finding_caption,
    format_bytes,
    gallery_caption,
    head_training_line,
    health_summary_line,
    image_sizes_line,
    one_fit_line,
    progress_text,
    run_kind_line,
    score_tiles,
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


def test_completed_line_says_what_the_run_fitted_and_its_active_time():
    status = {"started_at": 100.0, "ended_at": 112.0}
    assert completed_line(status, {"mode": "finetune"}, 5) == "Completed: 5 epochs in 12 s."
    features = {"mode": "features", "classifier": "svm"}
    assert completed_line(status, features, 1).startswith("Completed: support vector machine fitted on")
    auto = completed_line({**status, "winner": "logistic regression"}, {"mode": "auto"}, 1)
    assert auto == "Completed: logistic regression chosen and fitted in 12 s."


def test_score_tiles_lead_with_macro_f1_when_classes_are_imbalanced():
    last = {"epoch": 3, "val_accuracy": 0.9, "val_macro_f1": 0.5, "val_loss": 0.25, "accuracy": 1.0}
    balanced = {"train": {"a": 10, "b": 10}}
    tiles, notes = score_tiles(last, balanced, features=False)
    assert list(tiles.items())[:2] == [("Epoch", "3"), ("Validation accuracy", "0.900")] and not notes
    tiles, notes = score_tiles({"val_accuracy": 0.9}, {"train": {"a": 90, "b": 10}}, features=True)
    assert list(tiles) == ["Validation macro F1", "Validation accuracy", "Validation loss"]
    assert tiles["Validation macro F1"] == "-" and "imbalanced (9.0x)" in notes[0]
    assert "Feature extraction fits once, no epochs" in notes[1]


def test_progress_text_adds_the_time_left_when_known():
    phase = PhaseState("training", "Training", "current", None)
    progress = RunProgress("running", "training", [phase], 0.5, 32.0, 10.0, "epoch 2/3")
    assert progress_text(progress) == "Training: epoch 2/3 · about 32 s left in all"
    progress.eta_s = None
    assert progress_text(progress) == "Training: epoch 2/3"


def test_run_kind_line_says_the_kind_and_how_it_trained():
    status = {"head_training": "cached", "head_training_reason": "why", "cache_hits": 3, "cache_misses": 1}
    assert run_kind_line("finetune", status) == (
        "Kind: **fine-tune** · head training: **cached (why)** · "
        "embeddings: 3 read from the embedding cache, 1 computed"
    )
    assert run_kind_line("features", {}) == "Kind: **feature extraction**"
    assert run_kind_line("features", {}, "knn") == "Kind: **feature extraction** (k nearest neighbours)"
    assert run_kind_line("auto", {}) == "Kind: **auto**"


def test_one_fit_line_of_a_feature_extraction_run():
    line = one_fit_line({"val_accuracy": 0.9, "val_macro_f1": 0.85, "accuracy": 1.0})
    assert line == (
        "One fit on the embeddings: validation accuracy 0.900, macro F1 0.850; training accuracy 1.000."
    )


def test_checkpoint_line_names_the_file_its_size_and_its_metric():
    saved = time.mktime((2026, 11, 30, 21, 4, 0, 0, 0, -1))
    row = {"checkpoint": "best", "size_mb": 9.14, "modified": saved}
    assert checkpoint_line(row) == "**best.keras** · 9.1 MB · saved 2026-11-30 21:04"
    row.update(monitor="val_accuracy", value=0.95, epoch=2)
    assert checkpoint_line(row).endswith("saved 2026-11-30 21:04 · val_accuracy 0.9500 at epoch 2")


def test_evaluation_caption_says_what_was_measured_and_what_was_left_out():
    result = {
        "checkpoint": "best",
        "split": "test",
        "evaluated_at": time.mktime((2026, 1, 2, 3, 4, 0, 0, 0, -1)),
    }
    assert evaluation_caption(result) == "The best checkpoint on the test split, 2026-01-02 03:04"
    result["skipped"] = ["a.png", "b.png"]
    assert evaluation_caption(result).endswith("03:04 · 2 unreadable image(s) left out")


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
