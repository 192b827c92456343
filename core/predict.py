"""Classify images with a trained run.

    python -m core.predict --run RUN_DIR IMAGE [IMAGE ...]

Prints one JSON object per image and line: {"file", "label", "probabilities"}, or
{"file", "error"} for an image that cannot be read (the others are still predicted).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.classical import CLASSIFIER_FILE, load_classifier_file, probabilities
from core.cli import OneLineParser, fail
from core.data import load_image
from core.runs import read_json

CHECKPOINTS = ("best", "last")


class RunNotReadyError(RuntimeError):
    """The run has no usable checkpoint or metadata; the message says what is missing."""


@dataclass
class Classifier:
    """A loaded run: the model plus what it needs to read images and name classes."""

    model: object
    class_names: list[str]
    image_size: int
    run_dir: Path
    checkpoint: str
    estimator: object = None  # a features-mode scikit-learn classifier; the model then embeds

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, classes) for uint8 images (N, size, size, 3)."""
        raw = np.asarray(self.model.predict_on_batch(images.astype(np.float32)))
        if self.estimator is not None:
            return probabilities(self.estimator, raw, len(self.class_names))
        return _per_class(raw)

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, classes) from the frozen base's embeddings: the head alone
        (or the scikit-learn classifier), no backbone pass."""
        if self.estimator is not None:
            return probabilities(self.estimator, embeddings, len(self.class_names))
        from core.model import classifier_head

        return _per_class(np.asarray(classifier_head(self.model).predict_on_batch(embeddings)))

    def predict(self, sources: list) -> list[dict]:
        """Classify paths, bytes or file-like objects; unreadable ones get an "error"."""
        results, images, slots = [], [], []
        for source in sources:
            name = _name_of(source)
            try:
                images.append(load_image(source, self.image_size))
                slots.append(len(results))
                results.append({"file": name})
            except Exception as exc:  # any unreadable input is reported, not raised
                results.append({"file": name, "error": _describe(exc)})
        if images:
            for slot, probs in zip(slots, self.predict_arrays(np.stack(images))):
                results[slot].update(self._labelled(probs))
        return results

    def _labelled(self, probs: np.ndarray) -> dict:
        return {
            "label": self.class_names[int(np.argmax(probs))],
            "probabilities": {n: float(p) for n, p in zip(self.class_names, probs)},
        }


def _per_class(raw: np.ndarray) -> np.ndarray:
    if raw.shape[-1] == 1:  # sigmoid: the probability of class 1
        return np.concatenate([1.0 - raw, raw], axis=-1)
    return raw


def checkpoint_path(run_dir: Path, checkpoint: str = "best") -> Path:
    return Path(run_dir) / "checkpoints" / f"{checkpoint}.keras"


def load_classifier(run_dir: str | Path, checkpoint: str = "best") -> Classifier:
    """Load a run's checkpoint with its own labels and input size (never guessed).

    Raises:
        RunNotReadyError: a missing or malformed checkpoint, labels.json or config.json.
    """
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    class_names = read_json(run_dir / "labels.json")
    path = checkpoint_path(run_dir, checkpoint)
    if not config or not class_names:
        raise RunNotReadyError(f"{run_dir} is not a finished run (config.json or labels.json missing)")
    image_size = config.get("image_size") if isinstance(config, dict) else None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 0 < image_size <= 4096:
        raise RunNotReadyError(f"{run_dir.name}: config.json has no valid image_size ({image_size!r})")
    names_ok = isinstance(class_names, list) and all(isinstance(n, str) for n in class_names)
    if not names_ok or len(class_names) < 2:
        raise RunNotReadyError(f"{run_dir.name}: labels.json must be a list of at least 2 class names")
    if not path.is_file():
        raise RunNotReadyError(f"{run_dir.name} has no {checkpoint} checkpoint yet")
    import core.model  # noqa: F401  registers ImagePreprocess for deserialization
    from core.tf_setup import keras

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
        classifier_file = path.parent / CLASSIFIER_FILE
        estimator = load_classifier_file(classifier_file) if classifier_file.is_file() else None
    except Exception as exc:  # empty, truncated or foreign files fail in many ways
        what = f"{run_dir.name}/{path.name}"
        raise RunNotReadyError(f"cannot load {what}: {type(exc).__name__}: {exc}") from None
    outputs = max(2, model.output_shape[-1]) if estimator is None else len(class_names)
    if outputs != len(class_names):
        raise RunNotReadyError(
            f"{run_dir.name}: labels.json names {len(class_names)} classes, the model predicts {outputs}"
        )
    return Classifier(model, class_names, image_size, run_dir, checkpoint, estimator)


def classifier_from_model(run_dir: str | Path, model, checkpoint: str = "best") -> Classifier:
    """The run's classifier over `model`, the training process's own (the same architecture),
    with the checkpoint's weights: what `load_classifier` returns, without rebuilding the
    model from its config (seconds for a large backbone)."""
    from core.model import feature_extractor

    run_dir = Path(run_dir)
    config, class_names = read_json(run_dir / "config.json"), read_json(run_dir / "labels.json")
    path = checkpoint_path(run_dir, checkpoint)
    if not config or not class_names or not path.is_file():
        raise RunNotReadyError(f"{run_dir} is not a finished run")
    classifier_file = path.parent / CLASSIFIER_FILE
    if classifier_file.is_file():  # features mode: the extractor, as saved, and the classifier
        estimator, model = load_classifier_file(classifier_file), feature_extractor(model)
    else:
        estimator = None
        model.load_weights(path)
    return Classifier(model, list(class_names), int(config["image_size"]), run_dir, checkpoint, estimator)


def _name_of(source) -> str:
    return str(getattr(source, "name", source if isinstance(source, (str, Path)) else "image"))


def _describe(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read"
    return f"cannot read image ({type(exc).__name__}: {exc})"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m core.predict", description=__doc__.split("\n")[1])
    parser.add_argument("--run", required=True, type=Path, help="a run directory")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    parser.add_argument("images", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.run, args.checkpoint)
    except RunNotReadyError as exc:
        return fail(str(exc))
    for result in classifier.predict([str(p) for p in args.images]):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
