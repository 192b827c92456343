"""The bad-input catalogue: every awkward file a user may have, generated here.

Training skips and names each bad file, or refuses the dataset with a clear message;
there is never a traceback, and nothing in the user's data folder changes.
"""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.runs import read_json
from tests.helpers import make_color_dataset, run_cli, tree_digest, write_image

TINY = [
    "--backbone",
    "mobilenet_v2_0.35",
    "--weights",
    "none",
    "--image-size",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "8",
]


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: a decompression bomb without the memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _good_ones(folder: Path) -> list[str]:
    """Valid but awkward images: every one must be used for training."""
    write_image(folder / "cmyk.jpg", (200, 30, 30), mode="CMYK")
    Image.fromarray(np.full((32, 32), 50000, np.uint16)).save(folder / "sixteen-bit.png")
    write_image(folder / "gray.png", (200, 30, 30), mode="L")
    write_image(folder / "palette.png", (200, 30, 30), mode="P")
    write_image(folder / "rgba.png", (200, 30, 30), mode="RGBA")
    write_image(folder / "photo.webp", (200, 30, 30))
    frames = [Image.new("RGB", (32, 32), c) for c in ((200, 30, 30), (30, 200, 30))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 24), (200, 30, 30)).save(folder / "rotated.jpg", exif=exif)
    write_image(folder / "ünïcödé name ☃.png", (200, 30, 30))
    write_image(folder / "nested" / "deeper" / "inside.png", (200, 30, 30))
    return [
        "cmyk.jpg",
        "sixteen-bit.png",
        "gray.png",
        "palette.png",
        "rgba.png",
        "photo.webp",
        "animated.gif",
        "rotated.jpg",
        "ünïcödé name ☃.png",
        "inside.png",
    ]


def _bad_ones(folder: Path) -> dict[str, str]:
    """Broken files and the reason each must be reported with."""
    good = (folder / "cmyk.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    png = (folder / "gray.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("I am not a picture")
    (folder / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    (folder / "notes.txt").write_text("hello")
    return {
        "truncated.jpg": "corrupt",
        "truncated.png": "corrupt",
        "corrupt.jpg": "",
        "empty.png": "not an image",
        "text.jpg": "not an image",
        "bomb.png": "decompression bomb",
        "notes.txt": "not an image file type",
    }


def _only_bad_files(root: Path) -> None:
    for name in ("a", "b"):
        (root / name).mkdir()
        (root / name / "cmyk.jpg").write_bytes(b"not a jpeg")
        (root / name / "gray.png").write_bytes(b"not a png")
        _bad_ones(root / name)


def test_training_uses_awkward_images_skips_broken_ones_and_changes_nothing(tmp_path):
    data = make_color_dataset(
        tmp_path / "my photos", per_class=6, classes={"red cars": (220, 40, 40), "blue bikes": (40, 40, 220)}
    )
    good = _good_ones(data / "red cars")
    bad = _bad_ones(data / "red cars")
    write_image(data / "red cars" / ".ipynb_checkpoints" / "hidden.png", (1, 1, 1))
    (data / ".DS_Store").write_bytes(b"\0\1")
    before = tree_digest(data)

    result = run_cli("core.train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"), *TINY)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    dataset = read_json(run / "dataset.json")
    skipped = {Path(s["path"]).name: s["reason"] for s in dataset["skipped"]}
    assert set(skipped) == set(bad)
    for name, reason in bad.items():
        assert reason in skipped[name], (name, skipped[name])
        assert f"skipped {data / 'red cars' / name}" in result.stdout
    used = {p.name.split("__")[-1] for p in (run / "split").rglob("*") if p.is_symlink()}
    assert set(good) <= used and not used & set(bad) and "hidden.png" not in used
    assert sum(dataset["counts"]["train"].values()) + sum(dataset["counts"]["validation"].values()) == 22
    assert tree_digest(data) == before  # the user's folder is untouched


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda d: make_color_dataset(d, classes={"only": (1, 2, 3)}), "at least 2 class folders"),
        (lambda d: (make_color_dataset(d), (d / "empty class").mkdir()), "no valid images"),
        (_only_bad_files, "no valid images found"),
    ],
    ids=["single-class", "empty-class", "only-bad-files"],
)
def test_unusable_datasets_are_refused_in_one_line(tmp_path, build, message):
    data = tmp_path / "data"
    data.mkdir()
    build(data)
    before = tree_digest(data)
    result = run_cli("core.train", "--data", str(data), "--runs-dir", str(tmp_path / "runs"), *TINY)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert tree_digest(data) == before
