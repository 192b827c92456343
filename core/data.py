"""Find, validate and split image datasets. Pillow only: no TensorFlow here.

A dataset is either a folder of class folders (`root/<class>/<image>`) or one split
already (`root/train/<class>/...`, `root/validation/<class>/...`, optionally `test/`).
Every file is opened with Pillow before training: corrupt, truncated and non-image
files are skipped and reported by name instead of aborting an epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
SPLIT_NAMES = ("train", "validation", "test")
EVALUATION_SPLITS = ("validation", "test", "train")  # the same splits, in the order offered for evaluation
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}


class DatasetError(ValueError):
    """The dataset cannot be used; the message says why in a user's words."""


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class Split:
    """The valid images of one split: paths and class indices, in a stable order."""

    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def counts(self, class_names: list[str]) -> dict[str, int]:
        counter = Counter(self.labels)
        return {name: counter.get(i, 0) for i, name in enumerate(class_names)}


@dataclass
class DatasetReport:
    """What scanning a dataset found: classes, valid images per split, skipped files."""

    root: str
    class_names: list[str]
    splits: dict[str, Split]  # "all" for an unsplit dataset, else train/validation/test
    skipped: list[SkippedFile]
    sizes: Counter  # (width, height) -> number of images

    @property
    def is_split(self) -> bool:
        return "train" in self.splits

    def counts(self) -> dict[str, dict[str, int]]:
        """Valid images per class, per split."""
        return {name: split.counts(self.class_names) for name, split in self.splits.items()}

    def imbalance_ratio(self) -> float:
        """Largest class over smallest class, over all splits together."""
        return imbalance_ratio(self.counts())


def imbalance_ratio(counts: dict[str, dict[str, int]]) -> float:
    """Largest class over smallest, over all splits together ({split: {class: n}}); 1 for none."""
    totals = class_totals(counts)
    return max(totals.values()) / max(min(totals.values()), 1) if totals else 1.0


def class_totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Images per class over all splits, from {split: {class: n}}."""
    totals: Counter = Counter()
    for split in counts.values():
        totals.update(split)
    return dict(totals)


def load_image(source: str | os.PathLike | bytes | io.BytesIO, size: int | None = None):
    """Open any image Pillow reads as an 8-bit RGB array, upright per its EXIF tag.

    Handles RGBA/LA/P (composited on white), L, CMYK, 16-bit and animated images
    (first frame). With `size`, resize to a `size` x `size` square (bilinear). An image
    above `max_pixels()` is refused from its header, before it is decoded.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    with Image.open(source) as image:
        _check_pixels(image)
        image.seek(0)
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
        if size:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def max_pixels() -> int:
    """The most pixels an image may have: the demo's limit (strangers share its memory),
    else Pillow's decompression-bomb threshold."""
    from core.demo import MAX_IMAGE_PIXELS, demo_mode

    return MAX_IMAGE_PIXELS if demo_mode() else Image.MAX_IMAGE_PIXELS


def _check_pixels(image: Image.Image) -> None:
    width, height = image.size
    if width * height > max_pixels():
        raise ValueError(
            f"image too large: {width}x{height} pixels (at most {max_pixels() / 1e6:.0f} million)"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: scale to 8 bits instead of letting Pillow clip at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / peak)).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def check_image(path: str | os.PathLike) -> str | None:
    """None if Pillow can fully decode the file, else the reason it cannot."""
    return _inspect_image(path)[0]


