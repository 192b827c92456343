"""The training stages: the head (on cached embeddings or live images), fine-tuning, and
feature extraction with a classical classifier. `core.train.train` strings them together.

Following keras-io's transfer-learning guide: while the base is frozen its output never
changes, so "run the base once" and train the head on the recorded embeddings; fine-tune
only after the head has trained, with a ~10x smaller learning rate, BatchNorm frozen.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.auto import HEAD_STEPS
from core.callbacks import AtomicCheckpoint, RunLogger, early_stopping, link_or_copy, save_atomic
from core.classical import (
    CLASSIFIER_FILE,
    linear_weights,
    make_classifier,
    probabilities,
    save_classifier,
)
from core.config import TrainConfig, head_training_choice
from core.data import DatasetReport, Split
from core.embeddings import CacheStats, EmbeddingCache, augment_variant, embed_paths
from core.model import feature_extractor, head_model, set_linear_head, unfreeze_top
from core.pipeline import embedding_dataset, make_dataset, steps_per_epoch
from core.progress_model import EMBEDDING, TRAINING, mark_phase
from core.runs import RunDir, append_jsonl, write_json_atomic
from core.tf_setup import keras

CACHED_SAVE_EVERY_S = 10.0  # head epochs take milliseconds; saving the model each one would dominate


class StopFlag(Protocol):
    def __bool__(self) -> bool: ...  # true once the user asked the run to stop (STOP file or SIGTERM)


@dataclass(frozen=True)
class RunContext:
    """What every training stage is given besides its model: the run's config and folder, the
    scanned dataset, whether a stop was requested, and where to log."""

    config: TrainConfig
    run_dir: Path
    report: DatasetReport
    stop: StopFlag
    log: Callable[[str], None]

    def replace(self, **changes) -> RunContext:
        return dataclasses.replace(self, **changes)

    @property
    def num_classes(self) -> int:
        return len(self.report.class_names)


def embed_splits(
    ctx: RunContext, extractor, stats: CacheStats
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) embeddings: every image once, in one pass of the base
    (one pass traces and warms up once), plus `augment_views` augmented views of training images."""
    config, report, run_dir = ctx.config, ctx.report, ctx.run_dir
    cache = EmbeddingCache()
    train, val = report.splits["train"], report.splits["validation"]
    views = 0 if config.augment.is_identity else config.augment_views  # identical views: no new data
    mark_phase(run_dir, EMBEDDING, phase=f"computing embeddings (1/{1 + views})", embedded=0, to_embed=None)
    plain = embed_paths(
        extractor, config, train.paths + val.paths, cache, stats=stats,
        progress=_embedding_progress(run_dir, f"1/{1 + views}", stats, len(train.paths) * views),
    )  # fmt: skip
    x_train, x_val = [plain[: len(train.paths)]], plain[len(train.paths) :]
    for view in range(views):
        RunDir(run_dir).write_status(phase=f"computing embeddings ({view + 2}/{1 + views})")
        variant = augment_variant(config.augment, view)
        later = len(train.paths) * (views - view - 1)
        progress = _embedding_progress(run_dir, f"{view + 2}/{1 + views}", stats, later)
        x_train.append(
            embed_paths(extractor, config, train.paths, cache, variant, config.augment, stats, progress)
        )
    RunDir(run_dir).write_status(phase=None, engine=stats.engine)  # None: every embedding came from the cache
    y_train = np.asarray(train.labels * (1 + views))
    return np.concatenate(x_train), y_train, x_val, np.asarray(val.labels)


def embeddings_line(stats: CacheStats) -> str:
    """ "embeddings: 0 from cache, 1283 computed (litert: checked against Keras ...)"."""
    engine = f" by {stats.engine}" if stats.engine else ""
    return f"embeddings: {stats.hits} from cache, {stats.misses} computed{engine}"


def _embedding_progress(run_dir: Path, label: str, stats: CacheStats, later: int):
    """Reports "computing embeddings (1/2): 640/1283 images" in status.json twice a second, and
    for the time estimate the images computed so far (`embedded`) of all the run will compute
    (`to_embed`: those of this pass and earlier ones, counted in `stats`, plus `later` ones)."""
    reported_at = [0.0]

    def report(done: int, total: int) -> None:
        if done == total or time.time() - reported_at[0] >= 0.5:
            reported_at[0] = time.time()
            RunDir(run_dir).write_status(
                phase=f"computing embeddings ({label}): {done}/{total} images",
                embedded=stats.misses - total + done,
                to_embed=stats.misses + later,
            )

    return report


def class_weights(config: TrainConfig, labels, num_classes: int) -> dict[int, float] | None:
    """Inverse-frequency weights {class: n / (classes * count)} when the config asks for them."""
    if not config.class_weights:
        return None
    counts = np.bincount(np.asarray(labels, int), minlength=num_classes)
    return {i: float(len(labels) / (num_classes * max(c, 1))) for i, c in enumerate(counts)}


def _targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return labels.astype(np.float32).reshape(-1, 1) if num_classes == 2 else labels.astype(np.int32)


