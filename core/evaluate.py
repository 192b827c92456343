"""Evaluate a trained run on one split of its dataset.

    python -m core.evaluate --run RUN_DIR [--split validation|test|train] [--checkpoint best|last]
    python -m core.evaluate --run RUN_DIR [--split ...] --overlays

Writes `RUN_DIR/evaluation.json` (keyed by split, merged with splits evaluated before)
and small JPEG thumbnails of the worst images under `RUN_DIR/evaluation/<split>/`, so
the dashboard can show them without the dataset, with their Grad-CAM overlays. A training's
own final evaluation leaves the overlays for later (they are a backward pass per image, 2 s
of a 15 s features run, for a gallery few look at): `--overlays` draws them for an
evaluation without them, as the Checkpoints page does when asked. Prints a short summary;
on bad input it exits with status 2 and a one-line error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.cli import OneLineParser, exit_now, fail
from core.config import ConfigError
from core.data import EVALUATION_SPLITS, DatasetError, DatasetReport, evenly_spaced, load_image, scan_dataset
from core.demo import hold_job_slot
from core.predict import CHECKPOINTS, Classifier, RunNotReadyError, load_classifier
from core.runs import RunDir, RunError, read_json, write_json_atomic

GALLERY_SIZE = 24  # at most this many images in each of the misclassified and top-losses lists
THUMBNAIL_PX = 128  # longest side of a gallery thumbnail
CURVE_POINTS = 400  # ROC and PR curves are thinned to about this many points
EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] for the loss


class EvaluationError(ValueError):
    """The run cannot be evaluated on this split; the message says why."""


def evaluate_run(
    run_dir: str | Path,
    split: str = "validation",
    checkpoint: str = "best",
    classifier: Classifier | None = None,
    overlays: bool = True,
    report: DatasetReport | None = None,
) -> dict:
    """Predict every image of `split` with the run's model and measure how it did.

    Args:
        run_dir: a finished run (config.json, labels.json, checkpoints/<checkpoint>.keras).
        split: "validation", "test" or "train".
        checkpoint: "best" or "last".
        classifier: the run's classifier when the caller holds it (the training process).
        overlays: draw the galleries' Grad-CAM overlays now; False leaves them to
            `draw_overlays` (the result's "overlays_pending" says whether any can be drawn).
        report: the run's dataset as the caller scanned it (the training process), instead
            of scanning it again.

    Returns:
        This split's results (also saved under `split` in `run_dir/evaluation.json`):
        accuracy, mean loss, confusion matrix (rows = true, columns = predicted),
        per-class and macro precision/recall/F1, ROC and precision-recall curves for 2
        classes (positive class = index 1), and galleries of misclassified and
        highest-loss images with thumbnails.

    Raises:
        EvaluationError: the split does not exist, the dataset is gone, or its classes
            differ from the model's.
        RunNotReadyError: the run has no such checkpoint or metadata.
    """
    run_dir = Path(run_dir)
    classifier = classifier or load_classifier(run_dir, checkpoint)  # first: a bad run is named first
    root = dataset_root(run_dir)
    report = report or _scan(root)
    paths, labels = _split_images(report, split, classifier.class_names)
    config = RunDir(run_dir).config()
    probs, kept, skipped = _predict_split(classifier, config, paths)
    if not kept:
        raise EvaluationError(f"none of the {len(paths)} images of {split} could be read")
    y_true = np.asarray([labels[i] for i in kept])
    files = [os.path.realpath(paths[i]) for i in kept]
    result = {
        "split": split,
        "checkpoint": checkpoint,
        "dataset": str(root),
        "evaluated_at": time.time(),
        "class_names": classifier.class_names,
        **compute_metrics(y_true, probs, classifier.class_names),
        "skipped": skipped,
        "predictions": {  # every image, for the confusion matrix's drill-down (columns, compact)
            "files": files,
            "true": y_true.tolist(),
            "predicted": probs.argmax(axis=1).tolist(),
            "confidence": [round(float(p), 4) for p in probs.max(axis=1)],
        },
    }
    result.update(_galleries(run_dir, split, files, y_true, probs, classifier, overlays))
    result.update(_trust(run_dir, split, classifier, config, [paths[i] for i in kept], y_true, probs, report))
    evaluation = load_evaluation(run_dir)
    evaluation[split] = result
    write_json_atomic(RunDir(run_dir).evaluation_file, evaluation)
    return result


def load_evaluation(run_dir: str | Path) -> dict:
    """`run_dir/evaluation.json` as {split: results}; an empty dict if there is none."""
    evaluation = read_json(RunDir(run_dir).evaluation_file, {})
    return evaluation if isinstance(evaluation, dict) else {}


def cell_images(result: dict, true_index: int, predicted_index: int) -> list[dict]:
    """The images behind one confusion-matrix cell, least confident first: {"file", "confidence"}
    plus the gallery's thumbnails and Grad-CAM overlay when the image is in a gallery."""
    rows = result.get("predictions") or {}
    gallery = {e["file"]: e for e in (result.get("misclassified") or []) + (result.get("top_losses") or [])}
    cell = [
        {**gallery.get(file, {}), "file": file, "confidence": confidence}
        for file, true, predicted, confidence in zip(
            rows.get("files", []), rows.get("true", []), rows.get("predicted", []), rows.get("confidence", [])
        )
        if true == true_index and predicted == predicted_index
    ]
    return sorted(cell, key=lambda entry: entry["confidence"])


def dataset_root(run_dir: Path) -> Path:
    """RunDir(run_dir).dataset_root(), with its error as an EvaluationError (the CLI's one line)."""
    try:
        return RunDir(run_dir).dataset_root()
    except RunError as exc:
        raise EvaluationError(str(exc)) from None


def _scan(root: Path) -> DatasetReport:
    try:
        return scan_dataset(root, validate=False)
    except DatasetError as exc:
        raise EvaluationError(f"cannot read the run's dataset: {exc}") from None


def _split_images(report: DatasetReport, split: str, class_names: list[str]) -> tuple[list[str], list[int]]:
    """Paths and label indices (in the model's class order) of one split, in scan order."""
    if split not in report.splits:
        available = ", ".join(s for s in report.splits if s != "all") or "none (the dataset is not split)"
        raise EvaluationError(f"the dataset has no {split} split; available: {available}")
    unknown = sorted(set(report.class_names) - set(class_names))
    if unknown:
        raise EvaluationError(f"the dataset has classes the model does not know: {', '.join(unknown)}")
    chosen = report.splits[split]
    if not chosen.paths:
        raise EvaluationError(f"the {split} split has no images")
    index = {name: class_names.index(name) for name in report.class_names}
    return chosen.paths, [index[report.class_names[label]] for label in chosen.labels]


def _predict_split(classifier: Classifier, config: dict, paths: list[str]):
    """Like `_predict_all`, from the frozen base's embeddings when the run allows it."""
    probs = predict_from_embeddings(classifier, config, paths)
    if probs is not None:
        return probs, list(range(len(paths))), []
    return _predict_all(classifier, paths, int(config.get("batch_size") or 32))


def predict_from_embeddings(classifier: Classifier, config: dict, paths: list[str]) -> np.ndarray | None:
    """Probabilities from the embeddings of a frozen-base run, or None when it has none to use.

    While the base stays frozen (features mode, or a head trained without fine-tuning), the
    run's base is the ImageNet extractor the embedding cache is keyed by: its validation
    embeddings are there already, so only the head runs (missing ones are computed by the
    fastest engine and cached). Random weights (tests) differ per seed, which the cache key
    does not name, and an unreadable image needs the slow path, which skips it: both None.
    """
    from core.config import TrainConfig
    from core.embeddings import EmbeddingCache, embed_paths
    from core.model import feature_extractor

    try:
        run_config = TrainConfig.from_dict(config)
    except (TypeError, ValueError):  # an older or newer config: take the slow path
        return None
    if run_config.mode == "auto":  # its checkpoint reads the winner's layer, not the config's
        from core.auto import kept_embeddings_config

        run_config = kept_embeddings_config(run_config, classifier.run_dir)
        frozen = run_config is not None
    else:
        frozen = run_config.mode == "features" or (
            run_config.mode == "finetune" and not run_config.fine_tune_layers
        )
    if not frozen or run_config.weights is None:
        return None
    try:
        extractor = feature_extractor(classifier.model)
        embeddings = embed_paths(extractor, run_config, paths, EmbeddingCache())
    except Exception:  # an unreadable image, a missing layer: the slow path handles or names it
        return None
    return classifier.predict_embeddings(embeddings).astype(np.float64)


def _predict_all(classifier: Classifier, paths: list[str], batch_size: int):
    """(probabilities of the readable images, their indices in `paths`, skipped files), in order."""
    probs, kept, skipped = [], [], []
    for start in range(0, len(paths), batch_size):
        images = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                images.append(load_image(paths[i], classifier.image_size))
                kept.append(i)
            except Exception as exc:  # an unreadable file is reported, not fatal
                skipped.append({"path": paths[i], "reason": f"{type(exc).__name__}: {exc}"})
        if images:
            probs.append(classifier.predict_arrays(np.stack(images)))
    if not probs:
        return np.zeros((0, len(classifier.class_names))), kept, skipped
    return np.concatenate(probs).astype(np.float64), kept, skipped


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, loss, confusion matrix, per-class/macro scores and (2 classes) curves."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    classes = list(range(len(class_names)))
    y_pred = probs.argmax(axis=1)
    losses = per_image_loss(y_true, probs)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    metrics = {
        "num_images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": float(losses.mean()),
        "num_misclassified": int((y_pred != y_true).sum()),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "roc": None,
        "pr": None,
    }
    if len(class_names) == 2 and len(set(y_true.tolist())) == 2:  # curves need both classes present
        metrics.update(binary_curves(y_true, probs[:, 1]))
    return metrics


def per_image_loss(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Cross-entropy of each image: -log(probability of its true class)."""
    true_probs = probs[np.arange(len(y_true)), y_true]
    return -np.log(np.clip(true_probs, EPSILON, 1.0 - EPSILON))


def binary_curves(y_true: np.ndarray, scores: np.ndarray) -> dict:
    """ROC (+AUC) and precision-recall (+average precision) for positive class 1."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = precision_recall_curve(y_true, scores)
    return {
        "roc": {"fpr": _thin(fpr), "tpr": _thin(tpr), "auc": float(roc_auc_score(y_true, scores))},
        "pr": {
            "precision": _thin(precision),
            "recall": _thin(recall),
            "average_precision": float(average_precision_score(y_true, scores)),
            "positive_rate": float(np.mean(y_true == 1)),
        },
    }


def _thin(values: np.ndarray) -> list[float]:
    """At most about CURVE_POINTS evenly spaced points, the first and last always kept."""
    if len(values) > CURVE_POINTS:
        values = evenly_spaced(list(values), CURVE_POINTS)
    return [float(v) for v in values]


def _galleries(
    run_dir: Path, split: str, files: list[str], y_true, probs, classifier, overlays: bool
) -> dict:
    """The worst misclassified images and the highest-loss images, with thumbnails (and, with
    `overlays`, Grad-CAM overlays where the model allows, so a page can show them without
    TensorFlow)."""
    class_names = classifier.class_names
    losses = per_image_loss(y_true, probs)
    order = np.argsort(-losses, kind="stable")
    wrong = [int(i) for i in order if probs[i].argmax() != y_true[i]][:GALLERY_SIZE]
    top = [int(i) for i in order[:GALLERY_SIZE]]
    folder = RunDir(run_dir).evaluation_dir / split
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):  # thumbnails of an earlier evaluation
        old.unlink()
    entries = {
        i: {
            "file": files[i],
            "thumbnail": _write_thumbnail(files[i], folder / f"{i:05d}.jpg", run_dir),
            "gradcam_thumbnail": None,
            "true": class_names[int(y_true[i])],
            "predicted": class_names[int(probs[i].argmax())],
            "probabilities": {name: float(p) for name, p in zip(class_names, probs[i])},
            "loss": float(losses[i]),
        }
        for i in dict.fromkeys(wrong + top)
    }
    from core.gradcam import gradcam_refusal  # imports Keras: pages import this module

    can_draw = bool(entries) and gradcam_refusal(classifier) is None
    if overlays and can_draw:
        _add_overlays(run_dir, list(entries.values()), classifier)
    return {
        "misclassified": [entries[i] for i in wrong],
        "top_losses": [entries[i] for i in top],
        "overlays_pending": can_draw and not overlays,
    }


def draw_overlays(run_dir: str | Path, split: str = "validation", checkpoint: str = "best") -> int:
    """Draw the Grad-CAM overlays an evaluation left for later; return how many were drawn.

    The overlays are written beside the gallery's thumbnails and named in evaluation.json,
    unless the split was evaluated again meanwhile (then that evaluation's own galleries stand).

    Raises:
        EvaluationError: the split has not been evaluated.
        RunNotReadyError: the run has no such checkpoint or metadata.
    """
    run_dir = Path(run_dir)
    result = load_evaluation(run_dir).get(split)
    if not isinstance(result, dict):
        raise EvaluationError(f"the {split} split has not been evaluated: evaluate it first")
    if not result.get("overlays_pending"):
        return 0
    classifier = load_classifier(run_dir, checkpoint)
    entries = list(
        {e["file"]: e for e in result.get("misclassified", []) + result.get("top_losses", [])}.values()
    )
    drawn = _add_overlays(run_dir, entries, classifier)
    overlays = {e["file"]: e["gradcam_thumbnail"] for e in entries if e.get("gradcam_thumbnail")}
    evaluation = load_evaluation(run_dir)  # read again: only this split's galleries change
    latest = evaluation.get(split)
    if not isinstance(latest, dict) or latest.get("evaluated_at") != result.get("evaluated_at"):
        return 0  # evaluated again meanwhile: that evaluation stands
    for entry in latest.get("misclassified", []) + latest.get("top_losses", []):
        entry["gradcam_thumbnail"] = overlays.get(entry["file"])
    latest["overlays_pending"] = False
    write_json_atomic(RunDir(run_dir).evaluation_file, evaluation)
    return drawn


def _add_overlays(run_dir: Path, entries: list[dict], classifier: Classifier) -> int:
    """Give each gallery entry its Grad-CAM overlay, written beside its thumbnail (entries
    without a thumbnail in the run, or whose image cannot be read now, get none); return how many."""
    run = RunDir(run_dir)
    thumbnails = {e["file"]: run.thumbnail(e.get("thumbnail")) for e in entries}  # None: not in the run
    entries = [e for e in entries if thumbnails[e["file"]]]
    classes = [classifier.class_names.index(e["predicted"]) for e in entries]
    heatmaps = _gradcam_heatmaps(classifier, [e["file"] for e in entries], classes)
    for entry in entries:
        thumbnail = thumbnails[entry["file"]]
        target = thumbnail.with_name(f"{thumbnail.stem}-gradcam.jpg")
        entry["gradcam_thumbnail"] = _write_gradcam_thumbnail(
            heatmaps.get(entry["file"]), target, run.path.resolve()
        )
    return sum(1 for e in entries if e["gradcam_thumbnail"])


def _trust(
    run_dir: Path, split, classifier, config: dict, paths, y_true, probs, report: DatasetReport
) -> dict:
    """Calibration and the open-set threshold (core/trust.py) from the split's and the training
    photos' embeddings, read from the embedding cache when the backbone is the frozen one."""
    from core.config import TrainConfig
    from core.embeddings import EmbeddingCache, embed_paths
    from core.trust import assess

    keys = ("backbone", "weights", "image_size", "pooling", "feature_layer", "batch_size", "fine_tune_layers")
    extractor_config = TrainConfig(**{k: config[k] for k in keys if k in config})
    cache = None if extractor_config.fine_tune_layers else EmbeddingCache()  # fine-tuned: not the cached base
    try:
        train_paths, _ = _split_images(report, "train", classifier.class_names)
        embeddings = embed_paths(classifier.extractor(), extractor_config, paths + train_paths, cache)
        return assess(run_dir, split, probs, y_true, embeddings[: len(paths)], embeddings[len(paths) :])
    except Exception as exc:  # the scores above stand without them
        return {"calibration": None, "openset": None, "trust_error": f"{type(exc).__name__}: {exc}"}


GRADCAM_BATCH = 4  # per pass: 16 took 5x the memory (+1.4 GB at 224 px) and was no faster


def _gradcam_heatmaps(classifier, sources: list[str], class_indices: list[int]) -> dict:
    """{source: (image, heatmap)} for the gallery, a few images per backbone pass; a batch
    that fails leaves its images without overlays (a gallery without them is still a gallery)."""
    from core.gradcam import gradcam_batch, gradcam_refusal

    if gradcam_refusal(classifier) is not None:
        return {}
    heatmaps = {}
    for start in range(0, len(sources), GRADCAM_BATCH):
        chunk = list(zip(sources, class_indices))[start : start + GRADCAM_BATCH]
        try:
            images = [load_image(source, classifier.image_size) for source, _ in chunk]
            heats = gradcam_batch(classifier.model, images, [c for _, c in chunk])
        except Exception:
            continue
        heatmaps.update({source: (image, heat) for (source, _), image, heat in zip(chunk, images, heats)})
    return heatmaps


def _write_gradcam_thumbnail(image_and_heatmap, target: Path, run_dir: Path) -> str | None:
    """Where the model looked for the class it predicted, over a thumbnail of the image."""
    from core.gradcam import overlay

    if image_and_heatmap is None:
        return None
    picture = Image.fromarray(overlay(*image_and_heatmap))
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BILINEAR)
    tmp = target.with_name(f".{target.name}.tmp")
    picture.save(tmp, "JPEG", quality=85)
    os.replace(tmp, target)
    return target.relative_to(run_dir).as_posix()


