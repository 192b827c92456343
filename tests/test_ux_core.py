"""The plain logic behind the pages' checks and labels: limits before Start, sizes a backbone
can take, data warnings, folders that cannot train, the URL's state, run names and labels."""

import json

import pytest

import core.backbones
from core.backbones import snap_image_size, weights_file_name, weights_problem
from core.catalog import unusable_folders
from core.checks import (
    MIN_IMAGES_PER_CLASS,
    config_problem,
    data_warnings,
    launch_problems,
    snap_to_weights,
)
from core.config import PRESETS, ConfigError, TrainConfig
from core.plots import compare_runs_figure
from core.reports import describe_augment, run_label, runs_table
from core.runs import list_runs, new_run_dir, write_json_atomic
from core.uploads import UploadError, delete_upload, rename_upload, upload_folders
from core.url_state import (
    augment_from_param,
    augment_param,
    dataset_from_param,
    dataset_param,
    dataset_widgets_start,
)
from tests.helpers import make_color_dataset


def quick(**changes) -> dict:
    return {**TrainConfig().to_dict(), **PRESETS["quick"], "data": "d", **changes}


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("batch_size", -5, "Batch size: must be between 1 and 1024, got -5"),
        ("epochs", 0, "Epochs: must be between 1 and 1000, got 0"),
        ("dense_units", 100000, "Dense units: must be between 0 and 8192, got 100000"),
    ],
)
def test_config_problem_names_the_box_and_the_engines_limit(field, value, expected):
    assert config_problem(quick(**{field: value})) == expected
    with pytest.raises(ConfigError):  # the very limit the engine applies
        TrainConfig.from_dict(quick(**{field: value})).validate()


def test_a_learning_rate_the_engine_accepts_is_not_refused():
    assert config_problem(quick(learning_rate=1e-7)) is None


def test_inception_refuses_sizes_below_its_minimum():
    assert "inception_v3 needs at least 75 px, got 64" in config_problem(
        quick(backbone="inception_v3", image_size=64)
    )


def test_mobilenet_sizes_snap_to_those_with_their_own_weights():
    assert snap_image_size("mobilenet_v2_0.35", 33)[0] == 96
    size, why = snap_image_size("mobilenet_v2", 200)
    assert size == 192 and "96, 128, 160, 192, 224 px only: 200 px becomes 192 px" in why
    assert snap_image_size("mobilenet_v2", 160) == (160, None)
    assert snap_image_size("resnet50", 200) == (200, None)  # one weights file for any size


def test_snap_to_weights_moves_only_an_imagenet_size_and_says_so():
    values = {"backbone": "mobilenet_v2_0.35", "image_size": 33, "weights": "imagenet"}
    snapped, notes = snap_to_weights(values)
    assert snapped["image_size"] == 96 and "33 px becomes 96 px" in notes[0]
    assert values["image_size"] == 33  # the caller's dict is left alone
    assert snap_to_weights({**values, "weights": None}) == ({**values, "weights": None}, [])
    assert snap_to_weights({**values, "backbone": "nonesuch"})[1] == []


def test_weights_problem_names_the_file_keras_wants(tmp_path, monkeypatch):
    monkeypatch.setattr(core.backbones, "keras_cache_dir", lambda: tmp_path / "models")
    assert weights_file_name("mobilenet_v2_0.35", 160).endswith("_0.35_160_no_top.h5")
    assert weights_file_name("mobilenet_0.25", 96) == "mobilenet_2_5_224_tf_no_top.h5"  # Keras's fallback
    problem = weights_problem("inception_v3", 299, downloadable=False)
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in problem and str(tmp_path) in problem
    assert weights_problem("inception_v3", 299, downloadable=True) is None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"")
    assert weights_problem("inception_v3", 299, downloadable=False) is None


def test_launch_problems_cover_a_gone_dataset_and_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(core.backbones, "keras_cache_dir", lambda: tmp_path / "models")
    problems = launch_problems(quick(data=str(tmp_path / "gone")), downloadable=False)
    assert problems[0].startswith("Dataset: the folder is gone") and "ImageNet weights" in problems[1]
    assert launch_problems(quick(data=str(tmp_path), weights=None), downloadable=False) == []


def test_data_warnings_imbalance_and_too_few_images():
    warnings = data_warnings({"all": {"big": 40, "tiny": 2}})
    assert "imbalanced (the largest has 20.0x" in warnings[0]
    assert f"Too few images per class: tiny (2). With under {MIN_IMAGES_PER_CLASS}" in warnings[1]
    assert data_warnings({"train": {"a": 20, "b": 20}, "validation": {"a": 5, "b": 5}}) == []