def train_head(
    ctx: RunContext, model: keras.Model, initial_epoch: int = 0, best: float | None = None
) -> tuple[AtomicCheckpoint, int]:
    """Stage 1: train the head with the base frozen. Returns the checkpoint and epochs done.

    A resumed run passes the epochs already done and the best monitored value so far.
    """
    config, run_dir, report, log = ctx.config, ctx.run_dir, ctx.report, ctx.log
    path, why = head_training_choice(config)
    log(f"head training: {path} ({why})")
    write_json_atomic(RunDir(run_dir).config_file, {**config.to_dict(), "head_training": path})
    RunDir(run_dir).write_status(head_training=path, head_training_reason=why)
    total = config.total_epochs
    train_split, val_split = report.splits["train"], report.splits["validation"]
    num_classes = len(report.class_names)
    if path == "cached":
        stats = CacheStats()
        extractor = feature_extractor(model)
        x_train, y_train, x_val, y_val = embed_splits(ctx, extractor, stats)
        log(embeddings_line(stats))
        RunDir(run_dir).write_status(cache_hits=stats.hits, cache_misses=stats.misses)
        if not config.dense_units and initial_epoch == 0:
            start_from_logistic_regression(config, model, x_train, y_train, num_classes)
        fitted = head_model(model, config.optimizer, config.learning_rate)
        checkpoint = AtomicCheckpoint(
            run_dir, model, config.monitor, CACHED_SAVE_EVERY_S, head_snapshots=True
        )
        batches = head_steps_per_epoch(len(x_train), config.batch_size, config.epochs)
        data = dict(
            x=embedding_dataset(
                x_train, _targets(y_train, num_classes), config.batch_size, training=True, seed=config.seed
            ).repeat(),
            steps_per_epoch=batches,
            validation_data=embedding_dataset(
                x_val, _targets(y_val, num_classes), config.batch_size, training=False
            ),
        )
    else:
        fitted, checkpoint = model, AtomicCheckpoint(run_dir, model, config.monitor)
        batches = steps_per_epoch(train_split, config.batch_size)
        data = dict(
            x=_live_train(config, train_split, num_classes),
            validation_data=make_dataset(
                val_split, config.image_size, config.batch_size, num_classes, training=False
            ),
        )
    RunDir(run_dir).write_status(batches=batches)
    checkpoint.best = best
    logger = RunLogger(run_dir, total, batches, lambda: bool(ctx.stop), stage=1, log=log)
    history = fitted.fit(
        initial_epoch=initial_epoch,
        epochs=config.epochs,
        verbose=0,
        class_weight=class_weights(config, train_split.labels, num_classes),
        callbacks=[checkpoint, logger, *early_stopping(config.monitor, config.patience)],
        **data,
    )
    return checkpoint, initial_epoch + len(history.epoch)


def start_from_logistic_regression(config: TrainConfig, model: keras.Model, x, y, num_classes: int) -> None:
    """Initialise a linear head (no hidden layer) with logistic regression on the same embeddings:
    training then starts where the features-mode classifier ends, so a handful of images cannot
    leave the head worse than it (measured: 10 photos per class, MobileNetV2 x0.35 at 128 px,
    the head from random initialisation 0.86, logistic regression 0.94)."""
    smallest = int(np.bincount(np.asarray(y, int), minlength=num_classes).min())
    if smallest < 1:
        return  # a class without training images: nothing to fit; train from scratch
    logreg = dataclasses.replace(config, classifier="logreg", classifier_c=1.0)
    weights = linear_weights(make_classifier(logreg, smallest).fit(x, y), num_classes)
    if weights is not None:
        set_linear_head(model, *weights)


def head_steps_per_epoch(images: int, batch_size: int, epochs: int) -> int:
    """Batches per epoch of the head on cached embeddings: one pass over the images, or more,
    so that all epochs together take at least HEAD_STEPS optimisation steps. 30 images at
    batch 16 for 10 epochs would be 20 steps, and the head would never converge."""
    return max(math.ceil(images / batch_size), math.ceil(HEAD_STEPS / epochs))


def _live_train(config: TrainConfig, split: Split, num_classes: int):
    return make_dataset(
        split,
        config.image_size,
        config.batch_size,
        num_classes,
        training=True,
        augment=config.augment,
        seed=config.seed,
    )


