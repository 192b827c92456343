"""Plain summaries for the dashboard: runs (live progress, the runs table, checkpoints),
dataset reports and health findings.

No TensorFlow and no Streamlit: everything here is read from the run's files, a dataset's
scan or a health check's findings.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from core.config import IMBALANCE_WARNING_RATIO, AugmentConfig, TrainConfig, head_training_choice
from core.data import EVALUATION_SPLITS, DatasetReport, imbalance_ratio
from core.exclusions import Exclusions
from core.progress_model import RunProgress, run_duration
from core.runs import CHECKPOINTS, COMPLETED, RunDir, RunSummary
from core.uploads import safe_name

CLASSIFIER_NAMES = {
    "logreg": "logistic regression",
    "svm": "support vector machine",
    "knn": "k nearest neighbours",
    "tree": "decision tree",
}


def describe_augment(augment: dict | None) -> str:
    """An augmentation in words: "rotate up to ±40°, shift up to 20% sideways and 20% up or
    down, shear 0.2, flip left-right (fill: nearest)", or "none"."""
    a = {**AugmentConfig().__dict__, **(augment or {})}
    parts = []
    if a["rotation"]:
        parts.append(f"rotate up to ±{a['rotation']:g}°")
    shifts = [
        f"{a[k]:.0%} {how}"
        for k, how in (("width_shift", "sideways"), ("height_shift", "up or down"))
        if a[k]
    ]
    if shifts:
        parts.append("shift up to " + " and ".join(shifts))
    if a["shear"]:
        parts.append(f"shear {a['shear']:g}")
    if a["zoom"]:
        parts.append(f"zoom in or out up to {a['zoom']:.0%}")
    if a["horizontal_flip"]:
        parts.append("flip left-right")
    if not parts:
        return "none"
    moves = a["rotation"] or a["width_shift"] or a["height_shift"] or a["shear"] or a["zoom"]
    return ", ".join(parts) + (f" (fill: {a['fill_mode']})" if moves else "")


def format_duration(seconds: float | None) -> str:
    """ "1 h 02 min", "3 min 05 s", "42 s"; "-" for None."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def runs_table(summaries: list[RunSummary]) -> list[dict]:
    """One row per run, for a table: date, dataset, backbone, mode, state, best val accuracy,
    epochs, active duration."""
    return [
        {
            "run": s.name,
            "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started_at)) if s.started_at else "-",
            "dataset": s.dataset,
            "backbone": s.backbone,
            "mode": s.mode,
            "state": s.state,
            "best val accuracy": format_score(s.best_val_accuracy),
            "epochs": s.epochs_done,
            "duration": format_duration(s.duration_s),
        }
        for s in summaries
    ]


def format_score(value: float | None) -> str:
    """ "0.996", or "-" for a score not recorded (the run failed or stopped before an epoch)."""
    return "-" if value is None else f"{value:.3f}"


def run_label(summary: RunSummary) -> str:
    """A run's name, with its dataset's when the name lacks it (runs named before it was added)."""
    slug = safe_name(summary.dataset, "data")
    return summary.name if f"-{slug}-" in summary.name else f"{summary.name} · {summary.dataset}"


def checkpoint_files(run_dir: Path) -> list[dict]:
    """The run's checkpoints that exist: name, path, size in MB, modified time, and for
    `best` the epoch and metric recorded in best.json."""
    best = RunDir(run_dir).best_record()
    rows = []
    for name in CHECKPOINTS:
        path = RunDir(run_dir).checkpoint(name)
        if not path.is_file():
            continue
        stat = path.stat()
        row = {"checkpoint": name, "path": path, "size_mb": stat.st_size / 1024**2, "modified": stat.st_mtime}
        if name == "best" and best:
            row.update(epoch=best.get("epoch"), monitor=best.get("monitor"), value=best.get("value"))
        rows.append(row)
    return rows


def predictable_runs(summaries: list[RunSummary]) -> list[RunSummary]:
    """Runs with at least one checkpoint, completed runs first (newest first within each)."""
    usable = [s for s in summaries if any(RunDir(s.path).checkpoint(c).is_file() for c in CHECKPOINTS)]
    return sorted(usable, key=lambda s: s.state != COMPLETED)


def stage2_start(status: dict, epoch_records: list[dict]) -> int | None:
    """The first epoch of stage 2 (fine-tuning): status.json's `stage2_start_epoch`, else
    the first epoch record marked stage 2; None for a run without stage 2."""
    if status.get("stage2_start_epoch"):
        return int(status["stage2_start_epoch"])
    stage2 = [r["epoch"] for r in epoch_records if r.get("stage") == 2 and "epoch" in r]
    return min(stage2) if stage2 else None


def head_training_line(status: dict) -> str | None:
    """How the run trained its head, from status.json: "cached: why", or None if not recorded."""
    path = status.get("head_training")
    if not path:
        return None
    why = status.get("head_training_reason")
    return f"{path} ({why})" if why else path


def run_kind_line(mode: str, status: dict, classifier: str | None = None) -> str:
    """ "Kind: **fine-tune** · head training: **cached (why)** · embeddings: 3 read from ...":
    what kind of run it is and how it trained, from its mode and status.json (a feature
    extraction's `classifier` named after its kind)."""
    kinds = {"auto": "auto", "features": "feature extraction"}
    parts = [f"Kind: **{kinds.get(mode, 'fine-tune')}**"]
    if mode == "features" and classifier:
        parts[0] += f" ({CLASSIFIER_NAMES.get(classifier, classifier)})"
    if head_training_line(status):
        parts.append(f"head training: **{head_training_line(status)}**")
    if cache_line(status):
        parts.append(f"embeddings: {cache_line(status)}")
    return " · ".join(parts)


def one_fit_line(record: dict) -> str:
    """A feature-extraction run's one fit on the embeddings (its only metrics record), in words:
    it has no epochs, so a curve would be one dot."""
    return (
        f"One fit on the embeddings: validation accuracy {record.get('val_accuracy', 0):.3f}, "
        f"macro F1 {record.get('val_macro_f1', 0):.3f}; training accuracy {record.get('accuracy', 0):.3f}."
    )


def checkpoint_line(row: dict) -> str:
    """ "**best.keras** · 9.1 MB · saved 2026-11-30 21:04 · val_accuracy 0.9500 at epoch 2" for a
    `checkpoint_files` row (the metric only where best.json recorded one)."""
    metric = f" · {row['monitor']} {row['value']:.4f} at epoch {row['epoch']}" if row.get("monitor") else ""
    modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["modified"]))
    return f"**{row['checkpoint']}.keras** · {row['size_mb']:.1f} MB · saved {modified}{metric}"


