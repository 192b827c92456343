"""Dataset layouts a hostile tester built: colliding flattened names, long names, symbolic
link loops, links into other classes or outside the data root."""

import os

import pytest

import core.config
from core.data import DatasetError, scan_dataset, split_dataset
from tests.helpers import make_color_dataset, write_image


def _split_total(report, output) -> int:
    split_dataset(report, output, 0.25, seed=1)
    return sum(1 for p in output.rglob("*") if p.is_symlink() or p.is_file())


def test_nested_and_flat_names_that_collide_are_both_kept(tmp_path):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    write_image(data / "red" / "x" / "y.png", (220, 40, 40))
    write_image(data / "red" / "x__y.png", (220, 40, 40), seed=5)
    report = scan_dataset(data)
    assert _split_total(report, tmp_path / "out") == 10


def test_long_folder_and_file_names_are_split(tmp_path):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    write_image(data / "red" / ("f" * 200) / ("n" * 100 + ".png"), (220, 40, 40))
    report = scan_dataset(data)
    assert _split_total(report, tmp_path / "out") == 9


def test_a_symlink_loop_is_not_followed(tmp_path):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    os.symlink("..", data / "red" / "up")
    report = scan_dataset(data)
    assert report.counts()["all"] == {"blue": 4, "red": 4}
    assert any("loop" in s.reason for s in report.skipped)


def test_a_link_into_another_class_does_not_mislabel_its_images(tmp_path):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    os.symlink(data / "blue", data / "red" / "more")
    report = scan_dataset(data)
    assert report.counts()["all"] == {"blue": 4, "red": 4}
    assert any("another folder of the dataset" in s.reason for s in report.skipped)


def test_a_folder_outside_the_dataset_is_read_once(tmp_path):
    data = make_color_dataset(tmp_path / "d", per_class=4)
    for i in range(3):
        write_image(tmp_path / "elsewhere" / f"{i}.png", (220, 40, 40), seed=50 + i)
    os.symlink(tmp_path / "elsewhere", data / "red" / "a")
    os.symlink(tmp_path / "elsewhere", data / "red" / "b")
    assert scan_dataset(data).counts()["all"] == {"blue": 4, "red": 7}


def test_the_demo_refuses_class_folders_linked_outside_the_data_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    data = make_color_dataset(root / "d", per_class=4)
    outside = make_color_dataset(tmp_path / "outside", per_class=4)
    os.symlink(outside / "red", data / "green")
    monkeypatch.setattr(core.config, "DATA_ROOT", root)
    assert scan_dataset(data).counts()["all"]["green"] == 4  # a machine's own links: followed
    monkeypatch.setenv("TLS_DEMO_MODE", "1")
    with pytest.raises(DatasetError, match="outside the data folder"):
        scan_dataset(data)


def test_the_demo_refuses_huge_images_before_decoding_them(tmp_path, monkeypatch):
    from PIL import Image

    from core.data import check_image, load_image

    huge = tmp_path / "huge.png"
    Image.new("1", (9400, 9400)).save(huge)  # a small file; 265 MB once decoded to RGB
    monkeypatch.setenv("TLS_DEMO_MODE", "1")
    with pytest.raises(ValueError, match="image too large: 9400x9400 pixels"):
        load_image(huge, 96)
    assert check_image(huge).startswith("image too large")
    small = write_image(tmp_path / "small.png", (1, 2, 3))
    assert load_image(small, 16).shape == (16, 16, 3) and check_image(small) is None