def fine_tune(
    ctx: RunContext,
    model: keras.Model,
    checkpoint: AtomicCheckpoint,
    epochs_done: int,
    stage2_start: int | None = None,
    anneal: bool = False,
) -> None:
    """Stage 2: from the best stage-1 weights, unfreeze the base's top layers and train on.

    A run resumed inside stage 2 passes `stage2_start` and keeps its current weights. With
    `anneal`, the learning rate decays to 0 along a cosine over the stage's steps, so its last
    epoch is a settled one: auto mode keeps a last epoch that no split chose (measured on PBC
    blood cells at a constant rate: held-out macro-F1 0.922, 0.943, 0.958, 0.948, 0.922 over 5 epochs).
    """
    config, run_dir, report, log = ctx.config, ctx.run_dir, ctx.report, ctx.log
    best = RunDir(run_dir).checkpoint("best")
    if stage2_start is None and best.is_file():
        model.load_weights(best)
    stage2_start = stage2_start or epochs_done + 1
    num_classes = len(report.class_names)
    train_split, val_split = report.splits["train"], report.splits["validation"]
    batches = steps_per_epoch(train_split, config.batch_size)
    learning_rate = config.learning_rate * config.fine_tune_lr_factor
    schedule = (
        keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=batches * config.fine_tune_epochs)
        if anneal
        else learning_rate
    )
    trainable = unfreeze_top(model, config.fine_tune_layers, schedule, config.optimizer)
    log(
        f"stage 2: fine-tuning the top {config.fine_tune_layers} backbone layers "
        f"({trainable} trainable, BatchNormalization frozen) at learning rate {learning_rate:g}"
        + (", decaying to 0 (cosine)" if anneal else "")
    )
    RunDir(run_dir).write_status(stage=2, batches=batches, stage2_start_epoch=stage2_start)
    total = stage2_start - 1 + config.fine_tune_epochs
    logger = RunLogger(run_dir, config.total_epochs, batches, lambda: bool(ctx.stop), stage=2, log=log)
    checkpoint.every_s = 0.0  # stage 2 epochs are slow: save every one
    model.fit(
        _live_train(config, train_split, num_classes),
        validation_data=make_dataset(
            val_split, config.image_size, config.batch_size, num_classes, training=False
        ),
        class_weight=class_weights(config, train_split.labels, num_classes),
        initial_epoch=epochs_done,
        epochs=total,
        verbose=0,
        callbacks=[checkpoint, logger, *early_stopping(config.monitor, config.patience)],
    )


def train_features(ctx: RunContext, model: keras.Model) -> None:
    """Feature extraction: a scikit-learn classifier on (cached) backbone embeddings."""
    config, num_classes = ctx.config, ctx.num_classes
    started, stats = time.time(), CacheStats()
    extractor = feature_extractor(model)
    x_train, y_train, x_val, y_val = embed_splits(ctx, extractor, stats)
    ctx.log(embeddings_line(stats))
    mark_phase(ctx.run_dir, TRAINING, cache_hits=stats.hits, cache_misses=stats.misses)
    smallest_class = int(np.bincount(y_train, minlength=num_classes).min())
    estimator = make_classifier(config, smallest_class).fit(x_train, y_train)
    p_train, p_val = (probabilities(estimator, x, num_classes) for x in (x_train, x_val))
    save_features_model(ctx.run_dir, model, extractor, estimator, num_classes)
    fit = SingleFit(p_train, y_train, p_val, y_val, time.time() - started, config.classifier)
    record_single_fit(ctx, fit, stats)


@dataclass(frozen=True)
class SingleFit:
    """A classifier fitted once: its probabilities on both splits, how long it all took, its name."""

    p_train: np.ndarray
    y_train: np.ndarray
    p_val: np.ndarray
    y_val: np.ndarray
    seconds: float
    label: str


def record_single_fit(ctx: RunContext, fit: SingleFit, stats: CacheStats) -> None:
    """A run fitted once (features or auto mode) is one epoch in metrics.jsonl and best.json."""
    from sklearn.metrics import f1_score, log_loss

    config, run_dir = ctx.config, ctx.run_dir
    p_train, y_train, p_val, y_val, seconds = fit.p_train, fit.y_train, fit.p_val, fit.y_val, fit.seconds

    labels = list(range(p_train.shape[1]))
    metrics = {
        "loss": log_loss(y_train, p_train, labels=labels),
        "accuracy": float(np.mean(p_train.argmax(1) == y_train)),
        "val_loss": log_loss(y_val, p_val, labels=labels),
        "val_accuracy": float(np.mean(p_val.argmax(1) == y_val)),
        "macro_f1": f1_score(y_train, p_train.argmax(1), average="macro", labels=labels),
        "val_macro_f1": f1_score(y_val, p_val.argmax(1), average="macro", labels=labels),
    }
    append_jsonl(
        RunDir(run_dir).metrics_file,
        {"epoch": 1, **metrics, "seconds": round(seconds, 3), "time": time.time(), "stage": 1},
    )
    write_json_atomic(
        RunDir(run_dir).best_record_file,
        {"epoch": 1, "monitor": config.monitor, "value": metrics[config.monitor]},
    )
    RunDir(run_dir).write_status(epoch=1, cache_hits=stats.hits, cache_misses=stats.misses)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    ctx.log(f"epoch 1/1  {fit.label}  {shown}  ({seconds:.1f} s)")


def save_features_model(run_dir: Path, model, extractor, estimator, num_classes: int) -> None:
    """Logistic regression folds into the Keras output layer; other classifiers are saved
    with joblib beside the feature extractor."""
    run = RunDir(run_dir)
    weights = linear_weights(estimator, num_classes)
    if weights is not None:
        set_linear_head(model, *weights)
        save_atomic(model, run.checkpoint("best"))
    else:
        save_atomic(extractor, run.checkpoint("best"))
        save_classifier(estimator, run.checkpoints_dir / CLASSIFIER_FILE)
    link_or_copy(run.checkpoint("best"), run.checkpoint("last"))  # one fit: the last model is the best