def test_one_class_folders_and_loose_images_are_listed_with_the_reason(tmp_path):
    make_color_dataset(tmp_path / "good", per_class=2)
    make_color_dataset(tmp_path / "one", per_class=2, classes={"cats": (1, 2, 3)})
    make_color_dataset(tmp_path / "loose", per_class=2, classes={".": (1, 2, 3)})
    found = {p.name: why for p, why in unusable_folders(tmp_path)}
    assert set(found) == {"one", "loose"}
    assert found["one"] == "only one class folder (cats): training needs at least two"
    assert "not sorted into class folders" in found["loose"]


def test_the_url_keeps_a_dataset_only_if_it_is_one_inside_the_data_root(tmp_path):
    data, sample = tmp_path / "data", tmp_path / "sample"
    make_color_dataset(data / "colors", per_class=1)
    assert dataset_param(data / "colors", data, sample) == "colors"
    assert dataset_param(sample, data, sample) == "sample"
    assert dataset_from_param("colors", data, sample) == (data / "colors").resolve()
    assert dataset_from_param("sample", data, sample) == sample
    for bad in ("../../etc", "missing", "", None):
        assert dataset_from_param(bad, data, sample) is None


def test_dataset_widgets_start_at_a_pending_or_remembered_dataset(tmp_path):
    data, sample = tmp_path / "data", tmp_path / "sample"

    def start(pending, remembered, chosen_before):
        return dataset_widgets_start(pending, remembered, chosen_before, data, sample)

    assert start("uploads/pets", str(data / "colors"), True) == ("folder", "uploads/pets")  # code's wins
    assert start(None, str(data / "colors"), False) == ("folder", "colors")  # back on the page
    assert start(None, str(data / "colors"), True) is None  # the widgets' own choice stays
    assert start(None, str(sample), False) == ("sample", None)
    assert start(None, str(tmp_path / "outside"), False) is None
    assert start(None, None, False) is None


def test_the_url_keeps_an_augmentation_and_rejects_a_bad_one():
    augment = {**TrainConfig().augment.__dict__, "rotation": 30.0, "horizontal_flip": True}
    assert augment_param(augment) == '{"rotation":30.0,"horizontal_flip":true}'
    assert augment_from_param(augment_param(augment)) == augment
    assert augment_from_param('{"rotation": 999}') is None and augment_from_param("nonsense") is None


def test_describe_augment_reads_like_a_sentence():
    assert describe_augment(PRESETS["seed"]["augment"]) == (
        "rotate up to ±40°, shift up to 20% sideways and 20% up or down, shear 0.2, flip left-right "
        "(fill: nearest)"
    )
    assert describe_augment({}) == "none"


def test_runs_are_named_and_listed_with_their_dataset(tmp_path):
    config = TrainConfig(data=str(tmp_path / "my hands!"), backbone="vgg16", image_size=64)
    run = new_run_dir(tmp_path / "runs", config)
    assert run.name.endswith("-my-hands-vgg16-64")
    write_json_atomic(run / "config.json", config.to_dict())
    old = tmp_path / "runs" / "20200101-000000-vgg16-64"  # named before datasets were
    old.mkdir()
    write_json_atomic(old / "config.json", config.to_dict())
    summaries = list_runs(tmp_path / "runs")
    assert [row["dataset"] for row in runs_table(summaries)] == ["my hands!", "my hands!"]
    assert [row["best val accuracy"] for row in runs_table(summaries)] == ["-", "-"]  # no epoch: no "None"
    assert [run_label(s) for s in summaries] == [run.name, f"{old.name} · my hands!"]


def test_compare_legend_sits_below_the_axis_title_with_room_for_every_run():
    epochs = [{"epoch": 1, "val_accuracy": 0.5}]
    one = compare_runs_figure({"a": epochs}).layout
    three = compare_runs_figure({"a": epochs, "b": epochs, "c": epochs}).layout
    assert (one.legend.yref, one.legend.yanchor, one.legend.y) == ("container", "bottom", 0)
    # The bottom margin holds the axis title and then the legend's rows, so they cannot overlap.
    assert three.margin.b - one.margin.b == three.height - one.height > 0


def test_uploads_can_be_renamed_and_deleted_but_nothing_else(tmp_path):
    uploads = tmp_path / "uploads"
    make_color_dataset(uploads / "hands", per_class=1)
    make_color_dataset(uploads / "hands-2", per_class=1)
    renamed = rename_upload(uploads, uploads / "hands-2", "gloves")
    assert [p.name for p in upload_folders(uploads)] == ["gloves", "hands"]
    with pytest.raises(UploadError, match="exists already"):
        rename_upload(uploads, renamed, "hands")
    with pytest.raises(UploadError, match="not an uploaded dataset"):
        delete_upload(uploads, tmp_path)  # outside: refused
    delete_upload(uploads, renamed)
    assert [p.name for p in upload_folders(uploads)] == ["hands"]
    assert json.dumps([p.name for p in upload_folders(tmp_path / "none")]) == "[]"
