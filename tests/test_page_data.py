"""The Data page: the sample, augmentation previews, folder reports, splitting, uploads
and the strategy advisor.

Fixtures `dirs`, `with_run`, `fake_trainer` and `fresh_caches` are in conftest.py; helpers in
tests/page_helpers.py.
"""

import dataclasses
from pathlib import Path

from streamlit.testing.v1 import AppTest

import core.advisor
import core.config
from core.backbones import WeightsUnavailableError
from core.config import SAMPLE_DATASET
from tests.dashboard_helpers import class_zip_entries, make_zip, png_bytes
from tests.helpers import make_color_dataset
from tests.page_helpers import (
    FOLDER,
    UPLOAD,
    button,
    chart_spec,
    open_page,
    plan,
    texts,
)


def test_data_sample_is_the_default_and_remembered_for_train(dirs):
    at = open_page("pages/data.py")
    assert at.session_state["dataset"] == str(SAMPLE_DATASET)
    assert [m.value for m in at.metric][:3] == ["2", "100", "0"]
    spec = chart_spec(at, "counts_chart")
    assert [t["name"] for t in spec["data"]] == ["all"]
    assert spec["data"][0]["y"] == [50, 50]
    at.switch_page("pages/train.py").run()
    assert str(SAMPLE_DATASET) in texts(at.caption)


def preview_grids(at: AppTest) -> tuple[list[str], list[str]]:
    """The image URLs (content hashes) of the two 8-image grids: one image x8, a random batch."""
    urls = [image.value[0] for image in at.image]
    assert len(urls) == 16
    return urls[:8], urls[8:]


def test_moving_an_augmentation_slider_changes_the_preview(dirs):
    at = open_page("pages/data.py")
    one_image, batch = preview_grids(at)
    assert len(set(one_image)) == 1  # no augmentation yet: 8 identical copies
    at.slider(key="aug_rotation").set_value(40.0).run()
    assert not at.exception
    rotated_one, rotated_batch = preview_grids(at)
    assert len(set(rotated_one)) == 8  # each copy rotated its own way
    assert not set(rotated_batch) & set(batch)
    assert at.session_state["augment"]["rotation"] == 40.0
    [regenerate] = [b for b in at.button if b.label == "Regenerate"]
    regenerate.click().run()
    assert set(preview_grids(at)[1]) != set(rotated_batch)  # a new random batch


def test_reference_recipe_button_sets_every_slider(dirs):
    at = open_page("pages/data.py")
    [button] = [b for b in at.button if b.label == "Use the reference recipe"]
    button.click().run()
    assert at.slider(key="aug_rotation").value == 40
    assert at.slider(key="aug_width_shift").value == 0.2
    assert at.checkbox(key="aug_horizontal_flip").value is True
    assert at.session_state["augment"] == {**core.config.REFERENCE_AUGMENT.__dict__}


def _messy_dataset(root: Path) -> Path:
    make_color_dataset(root, per_class=3, classes={"blue": (40, 40, 220)})
    make_color_dataset(root, per_class=8, classes={"red": (220, 40, 40)})
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "blue" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_data_folder_report_counts_skips_and_imbalance(dirs):
    _messy_dataset(dirs.data / "mine")
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(FOLDER).run()
    assert at.selectbox(key="folder").value == "mine"
    assert [m.value for m in at.metric][:3] == ["2", "11", "2"]
    assert "imbalanced" in texts(at.warning) and "2.7x" in texts(at.warning)
    skipped = at.dataframe[1].value
    assert sorted(skipped["file"]) == ["blue/broken.png", "red/notes.txt"]
    assert at.session_state["dataset"] == str(dirs.data / "mine")


def test_split_makes_a_new_folder_and_selects_it(dirs):
    make_color_dataset(dirs.data / "colors", per_class=8)
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(FOLDER).run()
    at.slider[0].set_value(0.25)  # validation
    at.slider[1].set_value(0.25)  # test
    [submit] = [b for b in at.button if b.label == "Split into a new folder"]
    submit.click().run()
    assert not at.exception and not at.error
    output = dirs.data / "splits" / "colors-split"
    assert sorted(p.name for p in output.iterdir()) == ["test", "train", "validation"]
    assert at.selectbox(key="folder").value == "splits/colors-split"
    assert at.session_state["dataset"] == str(output)
    spec = chart_spec(at, "counts_chart")
    assert [t["name"] for t in spec["data"]] == ["train", "validation", "test"]
    assert sum(sum(t["y"]) for t in spec["data"]) == 16


