"""Classify images with a trained run.

    python -m core.predict --run RUN_DIR [--csv] IMAGE_OR_FOLDER [...]

Prints one JSON object per image and line: {"file", "label", "probabilities"}, or
{"file", "error"} for an image that cannot be read (the others are still predicted).
A run evaluated on its validation split (which fits calibration and the open-set
threshold, see core/trust.py) adds "confidence" (the calibrated probability of the label),
"unknown" (true: the photo is far from every training photo - none of these) and
"openset_score" (its cosine distance to the nearest training photo). Folders are searched
for images; `--csv` prints one table (file, label, probability, confidence, unknown,
openset_score, error) instead.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.classical import CLASSIFIER_FILE, load_classifier_file, probabilities
from core.cli import OneLineParser, exit_now, fail
from core.data import IMAGE_SUFFIXES, load_image
from core.runs import CHECKPOINTS, RunDir
from core.trust import Trust, load_trust

BATCH = 32  # images classified at a time (a folder of thousands never sits in memory at once)
ZIP_MAX_BYTES = 1024**3  # a zip of photos to classify is read into memory: at most 1 GiB unpacked
CSV_COLUMNS = ("file", "label", "probability", "confidence", "unknown", "openset_score", "error")


def class_columns(raw: np.ndarray) -> np.ndarray:
    """One probability column per class: a sigmoid's single column (class 1) becomes [1 - p, p]."""
    return np.concatenate([1.0 - raw, raw], axis=-1) if raw.shape[-1] == 1 else raw


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

    trust: Trust | None = None  # calibration and the open-set threshold, once evaluated
    _with_embeddings: object = field(default=None, repr=False)  # built on first use

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, classes) for uint8 images (N, size, size, 3)."""
        raw = np.asarray(self.model.predict_on_batch(images.astype(np.float32)))
        if self.estimator is not None:
            return probabilities(self.estimator, raw, len(self.class_names))
        return class_columns(raw)

    def extractor(self):
        """Raw pixels -> the embedding (the pooling layer's output) that the open-set score uses."""
        if self.estimator is not None:
            return self.model  # a features-mode run saves the extractor itself
        from core.model import feature_extractor

        return feature_extractor(self.model)

    def predict_with_embeddings(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, embeddings) of a batch in one pass of the model."""
        images = images.astype(np.float32)
        if self.estimator is not None:
            embeddings = np.asarray(self.model.predict_on_batch(images))
            return probabilities(self.estimator, embeddings, len(self.class_names)), embeddings
        if self._with_embeddings is None:
            from core.model import POOL_LAYER
            from core.tf_setup import keras

            pool = self.model.get_layer(POOL_LAYER).output
            self._with_embeddings = keras.Model(self.model.input, [pool, self.model.output])
        embeddings, raw = self._with_embeddings.predict_on_batch(images)
        return class_columns(np.asarray(raw)), np.asarray(embeddings)

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, classes) from the frozen base's embeddings: the head alone
        (or the scikit-learn classifier), no backbone pass."""
        if self.estimator is not None:
            return probabilities(self.estimator, embeddings, len(self.class_names))
        from core.model import classifier_head

        return class_columns(np.asarray(classifier_head(self.model).predict_on_batch(embeddings)))

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
        if images and self.trust is None:
            for slot, probs in zip(slots, self.predict_arrays(np.stack(images))):
                results[slot].update(self._labelled(probs))
        elif images:
            probs, embeddings = self.predict_with_embeddings(np.stack(images))
            calibrated, scores, unknown = self.trust.judge(probs, embeddings)
            for i, slot in enumerate(slots):
                results[slot].update(self._labelled(probs[i]))
                results[slot].update(
                    confidence=float(calibrated[i].max()),
                    unknown=bool(unknown[i]),
                    openset_score=float(scores[i]),
                )
        return results

    def predict_many(self, sources: list, progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """`predict` in batches of BATCH; `progress(done, total)` after each."""
        results = []
        for start in range(0, len(sources), BATCH):
            results += self.predict(sources[start : start + BATCH])
            if progress:
                progress(len(results), len(sources))
        return results

    def _labelled(self, probs: np.ndarray) -> dict:
        return {
            "label": self.class_names[int(np.argmax(probs))],
            "probabilities": {n: float(p) for n, p in zip(self.class_names, probs)},
        }


def load_keras_file(path: str | Path):
    """A saved .keras model, uncompiled, in safe mode (no arbitrary code), our layers registered."""
    import core.model  # noqa: F401  registers ImagePreprocess for deserialization
    from core.tf_setup import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)


def load_classifier(run_dir: str | Path, checkpoint: str = "best") -> Classifier:
    """Load a run's checkpoint with its own labels and input size (never guessed).

    Raises:
        RunNotReadyError: a missing or malformed checkpoint, labels.json or config.json.
    """
    run = RunDir(run_dir)
    config, class_names, path = run.config(), run.labels(), run.checkpoint(checkpoint)
    problem = run.problem()
    if problem:
        raise RunNotReadyError(f"{run.name} is a broken run: {problem}")
    if not config or not class_names:
        raise RunNotReadyError(f"{run.path} is not a finished run (config.json or labels.json missing)")
    image_size = config.get("image_size")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 0 < image_size <= 4096:
        raise RunNotReadyError(f"{run.name}: config.json has no valid image_size ({image_size!r})")
    names_ok = isinstance(class_names, list) and all(isinstance(n, str) for n in class_names)
    if not names_ok or len(class_names) < 2:
        raise RunNotReadyError(f"{run.name}: labels.json must be a list of at least 2 class names")
    if not path.is_file():
        raise RunNotReadyError(f"{run.name} has no {checkpoint} checkpoint yet")
    try:
        model = load_keras_file(path)
        classifier_file = path.parent / CLASSIFIER_FILE
        estimator = load_classifier_file(classifier_file) if classifier_file.is_file() else None
    except Exception as exc:  # empty, truncated or foreign files fail in many ways
        what = f"{run.name}/{path.name}"
        raise RunNotReadyError(f"cannot load {what}: {type(exc).__name__}: {exc}") from None
    outputs = max(2, model.output_shape[-1]) if estimator is None else len(class_names)
    if outputs != len(class_names):
        raise RunNotReadyError(
            f"{run.name}: labels.json names {len(class_names)} classes, the model predicts {outputs}"
        )
    return Classifier(model, class_names, image_size, run.path, checkpoint, estimator, load_trust(run.path))


def classifier_from_model(
    run_dir: str | Path, model, holds_checkpoint: bool = False, checkpoint: str = "best"
) -> Classifier:
    """The run's classifier over `model`, the training process's own (the same architecture),
    with the checkpoint's weights (loaded into it unless it `holds_checkpoint` already): what
    `load_classifier` returns, without rebuilding the model from its config (seconds for a
    large backbone)."""
    from core.model import feature_extractor

    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    config, class_names, path = run.config(), run.labels(), run.checkpoint(checkpoint)
    if not config or not class_names or not path.is_file():
        raise RunNotReadyError(f"{run_dir} is not a finished run")
    classifier_file = path.parent / CLASSIFIER_FILE
    if classifier_file.is_file():  # features mode: the extractor, as saved, and the classifier
        estimator, model = load_classifier_file(classifier_file), feature_extractor(model)
    else:
        estimator = None
        if not holds_checkpoint:
            model.load_weights(path)
    size = int(config["image_size"])
    return Classifier(model, list(class_names), size, run_dir, checkpoint, estimator, load_trust(run_dir))


def _name_of(source) -> str:
    return str(getattr(source, "name", source if isinstance(source, (str, Path)) else "image"))


def _describe(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read"
    return f"cannot read image ({type(exc).__name__}: {exc})"


def expand_folders(paths: list[Path]) -> list[Path]:
    """Files as given; each folder replaced by the image files below it, sorted."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )  # fmt: skip
        else:
            found.append(path)
    return found


def images_in_zip(source) -> list[io.BytesIO]:
    """The image files of a zip, read into memory and named by their path inside it; the zip
    is checked as dataset uploads are (no absolute paths, '..', links, or zip bombs).

    Raises:
        UploadError: the zip is unsafe, damaged, or holds no image.
    """
    from core.uploads import UploadError, check_members

    try:
        with zipfile.ZipFile(source) as archive:
            images = []
            for info, path in check_members(archive, max_bytes=ZIP_MAX_BYTES):
                if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith((".", "__")):
                    buffer = io.BytesIO(archive.read(info))
                    buffer.name = str(path)
                    images.append(buffer)
    except zipfile.BadZipFile as exc:
        raise UploadError(f"not a zip file Python can read ({exc})") from None
    if not images:
        raise UploadError("the zip holds no image files")
    return images


def table_row(result: dict) -> dict:
    """One prediction as a flat row: file, label, probability (of the label), calibrated
    confidence, unknown, open-set score, error."""
    probabilities = result.get("probabilities") or {}
    return {
        "file": result["file"],
        "label": result.get("label"),
        "probability": probabilities.get(result.get("label")),
        "confidence": result.get("confidence"),
        "unknown": result.get("unknown"),
        "openset_score": result.get("openset_score"),
        "error": result.get("error"),
    }


def results_csv(rows: list[dict]) -> str:
    """`table_row` rows as CSV text, with a header line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def predictions_summary(rows: list[dict]) -> str:
    """ "14 photos: 9 red, 4 none of these, 1 unreadable (4 far from every training photo)":
    how many `table_row` rows got each answer, most common first."""
    answers = Counter("none of these" if r["unknown"] else r["label"] or "unreadable" for r in rows)
    unknown = sum(bool(r["unknown"]) for r in rows)
    counts = ", ".join(f"{n} {label}" for label, n in answers.most_common())
    far = f" ({unknown} far from every training photo)" if unknown else ""
    return f"{len(rows)} photos: {counts}{far}"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m core.predict", description=__doc__.split("\n")[1])
    parser.add_argument("--run", required=True, type=Path, help="a run directory")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    parser.add_argument("--csv", action="store_true", help="print one CSV table instead of JSON lines")
    parser.add_argument("images", nargs="+", type=Path, help="image files, or folders of them")
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.run, args.checkpoint)
    except RunNotReadyError as exc:
        return fail(str(exc))
    paths = [str(p) for p in expand_folders(args.images)]
    if not paths:
        return fail("no image files found in the folder(s) given")
    if args.csv:
        print(results_csv([table_row(r) for r in classifier.predict_many(paths)]), end="", flush=True)
        return 0
    for start in range(0, len(paths), BATCH):
        for result in classifier.predict(paths[start : start + BATCH]):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    exit_now(main())