def evaluation_caption(result: dict) -> str:
    """ "The best checkpoint on the validation split, 2026-11-30 21:04 · 2 unreadable image(s)
    left out": which checkpoint and split one evaluation.json entry measured, and when."""
    evaluated = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.get("evaluated_at") or 0))
    skipped = f" · {len(result['skipped'])} unreadable image(s) left out" if result.get("skipped") else ""
    return f"The {result['checkpoint']} checkpoint on the {result['split']} split, {evaluated}{skipped}"


def cache_line(status: dict) -> str | None:
    """ "38 read from the embedding cache, 2 computed", or None if the run recorded none."""
    hits, misses = status.get("cache_hits"), status.get("cache_misses")
    if hits is None and misses is None:
        return None
    return f"{hits or 0} read from the embedding cache, {misses or 0} computed"


def training_plan(config: TrainConfig) -> list[str]:
    """What a run of `config` will do, one Markdown line per stage, before it starts."""
    views = config.augment_views if not config.augment.is_identity else 0
    extra = f" plus {views} augmented view(s) of each training image" if views else ""
    layer = f" (layer `{config.feature_layer}`)" if config.feature_layer else ""
    if config.mode == "auto":
        return auto_plan(config)
    if config.mode == "features":
        classifier = CLASSIFIER_NAMES.get(config.classifier, config.classifier)
        lines = [
            f"**Feature extraction:** the frozen {config.backbone}{layer} embeds every image once{extra}; "
            f"the embeddings are cached on disk, and a **{classifier}** classifier is fitted on them."
        ]
        if not config.augment.is_identity and not views:
            lines.append(
                "The augmentation is not used: feature extraction sees each image once. "
                "Set augmented views above 0 to add augmented copies."
            )
        return lines
    path, why = head_training_choice(config)
    lines = [f"**Stage 1, the head ({path}):** {why}."]
    if config.fine_tune_layers:
        rate = config.learning_rate * config.fine_tune_lr_factor
        lines.append(
            f"**Stage 2, fine-tuning:** the top {config.fine_tune_layers} backbone layers are unfrozen "
            f"(BatchNormalization stays frozen) for {config.fine_tune_epochs} more epoch(s) at learning "
            f"rate {rate:.2g}, on live images."
        )
    return lines


def evaluable_splits(run_dir: Path) -> list[str]:
    """The splits a run's dataset has (from dataset.json), in the order to offer them;
    every split when the run recorded none (the evaluation then names what exists)."""
    counts = RunDir(run_dir).dataset().get("counts")
    counts = counts if isinstance(counts, dict) else {}
    return [s for s in EVALUATION_SPLITS if s in counts] or list(EVALUATION_SPLITS)


def gallery_caption(entry: dict) -> str:
    """ "true horses · predicted humans 83%": an evaluation gallery image's classes and the
    probability the model gave its prediction."""
    predicted = entry.get("predicted", "?")
    probability = (entry.get("probabilities") or {}).get(predicted)
    sure = f" {probability:.0%}" if probability is not None else ""
    return f"true {entry.get('true', '?')} · predicted {predicted}{sure}"


def format_bytes(size: float) -> str:
    """ "0 B", "12.3 KB", "4.5 MB", "4.0 GB", in powers of 1024 (as the cache limit is set)."""
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def auto_plan(config: TrainConfig) -> list[str]:
    """What an auto run will do, before it starts."""
    lines = [
        f"**Auto:** the frozen {config.backbone} embeds every image once, at its top and at the ends "
        "of two earlier stages (cached on disk). Logistic regression, the Keras head, a linear SVM and "
        "k nearest neighbours are compared by k-fold cross-validation on the training split; the best "
        "is kept and reported on the validation split. Whether fine-tuning the backbone is worth its "
        "cost is decided from these measurements and recorded in the run."
    ]
    if not config.augment.is_identity:
        lines.append("The augmentation is not used: auto measures each image once.")
    return lines


