"""Export a trained run as a verified, shareable zip: Keras, SavedModel, TFLite or ONNX.

    python -m core.export --run RUN_DIR --format keras|savedmodel|tflite|onnx [--quantize float16|int8]
        [--checkpoint best|last] [--out DIR] [--allow-mismatch]

Every export is checked before it is kept: the exported model and the run's Keras model
classify the same validation images (at most MAX_VERIFY_IMAGES), and an export whose
top-1 answers agree on fewer than MIN_AGREEMENT of them, or a float32 export whose
probabilities differ by more than FLOAT32_TOLERANCE, is refused (nothing is written)
unless mismatches are allowed. The zip holds the model, labels.json (class order),
config.json (the run's TrainConfig), export.json (the verification) and a README on
loading it. Prints a one-line summary and then the zip's path; on bad input it exits
with status 2 and a one-line error.
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.classical import CLASSIFIER_FILE
from core.cli import OneLineParser, exit_now, fail
from core.config import ConfigError
from core.data import DatasetError, evenly_spaced, load_image, scan_dataset
from core.demo import hold_job_slot
from core.predict import (
    CHECKPOINTS,
    Classifier,
    RunNotReadyError,
    class_columns,
    load_classifier,
    load_keras_file,
)
from core.runs import RunDir, RunError, is_number, read_json, write_json_atomic
from core.trust import ACCEPT_RATE, EMBEDDINGS_FILE, TRUST_FILE

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float16", "int8")  # TFLite only; none means float32
MIN_AGREEMENT = 0.99  # top-1 agreement with the Keras model an export needs to be kept
FLOAT32_TOLERANCE = 1e-3  # a float32 export may differ by at most this in any probability
MAX_VERIFY_IMAGES = 200  # validation images compared, spread evenly over the split
MAX_CALIBRATION_IMAGES = 200  # training images that calibrate int8 quantisation
BATCH = 32
ARTEFACTS = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
}
LAYER_MODULE = "image_preprocess.py"  # the custom layer's source, shipped with Keras exports
RECORD_FILE = "export.json"  # the verification, beside the model in the zip and the unzipped folder
# The dashboard's names for the exports it offers: label -> (format, quantize).
EXPORT_CHOICES = {
    "Keras (.keras)": ("keras", None),
    "TensorFlow SavedModel": ("savedmodel", None),
    "TFLite, float32": ("tflite", None),
    "TFLite, float16 (half the size)": ("tflite", "float16"),
    "TFLite, int8 (a quarter of the size; refused if it disagrees)": ("tflite", "int8"),
    "ONNX (onnxruntime and other ONNX runtimes)": ("onnx", None),
}


class ExportError(ValueError):
    """The run cannot be exported as asked; the message says why."""


class VerificationError(ExportError):
    """The export does not behave like the Keras model; nothing was kept."""


@dataclass
class ExportResult:
    path: Path  # the zip
    artefact_path: Path  # the exported model (a file, or the SavedModel folder) beside the zip
    format: str
    quantize: str | None  # None: float32
    agreement: float  # top-1 agreement with the Keras model, 0..1
    max_prob_diff: float  # the largest absolute difference in any class probability
    n_images: int  # validation images compared
    size_bytes: int  # the artefact's size

    def summary(self) -> str:
        return (
            f"{variant_name(self.format, self.quantize)}: agreement {self.agreement:.1%} on "
            f"{self.n_images} validation images, max probability difference {self.max_prob_diff:.2g}, "
            f"{self.size_bytes / 1e6:.2f} MB"
        )


def variant_name(fmt: str, quantize: str | None) -> str:
    """'keras', 'savedmodel', 'tflite-float32', 'tflite-float16' or 'tflite-int8'."""
    return f"tflite-{quantize or 'float32'}" if fmt == "tflite" else fmt


def export_name(run_dir: str | Path, fmt: str, quantize: str | None, checkpoint: str = "best") -> str:
    """ "<run>-best-tflite-int8": the name of this export's zip (plus .zip) and unzipped folder."""
    return f"{Path(run_dir).name}-{checkpoint}-{variant_name(fmt, quantize)}"


