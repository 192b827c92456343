"""Dataset scanning, validation with Pillow, image normalisation and splitting."""

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import DatasetError, check_image, load_image, scan_dataset, split_dataset
from tests.helpers import make_color_dataset, write_image


def _odd_images(folder: Path) -> None:
    """One image of every awkward kind Pillow can still read."""
    write_image(folder / "rgba.png", (200, 0, 0), mode="RGBA")
    write_image(folder / "gray.png", (200, 0, 0), mode="L")
    write_image(folder / "palette.png", (200, 0, 0), mode="P")
    write_image(folder / "cmyk.jpg", (200, 0, 0), mode="CMYK")
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(folder / "sixteen.png")
    write_image(folder / "photo.webp", (200, 0, 0))


def test_scan_counts_classes_and_skips_bad_files(color_dataset):
    red = color_dataset / "red"
    (red / "empty.jpg").write_bytes(b"")
    (red / "text.jpg").write_text("not a picture")
    good = (red / "0.png").read_bytes()
    (red / "truncated.png").write_bytes(good[: len(good) // 2])
    (red / "notes.txt").write_text("hello")
    (red / ".DS_Store").write_bytes(b"\0\0")
    write_image(color_dataset / "red" / ".ipynb_checkpoints" / "x.png", (1, 2, 3))
    write_image(color_dataset / ".hidden_class" / "x.png", (1, 2, 3))
    write_image(red / "nested" / "deeper" / "n.png", (220, 40, 40))

    report = scan_dataset(color_dataset)

    assert report.class_names == ["blue", "red"]
    assert report.counts() == {"all": {"blue": 8, "red": 9}}  # nested image included
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"empty.jpg", "text.jpg", "truncated.png", "notes.txt"}
    assert "not an image file type" in skipped["notes.txt"]
    assert "corrupt" in skipped["truncated.png"] or "not an image" in skipped["truncated.png"]


def test_odd_modes_are_accepted_and_normalised_to_rgb(color_dataset):
    _odd_images(color_dataset / "red")
    report = scan_dataset(color_dataset)
    assert not report.skipped
    for path in report.splits["all"].paths:
        array = load_image(path, 24)
        assert array.shape == (24, 24, 3) and array.dtype == np.uint8


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 30000, np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4), 60000, np.uint16)).save(tmp_path / "b.png")
    assert load_image(tmp_path / "a.png")[0, 0, 0] == 255  # a flat image maps its peak to white
    assert load_image(tmp_path / "b.png").max() == 255


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png")[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (40, 20, 3)  # upright: taller than wide


def test_decompression_bomb_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    write_image(tmp_path / "big.png", (0, 0, 0), size=64)
    assert "decompression bomb" in check_image(tmp_path / "big.png")


def test_presplit_dataset_is_detected(tmp_path):
    make_color_dataset(tmp_path / "ds" / "train", per_class=4)
    make_color_dataset(tmp_path / "ds" / "validation", per_class=2)
    report = scan_dataset(tmp_path / "ds")
    assert report.is_split
    assert report.counts() == {"train": {"blue": 4, "red": 4}, "validation": {"blue": 2, "red": 2}}


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda root: make_color_dataset(root, classes={"only": (1, 2, 3)}), "at least 2 class folders"),
        (lambda root: (make_color_dataset(root), (root / "empty").mkdir()), "no valid images in : empty"),
        (
            lambda root: [
                (root / c).mkdir(parents=True) or (root / c / "x.jpg").write_text("x") for c in ("a", "b")
            ],
            "no valid images found",
        ),
        (lambda root: make_color_dataset(root / "train"), "no validation/ folder"),
    ],
    ids=["one-class", "empty-class", "only-bad-files", "train-without-validation"],
)
def test_unusable_datasets_are_refused_with_a_reason(tmp_path, build, message):
    root = tmp_path / "ds"
    root.mkdir()
    build(root)
    with pytest.raises(DatasetError, match=message):
        scan_dataset(root)


def test_missing_folder():
    with pytest.raises(DatasetError, match="dataset folder not found"):
        scan_dataset("/no/such/folder")