def _inspect_image(path: str | os.PathLike) -> tuple[str | None, tuple[int, int] | None]:
    """(None, (width, height)) if Pillow can decode the whole file, else (the reason, None)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixels(image)  # from the header: a huge image is never decoded
                image.verify()  # cheap structural check
            with Image.open(path) as image:
                size = image.size
                # JPEG: decode at 1/8 scale. The entropy-coded data is still read to its end,
                # so truncation and corruption still fail, at a fraction of a phone photo's cost.
                image.draft(image.mode, (1, 1))
                image.load()  # a decode catches truncated files that verify() misses
                return None, size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "image too large (possible decompression bomb)", None
    except Image.UnidentifiedImageError:
        return "not an image Pillow can read", None
    except ValueError as exc:
        if str(exc).startswith("image too large"):
            return str(exc), None
        return f"corrupt image (ValueError: {exc})", None
    except Exception as exc:  # Pillow raises many types for damaged files
        return f"corrupt image ({type(exc).__name__}: {exc})", None


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__"))


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _files_in(class_dir: Path, root: Path, skipped: list[SkippedFile]) -> list[Path]:
    """Every visible file below a class folder, nested subfolders included.

    A linked folder is followed once, and never back into the dataset: a link to a folder
    above (a loop) or to another class's folder would repeat or mislabel images. It is
    listed in `skipped` instead. In demo mode no link may leave the data root.
    """
    root_real, class_real = os.path.realpath(root), os.path.realpath(class_dir)
    _confine_link(class_dir, class_real)
    seen, found = {class_real}, []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        kept = []
        for name in sorted(d for d in dirnames if _visible(Path(d))):
            path, real = Path(dirpath) / name, os.path.realpath(Path(dirpath) / name)
            reason = _link_problem(real, class_real, root_real, seen)
            if reason:
                skipped.append(SkippedFile(str(path), reason))
                continue
            _confine_link(path, real)
            seen.add(real)
            kept.append(name)
        dirnames[:] = kept
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _visible(Path(f)))
    return found


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _link_problem(real: str, class_real: str, root_real: str, seen: set[str]) -> str | None:
    """Why the folder whose real path is `real` is not read, or None."""
    if real in seen:
        return "a symbolic link to a folder read already: not followed"
    if _inside(class_real, real):
        return "a symbolic link loop (to a folder above it): not followed"
    if _inside(real, root_real) and not _inside(real, class_real):
        return "a symbolic link to another folder of the dataset: not followed"
    return None


def _confine_link(path: Path, real: str) -> None:
    """In demo mode, a linked folder must stay inside the data root (visitors share the disk)."""
    from core.demo import demo_mode

    if demo_mode() and path.is_symlink():
        from core import config
        from core.demo import confine

        try:
            confine(real, config.DATA_ROOT)
        except ValueError:
            raise DatasetError(
                f"{path.name} links to a folder outside the data folder: refused in the demo"
            ) from None


def detect_splits(root: Path) -> dict[str, Path]:
    """`{"train": ..., "validation": ...}` for a split dataset, else `{"all": root}`."""
    subdirs = {SPLIT_ALIASES.get(p.name.lower()): p for p in _class_dirs(root)}
    subdirs.pop(None, None)
    if "train" in subdirs:
        if "validation" not in subdirs:
            raise DatasetError(f"{root} has a train/ folder but no validation/ folder")
        return {name: subdirs[name] for name in SPLIT_NAMES if name in subdirs}
    return {"all": root}


def scan_dataset(root: str | os.PathLike, validate: bool = True) -> DatasetReport:
    """Find every image of a dataset, check it with Pillow, and count it.

    Raises:
        DatasetError: missing folder, fewer than 2 classes, an empty class, no valid image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    split_dirs = detect_splits(root)
    class_names = _class_names(split_dirs)
    skipped: list[SkippedFile] = []
    found = [(split_name, index, path) for split_name, split_dir in split_dirs.items()
             for index, name in enumerate(class_names) if (split_dir / name).is_dir()
             for path in _files_in(split_dir / name, root, skipped)]  # fmt: skip
    validated = _validated_before(root) if validate else {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # Pillow decodes without the GIL
        checks = list(pool.map(lambda item: _check(item[2], validate, validated), found))
    if validate:
        _remember_validated(root, validated, [(item[2], *check[1:]) for item, check in zip(found, checks)])
    splits, sizes = {name: Split() for name in split_dirs}, Counter()
    for (split_name, index, path), (reason, size, _) in zip(found, checks):
        if reason:
            skipped.append(SkippedFile(str(path), reason))
            continue
        splits[split_name].paths.append(str(path))
        splits[split_name].labels.append(index)
        if size:
            sizes[size] += 1
    report = DatasetReport(str(root), class_names, splits, skipped, sizes)
    _check_usable(report)
    return report


def _class_names(split_dirs: dict[str, Path]) -> list[str]:
    names = {d.name for split_dir in split_dirs.values() for d in _class_dirs(split_dir)}
    if len(names) < 2:
        found = ", ".join(sorted(names)) or "none"
        raise DatasetError(
            f"a dataset needs at least 2 class folders (one folder of images per class); "
            f"found {len(names)}: {found}"
        )
    return sorted(names)


def _check(path: Path, validate: bool, validated: dict) -> tuple[str | None, tuple | None, list | None]:
    """(why the file is skipped or None, its size when validated, its stamp when validated);
    a file decoded whole by an earlier scan, unchanged since, is not decoded again."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file type ({path.suffix or 'no extension'})", None, None
    if not validate:
        return None, None, None
    stamp, before = _stamp(path), validated.get(str(path))  # stamped first: a rewrite is seen next time
    if stamp and isinstance(before, list) and len(before) == 4 and before[:2] == stamp:
        return None, tuple(before[2:]), stamp
    return (*_inspect_image(path), stamp)


def _stamp(path: Path) -> list[int] | None:
    """[bytes, modification time in ns]: what changes when a file is rewritten."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _validated_file(root: Path) -> Path:
    """Where a dataset's validated images are remembered: beside the embedding cache."""
    from core import embeddings

    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(embeddings.CACHE_DIR).parent / "scans" / f"{name}.json"


def _validated_before(root: Path) -> dict[str, list[int]]:
    """{path: [bytes, mtime ns, width, height]} of the images an earlier scan decoded whole.

    Decoding every image is most of a scan (0.4 s for 1,283 photos here, seconds for tens of
    thousands), and every training and Data page visit scans: an unchanged file is checked once.
    """
    from core.runs import read_json

    known = read_json(_validated_file(root), {})
    return known if isinstance(known, dict) else {}


def _remember_validated(root: Path, before: dict, checked: list[tuple]) -> None:
    """Record the valid images, (path, size, stamp) with a size, for the next scan; a failed
    write only costs speed."""
    from core.runs import write_json_atomic

    now = {str(path): [*stamp, *size] for path, size, stamp in checked if size and stamp}
    if now != before:
        with contextlib.suppress(OSError):
            _validated_file(root).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(_validated_file(root), now)


def _check_usable(report: DatasetReport) -> None:
    if not any(split.paths for split in report.splits.values()):
        raise DatasetError(f"no valid images found in {report.root}")
    train = report.splits.get("train") or report.splits["all"]
    empty = [name for name, n in train.counts(report.class_names).items() if n == 0]
    if empty:
        where = "train/" if report.is_split else ""
        raise DatasetError(f"class folder(s) with no valid images in {where}: {', '.join(empty)}")
    if report.is_split and not report.splits["validation"].paths:
        raise DatasetError("the validation/ folder has no valid images")


def split_dataset(
    report: DatasetReport,
    output: str | os.PathLike,
    val_split: float,
    seed: int,
    test_split: float = 0.0,
    link: bool = False,
) -> Path:
    """Split an unsplit dataset's valid images into `output/{train,validation[,test]}`.

    Uses split-folders. Only valid images take part (hidden and bad files never reach
    the output), and `output` must not exist yet: split-folders merges into an existing
    folder, which would leak files between splits. With `link`, the output holds
    symbolic links to the originals instead of copies.
    """
    import splitfolders

    output = Path(output)
    if report.is_split:
        raise DatasetError("this dataset is split already")
    if output.exists():
        raise DatasetError(f"the output folder exists already: {output}; choose a new one")
    train = 1.0 - val_split - test_split
    if not (0 < val_split < 1 and 0 <= test_split < 1 and train > 0):
        raise DatasetError("split ratios must be positive and leave images for training")
    ratio = (train, val_split, test_split) if test_split else (train, val_split)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the output, so a kill midway leaves its temp folder there, not in /tmp.
    with tempfile.TemporaryDirectory(prefix=".tls-stage-", dir=output.parent) as stage:
        _stage_valid_images(report, Path(stage))
        splitfolders.ratio(
            stage, output=str(output), seed=seed, ratio=ratio, move="symlink" if link else False
        )
    if (output / "val").is_dir():  # split-folders says "val"; we say "validation"
        os.replace(output / "val", output / "validation")
    for split_name in ("train", "validation"):  # a tiny class can end up with no images
        for name in report.class_names:
            (output / split_name / name).mkdir(parents=True, exist_ok=True)
    return output


def _stage_valid_images(report: DatasetReport, stage: Path) -> None:
    """Symlink each valid image into `stage/<class>/`, flattening nested subfolders."""
    _link_images(report, report.splits["all"], stage)


def link_split(report: DatasetReport, output: str | os.PathLike) -> Path:
    """Symlink a split dataset's images into `output/<split>/<class>/`, under the classes the
    report gives them (which may differ from their folders: the user moved them)."""
    output = Path(output)
    if output.exists():
        raise DatasetError(f"the output folder exists already: {output}; choose a new one")
    for split_name, split in report.splits.items():
        _link_images(report, split, output / split_name, depth=2)
        for name in report.class_names:
            (output / split_name / name).mkdir(parents=True, exist_ok=True)
    return output


def _link_images(report: DatasetReport, split: Split, output: Path, depth: int = 1) -> None:
    """Symlink each image into `output/<its class>/`, flattening nested subfolders.

    `depth`: the folders above an image's own subpath (class, or split and class)."""
    for path, label in zip(split.paths, split.labels):
        relative = Path(*Path(path).relative_to(report.root).parts[depth:])
        folder = output / report.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(path).resolve(), folder / _flat_name(relative, folder))


MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; leave room for a suffix


def _flat_name(relative: Path, folder: Path) -> str:
    """`a/b/c.jpg` -> `a__b__c.jpg`, unique in `folder` (`a/b.jpg` beside `a__b.jpg` is
    `a__b-2.jpg`) and short enough for the file system (a long one keeps its end and a hash)."""
    name, suffix = "__".join(relative.parts), relative.suffix
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        tail = name.encode()[-(MAX_NAME_BYTES - 13) :].decode(errors="ignore")
        name = f"{digest}-{tail}"
    candidate, n = name, 1
    while os.path.lexists(folder / candidate):
        n += 1
        candidate = f"{name[: len(name) - len(suffix)]}-{n}{suffix}"
    return candidate


def evenly_spaced(items: list, count: int) -> list:
    """Up to `count` of `items`, evenly spread from the first to the last (deterministic)."""
    if not items or count <= 0:
        return []
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))]