def published_export(
    run_dir: str | Path, fmt: str, quantize: str | None, checkpoint: str = "best"
) -> ExportResult | None:
    """The export of this format already in the run's exports folder (its zip and its
    export.json), or None: what a viewer shows for the format chosen, and nothing for another."""
    out_dir = RunDir(run_dir).exports_dir
    name = export_name(run_dir, fmt, quantize, checkpoint)
    record = read_json(out_dir / name / RECORD_FILE)
    zip_path = out_dir / f"{name}.zip"
    numbers = ("agreement", "max_prob_diff", "n_images", "size_bytes")
    if not isinstance(record, dict) or not zip_path.is_file():
        return None
    if not all(is_number(record.get(key)) for key in numbers):  # another version's, or hand-edited
        return None
    return ExportResult(
        path=zip_path,
        artefact_path=out_dir / name / str(record.get("artefact")),
        **{key: record[key] for key in numbers},
        format=fmt,
        quantize=quantize,
    )


def export_run(
    run_dir: str | Path,
    fmt: str,
    quantize: str | None = None,
    checkpoint: str = "best",
    out_dir: str | Path | None = None,
    allow_mismatch: bool = False,
) -> ExportResult:
    """Export a run's checkpoint, verify it against the Keras model, and zip it.

    Args:
        run_dir: a finished run (config.json, labels.json, checkpoints/<checkpoint>.keras)
            whose dataset is still there: its validation images verify the export and its
            training images calibrate int8.
        fmt: "keras" (the checkpoint, copied), "savedmodel" or "tflite".
        quantize: TFLite only: None (float32), "float16" (weights) or "int8" (weights and
            activations; input and output stay float32).
        checkpoint: "best" or "last".
        out_dir: where `<name>.zip` and the unzipped `<name>/` go; default `run_dir/exports`.
        allow_mismatch: keep an export that fails verification (its numbers say so).

    Returns:
        What was written and how closely it agrees with the Keras model.

    Raises:
        ExportError: a bad request, a features-mode run with a scikit-learn classifier, or
            a missing dataset; VerificationError (a subclass) when the export disagrees.
        RunNotReadyError: the run has no such checkpoint or metadata.
    """
    run_dir = Path(run_dir).resolve()
    _check_request(run_dir, fmt, quantize, checkpoint)
    classifier = load_classifier(run_dir, checkpoint)
    images = _split_images(run_dir, "validation", classifier.image_size, MAX_VERIFY_IMAGES)
    name = export_name(run_dir, fmt, quantize, checkpoint)
    out_dir = Path(out_dir) if out_dir else RunDir(run_dir).exports_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out_dir) as tmp:
        stage = Path(tmp) / name  # zipped and moved into place once verified
        stage.mkdir()
        artefact = stage / ARTEFACTS[fmt]
        _write_artefact(classifier, fmt, quantize, artefact, work=Path(tmp))
        exported = _predict(_export_predictor(artefact, fmt), images)
        agreement, max_diff = compare(classifier.predict_arrays(images), exported)
        result = ExportResult(
            path=out_dir / f"{name}.zip",
            artefact_path=out_dir / name / artefact.name,
            format=fmt,
            quantize=quantize,
            agreement=agreement,
            max_prob_diff=max_diff,
            n_images=len(images),
            size_bytes=_size_of(artefact),
        )
        problem = verification_problem(result)
        if problem and not allow_mismatch:
            raise VerificationError(
                f"verification failed: {problem}; nothing was written (--allow-mismatch keeps it anyway)"
            )
        _write_companions(stage, classifier, result, fmt)
        _publish(stage, out_dir, name)
    return result


