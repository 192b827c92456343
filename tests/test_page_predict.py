"""The Predict page: labelling uploaded and camera photos, with Grad-CAM.

Fixtures `dirs`, `with_run`, `fake_trainer` and `fresh_caches` are in conftest.py; helpers in
tests/page_helpers.py.
"""

import os

import pytest

import core.gradcam
from core.config import SAMPLE_DATASET
from tests.helpers import write_image
from tests.page_helpers import (
    chart_spec,
    open_page,
    texts,
)


def test_predict_labels_uploads_and_reports_an_unreadable_one(with_run, tmp_path):
    red = write_image(tmp_path / "red.png", (220, 40, 40), size=48).read_bytes()
    at = open_page("pages/predict.py")
    assert at.radio[0].value == "best"
    uploads = [("red.png", red, "image/png"), ("junk.png", b"not an image", "image/png")]
    at.file_uploader[0].set_value(uploads).run()
    assert not at.exception and not at.error
    labels = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert len(labels) == 1 and labels[0].split()[1] in {"blue", "red"}
    assert at.image[0].captions == ["red.png"]
    probs = chart_spec(at, "probs_0")["data"][0]
    assert sorted(probs["y"]) == ["blue", "red"] and sum(probs["x"]) == pytest.approx(1.0, abs=1e-4)
    assert "junk.png" in texts(at.warning) and "not an image" in texts(at.warning)


def test_predict_a_camera_photo(with_run):
    at = open_page("pages/predict.py")
    at.toggle(key="camera").set_value(True).run()
    photo = (SAMPLE_DATASET / "humans" / sorted(os.listdir(SAMPLE_DATASET / "humans"))[0]).read_bytes()
    at.camera_input[0].set_value(("camera.jpg", photo, "image/jpeg")).run()
    assert not at.exception and not at.error
    labels = [m.value for m in at.markdown if m.value.startswith("### ")]
    # A photo of a person, to a model of colours, is none of its classes.
    assert labels in (["### None of these  \n(closest: blue)"], ["### None of these  \n(closest: red)"])
    assert chart_spec(at, "probs_0")["data"][0]["orientation"] == "h"


# --- Predict: Grad-CAM ----------------------------------------------------------------------


def test_gradcam_overlay_beside_each_photo(with_run, tmp_path):
    red = write_image(tmp_path / "red.png", (220, 40, 40), size=48).read_bytes()
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value([("red.png", red, "image/png")]).run()
    assert len(at.image) == 1
    at.toggle(key="gradcam").set_value(True).run()
    assert not at.exception and not at.error and not at.warning
    original, overlay = at.image
    assert original.captions == ["red.png"]
    label = [m.value for m in at.markdown if m.value.startswith("### ")][0].split()[1]
    assert overlay.captions == [f"Grad-CAM: where it saw {label}"]
    assert original.value[0] != overlay.value[0]  # another picture, not the photo again


def test_gradcam_not_available_says_so(with_run, tmp_path, monkeypatch):
    monkeypatch.setattr(core.gradcam, "gradcam_available", lambda model: False)
    red = write_image(tmp_path / "red.png", (220, 40, 40), size=48).read_bytes()
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value([("red.png", red, "image/png")])
    at.toggle(key="gradcam").set_value(True).run()
    assert not at.exception
    assert "Grad-CAM is not available for this classifier" in texts(at.info)
    assert len(at.image) == 1 and [m for m in at.markdown if m.value.startswith("### ")]
