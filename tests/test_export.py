"""Verified exports: each format is exported, reloaded from disk and compared with the Keras model.

Most tests export a small run trained with real ImageNet weights (MobileNetV2 0.35 at 96 px)
on three colour classes: its predictions are confident, so float16 and int8 quantisation
must keep every top-1 answer, and its softmax output exercises the 3-class path. Random
weights (the shared `trained_run`) would give every image p ~ 0.5, which verifies nothing.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from core import export
from core.export import ExportError, VerificationError, export_run, main
from core.runs import read_json, write_json_atomic
from core.tf_setup import keras
from tests.helpers import make_color_dataset, run_cli

COLOURS = {"blue": (40, 40, 220), "green": (40, 200, 40), "red": (220, 40, 40)}
VALIDATION_COLOURS = {"blue": (60, 70, 200), "green": (70, 180, 60), "red": (200, 60, 70)}
VARIANTS = [
    ("keras", None),
    ("savedmodel", None),
    ("tflite", None),
    ("tflite", "float16"),
    ("tflite", "int8"),
    ("onnx", None),
]
MAX_DIFF = {None: 1e-3, "float16": 0.05, "int8": 0.5}  # measured: ~1e-5, 0.011, 0.22


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, keras_home) -> Path:
    """3 classes, 12 training and 12 validation images each (different shades), real weights."""
    root = tmp_path_factory.mktemp("export")
    make_color_dataset(root / "data" / "train", per_class=12, classes=COLOURS, size=96)
    make_color_dataset(root / "data" / "validation", per_class=12, classes=VALIDATION_COLOURS, size=96)
    result = run_cli(
        "core.train",
        *("--data", str(root / "data"), "--runs-dir", str(root / "runs")),
        *("--backbone", "mobilenet_v2_0.35", "--image-size", "96", "--batch-size", "12"),
        *(
            "--mode",
            "finetune",
            "--epochs",
            "15",
            "--learning-rate",
            "0.01",
            "--patience",
            "0",
            "--head-training",
            "live",
        ),  # 45 steps, as the tutorial trains: margins >= 0.7, not saturated
        env={"KERAS_HOME": str(keras_home)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fmt, quantize", VARIANTS)
def test_each_format_is_zipped_and_agrees_with_the_keras_model(real_run, fmt, quantize):
    result = export_run(real_run, fmt, quantize)

    name = f"{real_run.name}-best-{export.variant_name(fmt, quantize)}"
    assert result.path == real_run / "exports" / f"{name}.zip" and result.path.is_file()
    artefact = export.ARTEFACTS[fmt]
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        readme = archive.read(f"{name}/README.md").decode()
        labels = json.loads(archive.read(f"{name}/labels.json"))
    assert {f"{name}/{f}" for f in ("labels.json", "config.json", "export.json", "README.md")} <= names
    assert any(n == f"{name}/{artefact}" or n.startswith(f"{name}/{artefact}/") for n in names)
    assert labels == ["blue", "green", "red"]
    assert "raw RGB pixels 0-255" in readme and "(N, 96, 96, 3)" in readme and "softmax" in readme
    threshold = read_json(real_run / "trust.json")["openset"]["threshold"]  # fitted at evaluation
    assert f"{name}/trust.json" in names and f"above **{threshold:.4f}** it is unknown" in readme
    assert result.artefact_path == result.path.parent / name / artefact and result.artefact_path.exists()
    assert result.n_images == 36 and result.size_bytes > 100_000
    assert result.agreement >= 0.99, result
    assert result.max_prob_diff < MAX_DIFF[quantize], result
    assert read_json(result.path.parent / name / "export.json")["verified"] is True
    assert export.published_export(real_run, fmt, quantize) == result  # what the dashboard shows


def test_tflite_quantisation_really_shrinks_the_weights(real_run):
    """int8 stores int8 weights (float input and output kept); float16 stores float16 weights."""
    for quantize, dtype in (("int8", np.int8), ("float16", np.float16)):
        path = real_run / "exports" / f"{real_run.name}-best-tflite-{quantize}" / "model.tflite"
        if not path.is_file():
            path = export_run(real_run, "tflite", quantize).artefact_path
        interpreter = Interpreter(model_path=str(path))
        assert any(t["dtype"] == dtype for t in interpreter.get_tensor_details())
        assert interpreter.get_input_details()[0]["dtype"] == np.float32
        assert list(interpreter.get_input_details()[0]["shape_signature"]) == [-1, 96, 96, 3]


def _shifted_exporter(monkeypatch, shift: np.ndarray) -> None:
    """Make the SavedModel export write a copy of the model whose output bias is shifted."""
    original = export._export_saved_model

    def broken(model, path):
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        kernel, bias = copy.layers[-1].get_weights()
        copy.layers[-1].set_weights([kernel, bias + shift])
        original(copy, path)

    monkeypatch.setattr(export, "_export_saved_model", broken)


def test_an_export_that_answers_differently_is_refused(real_run, tmp_path, monkeypatch):
    _shifted_exporter(monkeypatch, np.array([0.0, 0.0, 50.0]))  # everything becomes "red"
    with pytest.raises(VerificationError, match=r"agrees with the Keras model on 33\.3% of 36"):
        export_run(real_run, "savedmodel", out_dir=tmp_path)
    assert os.listdir(tmp_path) == []  # nothing kept, no temporary folder left behind


def test_a_float32_export_must_match_closely_and_a_mismatch_can_be_kept(real_run, tmp_path, monkeypatch):
    _shifted_exporter(monkeypatch, np.array([0.05, 0.0, 0.0]))  # same answers, probabilities off
    result = export_run(real_run, "savedmodel", out_dir=tmp_path, allow_mismatch=True)

    assert result.agreement == 1.0 and 1e-3 < result.max_prob_diff < 0.05
    assert "is float32 but its probabilities differ" in export.verification_problem(result)
    assert read_json(result.artefact_path.parent / "export.json")["verified"] is False
    assert "Verification FAILED" in (result.artefact_path.parent / "README.md").read_text()


def test_features_mode_with_a_scikit_learn_classifier_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.keras").touch()
    (run / "checkpoints" / "classifier.joblib").touch()
    write_json_atomic(run / "config.json", {"mode": "features", "classifier": "svm", "image_size": 32})
    with pytest.raises(ExportError, match="features-mode run whose svm classifier .* cannot be exported"):
        export_run(run, "keras")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "keras", "--quantize", "int8"], "quantisation applies to tflite exports only"),
        (["--format", "pdf"], "argument --format: invalid choice"),
        (["--format", "keras", "--checkpoint", "last"], "run has no last checkpoint yet"),
    ],
)
def test_cli_bad_input_is_one_line_with_status_2(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_json_atomic(run / "config.json", {"image_size": 32})
    write_json_atomic(run / "labels.json", ["a", "b"])
    assert _exit_code(["--run", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("error: ") and message in err


def test_a_run_whose_dataset_is_gone_cannot_be_verified(real_run, tmp_path):
    run = tmp_path / "moved"
    shutil.copytree(real_run, run, ignore=shutil.ignore_patterns("exports"))
    write_json_atomic(run / "config.json", {**read_json(run / "config.json"), "data": str(tmp_path / "gone")})
    with pytest.raises(ExportError, match="cannot read the run's dataset, which verification needs"):
        export_run(run, "keras")


def test_cli_missing_run_is_one_line_with_status_2(tmp_path):
    result = run_cli("core.export", "--run", str(tmp_path / "nope"), "--format", "tflite")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: run directory not found: {tmp_path / 'nope'}"


def test_cli_keras_export_prints_the_zip_and_loads_outside_the_project(real_run, tmp_path, capsys):
    """The summary, then the zip; the zip's image_preprocess.py is all the .keras file needs."""
    assert main(["--run", str(real_run), "--format", "keras", "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(
        "keras: agreement 100.0% on 36 validation images, max probability difference 0"
    )
    zip_path = tmp_path / "out" / f"{real_run.name}-best-keras.zip"
    assert lines[-1] == str(zip_path)

    zipfile.ZipFile(zip_path).extractall(tmp_path / "unzipped")
    code = (
        "import importlib.util, image_preprocess, keras, numpy as np\n"
        "assert importlib.util.find_spec('core') is None\n"
        "model = keras.models.load_model('model.keras', compile=False)\n"
        "print(model(np.full((1, 96, 96, 3), 200.0, np.float32)).numpy().tolist())"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "unzipped" / zip_path.stem,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # no `core` to import
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    model = keras.models.load_model(real_run / "checkpoints" / "best.keras", compile=False)
    expected = model(np.full((1, 96, 96, 3), 200.0, np.float32)).numpy()
    np.testing.assert_allclose(json.loads(loaded.stdout.strip().splitlines()[-1]), expected, atol=1e-6)


def _exit_code(argv: list[str]) -> int:
    """main()'s status, also when argparse exits on its own."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_published_export_is_the_chosen_format_s_own_or_none(tmp_path):
    run_dir = tmp_path / "20260101-000000-colors-mobilenet_v2_0.35-96"
    name = export.export_name(run_dir, "tflite", None)
    assert name == f"{run_dir.name}-best-tflite-float32"
    (run_dir / "exports" / name).mkdir(parents=True)
    record = {"artefact": "model.tflite", "agreement": 1.0, "max_prob_diff": 1e-6, "n_images": 4,
              "size_bytes": 2_000_000, "format": "tflite", "quantize": None, "verified": True}  # fmt: skip
    write_json_atomic(run_dir / "exports" / name / "export.json", record)
    assert export.published_export(run_dir, "tflite", None) is None  # no zip: not published
    (run_dir / "exports" / f"{name}.zip").write_bytes(b"zip")
    result = export.published_export(run_dir, "tflite", None)
    assert result.path == run_dir / "exports" / f"{name}.zip"
    assert result.summary().startswith("tflite-float32: agreement 100.0% on 4 validation images")
    assert export.published_export(run_dir, "tflite", "int8") is None  # another format's is not it
    for unreadable in ({"artefact": "model.tflite"}, {**record, "agreement": "all"}):
        write_json_atomic(run_dir / "exports" / name / "export.json", unreadable)
        assert export.published_export(run_dir, "tflite", None) is None  # not a result to show


def test_a_background_export_job_is_running_worked_or_says_why_it_failed(tmp_path):
    from core.launch import BackgroundJob, _export_job_files, export_job

    run_dir = tmp_path / "run"
    record_file, log_file = _export_job_files(run_dir, "keras", None)
    assert export_job(run_dir, "keras") is None  # never started
    record_file.parent.mkdir(parents=True)
    write_json_atomic(record_file, {"pid": os.getpid(), "started_at": 10.0})
    assert export_job(run_dir, "keras") == BackgroundJob(running=True, started_at=10.0, error=None)
    log_file.write_text("a TensorFlow warning\nerror: verification failed: agrees on 97.0%\n")
    write_json_atomic(record_file, {"pid": os.getpid(), "started_at": 10.0, "returncode": 2})
    failed = BackgroundJob(running=False, started_at=10.0, error="verification failed: agrees on 97.0%")
    assert export_job(run_dir, "keras") == failed
    write_json_atomic(record_file, {"pid": os.getpid(), "started_at": 10.0, "returncode": 0})
    assert export_job(run_dir, "keras") == BackgroundJob(running=False, started_at=10.0, error=None)
    # The process is gone without an exit status (the dashboard restarted): its zip decides.
    write_json_atomic(record_file, {"pid": None, "started_at": 10.0})
    log_file.write_text("")
    assert export_job(run_dir, "keras").error == "the export stopped before it finished"
    (run_dir / "exports" / f"{export.export_name(run_dir, 'keras', None)}.zip").write_bytes(b"zip")
    assert export_job(run_dir, "keras") == BackgroundJob(running=False, started_at=10.0, error=None)