def test_split_is_seeded_complete_and_clean(color_dataset, tmp_path):
    (color_dataset / "red" / "bad.png").write_text("x")
    (color_dataset / "red" / ".DS_Store").write_text("x")
    report = scan_dataset(color_dataset)
    out = split_dataset(report, tmp_path / "split", val_split=0.25, seed=3)
    again = split_dataset(report, tmp_path / "split2", val_split=0.25, seed=3)
    split = scan_dataset(out)
    assert split.counts() == {"train": {"blue": 6, "red": 6}, "validation": {"blue": 2, "red": 2}}
    names = lambda root, part: sorted(p.name for p in (root / part).rglob("*.png"))
    assert names(out, "validation") == names(again, "validation")  # same seed, same split
    assert not set(names(out, "train")) & set(names(out, "validation"))
    assert not list(out.rglob("bad.png")) and not list(out.rglob(".DS_Store"))
    assert not any(p.is_symlink() for p in out.rglob("*"))  # copies unless link=True


def test_split_refuses_existing_output(color_dataset, tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(DatasetError, match="exists already"):
        split_dataset(scan_dataset(color_dataset), tmp_path / "exists", val_split=0.2, seed=1)


def test_split_with_links_and_test_part(color_dataset, tmp_path):
    out = split_dataset(scan_dataset(color_dataset), tmp_path / "s", 0.25, 1, test_split=0.25, link=True)
    counts = scan_dataset(out).counts()
    assert counts["test"] == {"blue": 2, "red": 2} and counts["train"] == {"blue": 4, "red": 4}
    files = [p for p in out.rglob("*.png")]
    assert files and all(p.is_symlink() for p in files)
    assert all(os.path.realpath(p).startswith(str(color_dataset)) for p in files)


def test_a_large_photo_is_checked_whole_and_reported_at_full_size(tmp_path):
    # The check decodes JPEGs at 1/8 scale for speed: a cut-off photo must still fail,
    # and the size report must give the photo's real size.
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "photo.jpg", quality=90)
    whole = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) * 9 // 10])
    assert check_image(tmp_path / "photo.jpg") is None
    assert "corrupt" in check_image(tmp_path / "cut.jpg")
    other = make_color_dataset(tmp_path / "d", per_class=2)
    os.replace(tmp_path / "photo.jpg", other / "red" / "photo.jpg")
    assert scan_dataset(other).sizes[(1600, 1200)] == 1


def test_evenly_spaced_keeps_the_ends_and_never_repeats():
    from core.data import evenly_spaced

    assert evenly_spaced(list(range(10)), 4) == [0, 3, 6, 9]
    assert evenly_spaced(list(range(3)), 10) == [0, 1, 2]
    assert evenly_spaced([], 5) == [] and evenly_spaced([1, 2], 0) == []


def test_a_second_scan_decodes_only_the_files_changed_since(color_dataset, tmp_path, monkeypatch):
    import core.data

    monkeypatch.setattr("core.embeddings.CACHE_DIR", tmp_path / "cache" / "embeddings")
    decoded = []
    inspect = core.data._inspect_image
    monkeypatch.setattr(
        core.data, "_inspect_image", lambda path: (decoded.append(Path(path).name), inspect(path))[1]
    )
    first = scan_dataset(color_dataset)
    assert len(decoded) == 16 and len(list((tmp_path / "cache" / "scans").glob("*.json"))) == 1

    decoded.clear()
    write_image(color_dataset / "red" / "3.png", (220, 40, 40), size=48, seed=99)  # rewritten: decoded again
    good = (color_dataset / "blue" / "0.png").read_bytes()
    (color_dataset / "blue" / "1.png").write_bytes(good[: len(good) // 2])  # truncated since: caught
    second = scan_dataset(color_dataset)
    assert sorted(decoded) == ["1.png", "3.png"]
    assert [Path(s.path).name for s in second.skipped] == ["1.png"]
    assert second.sizes == first.sizes - Counter({(32, 32): 2}) + Counter(
        {(48, 48): 1}
    )  # remembered sizes count

    decoded.clear()
    assert scan_dataset(color_dataset).counts() == second.counts()
    assert decoded == ["1.png"]  # a bad file is not remembered: it is checked until it is fixed