def test_upload_a_zip_of_class_folders(dirs):
    archive = make_zip(dirs.data.parent / "pets.zip", class_zip_entries("pets/", per_class=3))
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(UPLOAD).run()
    at.file_uploader[0].set_value(("pets.zip", archive.read_bytes(), "application/zip")).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="folder").value == "uploads/pets/pets"
    assert "Unpacked pets.zip" in texts(at.success)
    assert [m.value for m in at.metric][:2] == ["2", "6"]


def test_upload_an_unsafe_zip_is_refused(dirs):
    archive = make_zip(
        dirs.data.parent / "evil.zip", {**class_zip_entries(), "../../escaped.png": png_bytes((1, 1, 1))}
    )
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(UPLOAD).run()
    at.file_uploader[0].set_value(("evil.zip", archive.read_bytes(), "application/zip")).run()
    assert not at.exception
    assert "That zip cannot be used" in texts(at.error) and "leaves its folder" in texts(at.error)
    assert not list(dirs.data.parent.rglob("escaped.png"))
    assert not (dirs.data / "uploads").exists() or not any((dirs.data / "uploads").iterdir())


# --- Data: the strategy advisor -------------------------------------------------------------


def _advice(**changes) -> core.advisor.Advice:
    advice = core.advisor.Advice(
        images_per_class_min=8,
        images_per_class_mean=8.0,
        counts={"blue": 8, "red": 8},
        similarity=0.31,
        scores={"imagenet": {"block_13_expand_relu": 0.9, "top": 0.7}, "random": {"top": 0.6}},
        sample_size=16,
        similarity_method="cross-validated logistic regression on 16 sample images",
        size_label="small",
        similarity_label="different",
        strategy=core.advisor.SMALL_DIFFERENT,
        explanation="Your smallest class has 8 images. Recommended: an earlier layer.",
        preset=dict(core.advisor.STRATEGY_PRESETS[core.advisor.SMALL_DIFFERENT]),
    )
    return dataclasses.replace(advice, **changes)


def _strategy_page(dirs) -> tuple[AppTest, Path]:
    data = make_color_dataset(dirs.data / "colors")
    at = open_page("pages/data.py")
    at.radio(key="source").set_value(FOLDER).run()
    return at, data


def test_the_advisor_recommends_and_fills_the_train_form(dirs, fresh_caches, monkeypatch):
    calls = []
    monkeypatch.setattr(core.advisor, "advise", lambda path: calls.append(path) or _advice())
    at, data = _strategy_page(dirs)
    assert not calls  # nothing measured until asked
    button(at, "Recommend a strategy").click().run()
    assert not at.exception and not at.error
    assert f"Recommended: **{core.advisor.SMALL_DIFFERENT}**" in texts(at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Smallest class"] == "8 images" and metrics["Similarity to ImageNet"] == "0.31"
    assert "logistic regression on 16 sample images" in texts(at.caption)
    assert "Recommended: an earlier layer." in texts(at.markdown)
    button(at, "Use this on the Train page").click().run()
    assert calls == [str(data)]  # measured once: the second run read the cache
    assert at.session_state["advised"]["preset"]["feature_layer"] == "block_13_expand_relu"

    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "advisor"
    assert at.radio(key="advisor:mode").value == "features"
    assert at.text_input(key="advisor:feature_layer").value == "block_13_expand_relu"
    assert at.selectbox(key="advisor:backbone").value == "mobilenet_v2"
    assert at.radio(key="advisor:classifier").value == "logreg"
    assert "layer `block_13_expand_relu`" in plan(at)


def test_the_advisor_offline_says_where_the_weights_go(dirs, fresh_caches, monkeypatch):
    message = "Could not download the ImageNet weights for mobilenet_v2_0.35 (offline?): put the file there."

    def offline(path):
        raise WeightsUnavailableError(message)

    monkeypatch.setattr(core.advisor, "advise", offline)
    at, _ = _strategy_page(dirs)
    button(at, "Recommend a strategy").click().run()
    assert not at.exception
    assert message in texts(at.error)
    assert "advised" not in at.session_state