# --- the Train page's view of one run --------------------------------------------------------
def completed_line(status: dict, run_config: dict, epochs: int) -> str:
    """ "Completed: 5 epochs in 42 s." — what the run fitted (a classifier, auto's winner, or
    its epochs) and its active time."""
    if run_config.get("mode") == "features":
        done = f"{CLASSIFIER_NAMES.get(run_config.get('classifier'), 'classifier')} fitted on the embeddings"
    elif status.get("winner"):
        done = f"{status['winner']} chosen and fitted"
    else:
        done = f"{epochs} epochs"
    return f"Completed: {done} in {format_duration(run_duration(status))}."


def score_tiles(last: dict, counts: dict, features: bool) -> tuple[dict[str, str], list[str]]:
    """The latest epoch's scores as {label: shown value}, and the captions that explain them.

    Macro F1 comes first when the classes are imbalanced (accuracy can look good while a small
    class is mostly wrong); feature extraction has no epochs, so no "Epoch" tile.
    """
    scores = {
        "Validation accuracy": last.get("val_accuracy"),
        "Validation macro F1": last.get("val_macro_f1"),
        "Validation loss": last.get("val_loss"),
    }
    notes = []
    ratio = imbalance_ratio(counts)
    if ratio > IMBALANCE_WARNING_RATIO:
        scores = {k: scores[k] for k in ("Validation macro F1", "Validation accuracy", "Validation loss")}
        notes.append(
            f"Macro F1 comes first: the classes are imbalanced ({ratio:.1f}x), so "
            "accuracy can look good while the small class is mostly wrong."
        )
    tiles = {label: format_score(value) for label, value in scores.items()}
    if features:
        notes.append(
            f"Feature extraction fits once, no epochs: on the training images accuracy "
            f"{format_score(last.get('accuracy'))}, loss {format_score(last.get('loss'))}."
        )
    else:
        tiles = {"Epoch": str(last.get("epoch")), **tiles}
    return tiles, notes


def progress_text(progress: RunProgress) -> str:
    """The progress bar's text: "Training: epoch 2/3 · batch 2/4 · about 32 s left in all"."""
    eta = f" · about {format_duration(progress.eta_s)} left in all" if progress.eta_s is not None else ""
    return f"{progress.label}: {progress.detail}{eta}"


# --- the Data page: a dataset's scan and its health findings ------------------------------------
def image_sizes_line(sizes: Counter, shown: int = 8) -> str:
    """ "Image sizes (3 different): 300x300 (90), 64x64 (8), 32x32 (2). ...": the commonest first."""
    common = sizes.most_common(shown)
    return (
        f"Image sizes ({len(sizes)} different): "
        + ", ".join(f"{w}x{h} ({n})" for (w, h), n in common)
        + (" ..." if len(sizes) > len(common) else "")
        + ". Training resizes every image to the model's input size."
    )


def skipped_rows(report: DatasetReport) -> list[dict]:
    """The files a scan skipped, as table rows: the file relative to the dataset (in full when it
    lies outside, e.g. reached through a link) and the reason."""
    root = Path(report.root)
    rows = []
    for skipped in report.skipped:
        path = Path(skipped.path)
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else skipped.path
        rows.append({"file": shown, "reason": skipped.reason})
    return rows


def finding_caption(finding: dict) -> str:
    """A data-health finding (`core.health`'s JSON) in words: "2 copies across train / validation
    (similarity 0.991, all horses)", "In cats, but looks like dogs (label quality 0.12)"."""
    kind, score = finding["kind"], finding["score"]
    if kind in ("duplicate", "leakage"):
        same = "identical files" if finding.get("exact") else f"similarity {score:.3f}"
        where = " across " + " / ".join(dict.fromkeys(finding.get("splits", []))) if kind == "leakage" else ""
        label = f", all {finding['label']}" if finding.get("label") else ", with different labels"
        return f"{len(finding['files'])} copies{where} ({same}{label})"
    if kind == "label_issue":
        return f"In {finding['label']}, but looks like {finding['suggested']} (label quality {score:.2f})"
    return f"Unlike every other photo (in {finding['label']}; {score:.1f} deviations out)"


def health_summary_line(summary: dict) -> str:
    """What a health check looked at, from its summary line ("?" for what an old file lacks)."""
    return (
        f"Checked {summary.get('images', '?')} photos with {summary.get('backbone', '?')} at "
        f"{summary.get('image_size', '?')} px in {summary.get('seconds', '?')} s."
    )


def decisions_line(exclusions: Exclusions) -> str:
    """How many photos the user has left out and moved so far."""
    return (
        f"Decided so far: {len(exclusions.excluded)} photo(s) left out, {len(exclusions.relabelled)} moved."
    )
