"""Demo mode: limits, confinement to the data root, no deleting, and the shipped model."""

import pytest

from core.config import SAMPLE_DATASET, ConfigError, TrainConfig
from core.demo import DEMO_RUN, check_demo_limits, confine, ensure_demo_run
from core.predict import load_classifier
from core.runs import RunError, delete_run, list_runs
from tests.helpers import run_cli


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"backbone": "vgg16"}, "backbone: the demo trains only"),
        ({"epochs": 4, "fine_tune_layers": 5, "fine_tune_epochs": 3}, "at most 5 epochs"),
        ({"image_size": 224}, "at most 160 px"),
        ({"data": "/etc"}, "datasets must be inside"),
        ({"data": str(SAMPLE_DATASET) + "/../../../.."}, "datasets must be inside"),
    ],
)
def test_demo_limits(fields, message):
    config = TrainConfig(
        **{
            "data": str(SAMPLE_DATASET),
            "backbone": "mobilenet_v2_0.35",
            "image_size": 160,
            "epochs": 3,
            **fields,
        }
    )
    with pytest.raises(ConfigError, match=message):
        check_demo_limits(config)


def test_sample_and_data_root_are_allowed(tmp_path):
    assert confine(SAMPLE_DATASET) == SAMPLE_DATASET.resolve()
    assert confine(tmp_path / "inside" / "x", root=tmp_path) == (tmp_path / "inside" / "x").resolve()
    with pytest.raises(ConfigError):
        confine(tmp_path / ".." / "elsewhere", root=tmp_path)


def test_cli_refuses_over_the_limits_in_demo_mode(tmp_path):
    result = run_cli(
        "core.train",
        "--data",
        str(SAMPLE_DATASET),
        "--runs-dir",
        str(tmp_path),
        "--backbone",
        "resnet50",
        env={"TLS_DEMO_MODE": "1"},
    )
    assert result.returncode == 2 and "backbone: the demo trains only" in result.stderr
    assert not any(p.is_dir() for p in tmp_path.iterdir())


def test_deleting_is_off_in_demo_mode(trained_run, monkeypatch):
    monkeypatch.setenv("TLS_DEMO_MODE", "1")
    with pytest.raises(RunError, match="turned off in the demo"):
        delete_run(trained_run)
    assert trained_run.is_dir()


def test_the_shipped_model_is_installed_once_and_classifies_the_sample(tmp_path, use_keras_home):
    runs = tmp_path / "runs"
    installed = ensure_demo_run(runs)
    assert installed == runs / DEMO_RUN.name and [r.state for r in list_runs(runs)] == ["completed"]
    assert ensure_demo_run(runs) is None  # a completed run exists: nothing is copied again
    classifier = load_classifier(installed)
    photos = sorted(SAMPLE_DATASET.rglob("*.jpg"))[::10]
    results = classifier.predict([str(p) for p in photos])
    assert sum(r["label"] == p.parent.name for r, p in zip(results, photos)) / len(photos) >= 0.9


def test_demo_requirements_are_the_app_pins_with_cpu_tensorflow():
    from core.config import PROJ_ROOT

    pins = lambda path: [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    app, demo = pins(PROJ_ROOT / "requirements.txt"), pins(PROJ_ROOT / "demo" / "requirements.txt")
    assert demo == [line.replace("tensorflow==", "tensorflow-cpu==") for line in app]


def test_the_hosted_demo_starts_and_predicts_from_the_repository_alone(tmp_path, monkeypatch):
    """The demo entrypoint, with an empty runs folder: the shipped model classifies a photo."""
    from streamlit.testing.v1 import AppTest

    import core.config

    monkeypatch.setattr(core.config, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(core.config, "DATA_ROOT", tmp_path / "data")
    monkeypatch.setenv("TLS_DEMO_MODE", "1")  # as the entrypoint sets it; restored after the test
    at = AppTest.from_file(str(core.config.PROJ_ROOT / "demo" / "streamlit_app.py"), default_timeout=90)
    at.run()
    assert not at.exception
    (workspace,) = (tmp_path / "runs" / "sessions").iterdir()  # this visitor's own
    assert [r.name for r in list_runs(workspace)] == [DEMO_RUN.name]
    at.switch_page("pages/predict.py").run()
    photo = sorted((SAMPLE_DATASET / "humans").glob("*.jpg"))[0]
    at.file_uploader[0].set_value([(photo.name, photo.read_bytes(), "image/jpeg")]).run()
    assert not at.exception and not at.error
    labels = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert len(labels) == 1 and labels[0].split()[1] == "humans"