def _check_request(run_dir: Path, fmt: str, quantize: str | None, checkpoint: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantisation {quantize!r}; choose from {', '.join(QUANTIZATIONS)}")
    if quantize and fmt != "tflite":
        raise ExportError(f"quantisation applies to tflite exports only, not {fmt}")
    if checkpoint not in CHECKPOINTS:
        raise ExportError(f"unknown checkpoint {checkpoint!r}; choose from {', '.join(CHECKPOINTS)}")
    if not run_dir.is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    if (RunDir(run_dir).checkpoints_dir / CLASSIFIER_FILE).is_file():
        classifier = RunDir(run_dir).config().get("classifier", "scikit-learn")
        raise ExportError(
            f"{run_dir.name} is a features-mode run whose {classifier} classifier is a scikit-learn "
            f"model beside the embedding extractor (checkpoints/{CLASSIFIER_FILE}), so it cannot be "
            "exported as one network; retrain with the logreg classifier (folded into the network) "
            "or in finetune mode"
        )


def _split_images(run_dir: Path, split: str, size: int, limit: int) -> np.ndarray:
    """Up to `limit` readable images of a split of the run's dataset, spread evenly over
    it (so every class takes part), as uint8 (N, size, size, 3)."""
    try:
        report = scan_dataset(RunDir(run_dir).dataset_root(), validate=False)
    except (DatasetError, RunError) as exc:
        raise ExportError(f"cannot read the run's dataset, which verification needs: {exc}") from None
    paths = report.splits[split].paths if split in report.splits else []
    if not paths:
        raise ExportError(f"the run's dataset ({report.root}) has no {split} images")
    chosen = evenly_spaced(paths, limit)
    images = []
    for path in chosen:
        try:
            images.append(load_image(path, size))
        except Exception:  # an unreadable file is left out; the rest still count
            continue
    if not images:
        raise ExportError(f"none of the {len(chosen)} {split} images of {report.root} could be read")
    return np.stack(images)


def _write_artefact(classifier: Classifier, fmt: str, quantize: str | None, dest: Path, work: Path) -> None:
    if fmt == "keras":
        shutil.copyfile(RunDir(classifier.run_dir).checkpoint(classifier.checkpoint), dest)
        return
    if fmt == "onnx":
        _export_onnx(classifier, dest)
        return
    saved_model = dest if fmt == "savedmodel" else work / "saved_model"
    _export_saved_model(classifier.model, saved_model)
    if fmt == "tflite":
        calibration = None
        if quantize == "int8":
            size = classifier.image_size
            calibration = _split_images(classifier.run_dir, "train", size, MAX_CALIBRATION_IMAGES)
        dest.write_bytes(_convert_tflite(saved_model, quantize, calibration))


def _export_saved_model(model, path: Path) -> None:
    """The Keras 3 TF SavedModel export: a `serve` signature over raw-pixel batches."""
    model.export(str(path), format="tf_saved_model", verbose=False)


def _export_onnx(classifier: Classifier, path: Path) -> None:
    """ONNX through Keras's own exporter (tf2onnx underneath), input (N, size, size, 3) raw pixels."""
    size = classifier.image_size
    classifier.model.predict_on_batch(np.zeros((1, size, size, 3), np.float32))  # the exporter needs a call
    with warnings.catch_warnings():  # tf2onnx probes np.object, which NumPy 2 warns about
        warnings.simplefilter("ignore", FutureWarning)
        _quietly(functools.partial(classifier.model.export, str(path), format="onnx", verbose=False))


def _convert_tflite(saved_model: Path, quantize: str | None, calibration: np.ndarray | None) -> bytes:
    """TFLite from the SavedModel: float32, float16 weights, or int8 post-training quantisation
    calibrated on `calibration` (raw 0-255 pixels, as the model expects), float input/output."""
    from core.tf_setup import tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":

        def representative() -> Iterator[list[np.ndarray]]:
            for image in calibration:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = representative
    return _quietly(converter.convert)  # its C++ side prints quantisation settings on stderr


def _quietly(function: Callable, *args):
    """Call `function` with native stderr silenced (our errors still come as exceptions)."""
    from core.tf_setup import quiet_native_stderr  # TF's C++ logging ignores TF_CPP_MIN_LOG_LEVEL

    with quiet_native_stderr():
        return function(*args)


def _export_predictor(artefact: Path, fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a float32 pixel batch to the export's raw output, loaded from disk."""
    from core.tf_setup import tf

    if fmt == "keras":
        model = load_keras_file(artefact)
        return lambda x: model.predict_on_batch(x)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(artefact), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    if fmt == "savedmodel":
        loaded = tf.saved_model.load(str(artefact))  # kept: `serve` needs its variables alive
        return lambda x: loaded.serve(tf.constant(x)).numpy()
    from ai_edge_litert.interpreter import Interpreter  # LiteRT: tf.lite.Interpreter is deprecated

    interpreter = Interpreter(model_path=str(artefact))
    return lambda x: _quietly(run_tflite, interpreter, x)  # XNNPACK announces itself on stderr


def run_tflite(interpreter, images: np.ndarray) -> np.ndarray:
    """Run a float-input TFLite interpreter on a batch (it is resized to fit)."""
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, images.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def _predict(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """Per-class probabilities (N, classes), batch by batch; a sigmoid unit becomes 2 columns."""
    raw = np.concatenate(
        [np.asarray(predict(images[i : i + BATCH].astype(np.float32))) for i in range(0, len(images), BATCH)]
    )
    return class_columns(raw)


def compare(reference: np.ndarray, exported: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement, largest absolute probability difference) of two (N, classes) arrays."""
    if reference.shape != exported.shape:
        raise VerificationError(
            f"verification failed: the export's output has shape {exported.shape}, "
            f"the Keras model's {reference.shape}"
        )
    agreement = float(np.mean(reference.argmax(axis=1) == exported.argmax(axis=1)))
    return agreement, float(np.max(np.abs(reference.astype(np.float64) - exported)))


def verification_problem(result: ExportResult) -> str | None:
    """Why an export does not match the Keras model closely enough, or None."""
    what = f"the {variant_name(result.format, result.quantize)} export"
    if result.agreement < MIN_AGREEMENT:
        return (
            f"{what} agrees with the Keras model on {result.agreement:.1%} of {result.n_images} "
            f"validation images (at least {MIN_AGREEMENT:.0%} needed); largest probability "
            f"difference {result.max_prob_diff:.3g}"
        )
    if result.quantize is None and result.max_prob_diff > FLOAT32_TOLERANCE:
        return (
            f"{what} is float32 but its probabilities differ from the Keras model's by up to "
            f"{result.max_prob_diff:.3g} (at most {FLOAT32_TOLERANCE:g} allowed)"
        )
    return None


def _write_companions(stage: Path, classifier: Classifier, result: ExportResult, fmt: str) -> None:
    """labels.json, config.json, export.json, README.md (and the layer source for Keras)."""
    run_dir = classifier.run_dir
    run = RunDir(run_dir)
    for source in (run.labels_file, run.config_file):
        shutil.copyfile(source, stage / source.name)
    record = {
        **{k: v for k, v in asdict(result).items() if not k.endswith("path")},
        "run": run_dir.name,
        "checkpoint": classifier.checkpoint,
        "artefact": result.artefact_path.name,
        "verified": verification_problem(result) is None,
    }
    write_json_atomic(stage / RECORD_FILE, record)
    if fmt == "keras":
        (stage / LAYER_MODULE).write_text(layer_source(), encoding="utf-8")
    for name in (TRUST_FILE, EMBEDDINGS_FILE):  # calibration and the open-set threshold, if fitted
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, stage / name)
    text = readme(classifier, result) + (trust_readme(classifier) if classifier.trust else "")
    (stage / "README.md").write_text(text, encoding="utf-8")


def layer_source() -> str:
    """A standalone module defining ImagePreprocess, so a .keras export loads without this project."""
    import core.model as model

    constants = "\n".join(
        f"{n} = {getattr(model, n)!r}" for n in ("_CAFFE_MEAN_BGR", "_TORCH_MEAN", "_TORCH_STD")
    )
    return (
        '"""The custom preprocessing layer of Transfer Learning Studio models.\n\n'
        'Import this module before `keras.models.load_model`: importing it registers the layer."""\n\n'
        f"import keras\n\n{constants}\n\n\n{inspect.getsource(model.ImagePreprocess)}"
    )


def _publish(stage: Path, out_dir: Path, name: str) -> None:
    """Zip the staged folder (as `<name>/...`) and move folder and zip into place."""
    tmp_zip = stage.parent / f"{name}.zip"
    with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(stage.rglob("*")):
            archive.write(path, path.relative_to(stage.parent).as_posix())
    shutil.rmtree(out_dir / name, ignore_errors=True)  # an earlier export of the same name
    os.replace(stage, out_dir / name)
    os.replace(tmp_zip, out_dir / f"{name}.zip")


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def readme(classifier: Classifier, result: ExportResult) -> str:
    """How to load and call the export, with its class order, input and output."""
    names, size = classifier.class_names, classifier.image_size
    if len(names) == 2:
        output = f"shape (N, 1), a sigmoid: the probability of class 1, {names[1]!r}"
        answer = "label = labels[int(probs[0, 0] > 0.5)]  # one sigmoid unit: the probability of labels[1]"
    else:
        output = f"shape (N, {len(names)}), softmax probabilities in labels.json order"
        answer = "label = labels[int(probs[0].argmax())]"
    verified = "passed" if verification_problem(result) is None else "FAILED (kept with --allow-mismatch)"
    intro, code = _LOADING[result.format]
    return f"""# {result.path.stem}

A {variant_name(result.format, result.quantize)} export of the image classifier of run
`{classifier.run_dir.name}` ({classifier.checkpoint} checkpoint), made by Transfer Learning Studio.

- Classes in output order (labels.json): {", ".join(names)}
- Input: float32, shape (N, {size}, {size}, 3), **raw RGB pixels 0-255**. Do not scale or
  normalise them: the backbone's preprocessing is inside the model.
- Output: {output}.
- Verification {verified}: top-1 agreement with the Keras model {result.agreement:.1%} on
  {result.n_images} validation images, largest probability difference {result.max_prob_diff:.3g}
  (export.json). config.json is the training configuration.

## Prepare images

```python
import json

import numpy as np
from PIL import Image, ImageOps

labels = json.load(open("labels.json"))
image = ImageOps.exif_transpose(Image.open("photo.jpg")).convert("RGB")  # upright, RGB
images = np.asarray(image.resize(({size}, {size}), Image.BILINEAR), np.float32)[None]
```

## Load and predict

{intro}

```python
{code}
{answer}
```
"""


def trust_readme(classifier: Classifier) -> str:
    """How to apply the run's temperature and its "none of these" threshold outside the app."""
    from core.model import POOL_LAYER

    trust = classifier.trust
    return f"""
## Calibrated confidence and "none of these"

Fitted on the validation split (trust.json):

- **Temperature** T = {trust.temperature:.4g}: calibrated probabilities are softmax(log(p) / T)
  (with a sigmoid output, use the two columns [1 - p, p]). The top class never changes.
- **Unknown photos**: a photo whose embedding is far from every training photo is none of
  the classes. Its score is the cosine distance from its embedding (the output of the model's
  `{POOL_LAYER}` layer) to the nearest of the training embeddings in {EMBEDDINGS_FILE};
  above **{trust.threshold:.4f}** it is unknown (about {ACCEPT_RATE:.0%} of validation photos
  score below). The embedding needs the Keras model (or the run itself):

```python
import numpy as np

reference = np.load("{EMBEDDINGS_FILE}").astype(np.float32)  # unit-length training embeddings
embedder = keras.Model(model.input, model.get_layer("{POOL_LAYER}").output)
embedding = embedder.predict(images)
embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
score = 1.0 - (embedding @ reference.T).max(axis=1)
unknown = score > {trust.threshold:.6f}
columns = probs if probs.shape[1] > 1 else np.hstack([1 - probs, probs])
z = np.log(np.clip(columns, 1e-7, 1)) / {trust.temperature:.6g}
calibrated = np.exp(z - z.max(axis=1, keepdims=True))
calibrated /= calibrated.sum(axis=1, keepdims=True)
```
"""


_LOADING = {
    "keras": (
        "The model has one custom layer, `ImagePreprocess`: importing `image_preprocess.py` (shipped\n"
        "here) registers it; inside the Transfer Learning Studio project `import core.model` does the\n"
        "same. Needs Keras 3 with TensorFlow.",
        """import keras

import image_preprocess  # noqa: F401  registers the custom layer

model = keras.models.load_model("model.keras", compile=False)
probs = model.predict(images)""",
    ),
    "savedmodel": (
        "A TensorFlow SavedModel: no custom code is needed.",
        """import tensorflow as tf

model = tf.saved_model.load("saved_model")
probs = model.serve(tf.constant(images)).numpy()""",
    ),
    "onnx": (
        "An ONNX model (opset chosen by tf2onnx), run here with onnxruntime; no TensorFlow needed.",
        """import onnxruntime

session = onnxruntime.InferenceSession("model.onnx")
probs = session.run(None, {session.get_inputs()[0].name: images})[0]""",
    ),
    "tflite": (
        "A TensorFlow Lite model; its input and output are float32, also when it is int8-quantised.\n"
        "The input's default batch is 1: resize it for other batch sizes. It runs in LiteRT\n"
        "(`pip install ai-edge-litert`), TensorFlow Lite's successor, without TensorFlow.",
        """from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path="model.tflite")
input_index = interpreter.get_input_details()[0]["index"]
interpreter.resize_tensor_input(input_index, images.shape)
interpreter.allocate_tensors()
interpreter.set_tensor(input_index, images)
interpreter.invoke()
probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])""",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m core.export", description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a run directory")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--quantize", choices=QUANTIZATIONS, help="tflite only (default: float32)")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN/exports)")
    parser.add_argument(
        "--allow-mismatch", action="store_true", help="keep an export that fails verification"
    )
    args = parser.parse_args(argv)
    try:
        hold_job_slot()  # in the demo: a few jobs at a time, all visitors together
        result = export_run(
            args.run, args.format, args.quantize, args.checkpoint, args.out, args.allow_mismatch
        )
    except (ExportError, RunNotReadyError, RunError, ConfigError) as exc:
        return fail(str(exc))
    except Exception as exc:  # an unexpected failure is still one line, never a traceback
        return fail(f"export failed: {type(exc).__name__}: {exc}")
    problem = verification_problem(result)
    print(result.summary() + (f" (MISMATCH allowed: {problem})" if problem else ""), flush=True)
    print(result.path, flush=True)
    return 0


if __name__ == "__main__":
    exit_now(main())