def _write_thumbnail(source: str, target: Path, run_dir: Path) -> str | None:
    """A small JPEG of `source`; its path relative to the run, or None if it cannot be read."""
    try:
        image = Image.fromarray(load_image(source))
    except Exception:  # the image was predicted moments ago; a vanished file gets no thumbnail
        return None
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BILINEAR)
    tmp = target.with_name(f".{target.name}.tmp")
    image.save(tmp, "JPEG", quality=85)
    os.replace(tmp, target)
    return target.relative_to(run_dir).as_posix()


def summary_line(result: dict) -> str:
    """One line a person reads: accuracy, macro F1, AUC when there is one, mistakes."""
    parts = [
        f"{result['split']}: accuracy {result['accuracy']:.3f} "
        f"({result['num_images'] - result['num_misclassified']}/{result['num_images']})",
        f"macro F1 {result['macro']['f1']:.3f}",
        f"loss {result['loss']:.4f}",
    ]
    if result.get("roc"):
        parts.append(f"AUC {result['roc']['auc']:.3f}")
    parts.append(f"{result['num_misclassified']} misclassified")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m core.evaluate", description=__doc__.split("\n")[1])
    parser.add_argument("--run", required=True, type=Path, help="a run directory")
    parser.add_argument("--split", choices=EVALUATION_SPLITS, default="validation")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    parser.add_argument(
        "--overlays", action="store_true", help="only draw the Grad-CAM overlays left for later"
    )
    args = parser.parse_args(argv)
    try:
        if not args.run.is_dir():
            raise EvaluationError(f"run directory not found: {args.run}")
        hold_job_slot()  # in the demo: a few jobs at a time, all visitors together
        if args.overlays:
            drawn = draw_overlays(args.run, args.split, args.checkpoint)
            print(f"{args.split}: {drawn} Grad-CAM overlays drawn", flush=True)
            return 0
        result = evaluate_run(args.run, args.split, args.checkpoint)
    except (EvaluationError, RunNotReadyError, RunError, ConfigError) as exc:
        return fail(str(exc))
    except Exception as exc:  # an unexpected failure is still one line, never a traceback
        return fail(f"evaluation failed: {type(exc).__name__}: {exc}")
    print(summary_line(result), flush=True)
    for name, scores in result["per_class"].items():
        print(
            f"  {name}: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
            f"F1 {scores['f1']:.3f}  support {scores['support']}"
        )
    print(RunDir(args.run).evaluation_file, flush=True)
    return 0


if __name__ == "__main__":
    exit_now(main())
