"""Find dataset folders under the data folder, cheaply (names only; `core.data` validates).

A folder counts as a dataset when it has a train/ folder, or at least two class
folders that hold image files.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.data import IMAGE_SUFFIXES, SPLIT_ALIASES


def _visible_dirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith((".", "__"))]


def _has_images(folder: Path, depth: int = 2) -> bool:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    if any(e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES for e in entries):
        return True
    return depth > 1 and any(_has_images(Path(e.path), depth - 1) for e in entries if e.is_dir())


def looks_like_dataset(folder: str | os.PathLike) -> bool:
    subdirs = _visible_dirs(Path(folder))
    if any(SPLIT_ALIASES.get(d.name.lower()) == "train" for d in subdirs):
        return True
    return sum(_has_images(d) for d in subdirs[:50]) >= 2


def find_datasets(
    data_root: str | os.PathLike, max_depth: int = 4, exclude: tuple = (), containers: tuple = ()
) -> list[Path]:
    """Dataset folders below `data_root` (not inside one another), sorted by path.

    `exclude`: folders not searched at all. `containers`: folders that hold datasets but
    never are one (uploads/: two uploads are not one dataset whose classes they would be).
    """
    return _survey(data_root, max_depth, exclude, containers)[0]


def dataset_name(folder: str | os.PathLike) -> str:
    """The name a dataset goes by in run names, tables and legends: its folder's name."""
    return Path(folder).name or str(folder) or "?"


def unusable_folders(
    data_root: str | os.PathLike, max_depth: int = 4, exclude: tuple = (), containers: tuple = ()
) -> list[tuple[Path, str]]:
    """Folders below `data_root` that hold images but cannot train, with the reason: one class
    folder only, or images not sorted into class folders. Datasets are not looked inside;
    `exclude` and `containers` mean what they mean to `find_datasets`."""
    return _survey(data_root, max_depth, exclude, containers)[1]


def _unusable_reason(folder: Path) -> str | None:
    classes = [d for d in _visible_dirs(folder) if _has_images(d, 1)]
    if len(classes) == 1:
        return f"only one class folder ({classes[0].name}): training needs at least two"
    if _has_images(folder, 1):
        return "the images are not sorted into class folders (one folder per class)"
    return None


def _survey(
    data_root: str | os.PathLike, max_depth: int, exclude: tuple, containers: tuple
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(datasets, unusable folders with their reason) below `data_root`, in one walk."""
    excluded = {Path(p).resolve() for p in exclude}
    holders = {Path(p).resolve() for p in containers}
    datasets: list[Path] = []
    unusable: list[tuple[Path, str]] = []

    def walk(folder: Path, depth: int) -> None:
        if folder.resolve() in excluded:
            return
        if folder.resolve() not in holders:
            if looks_like_dataset(folder):
                datasets.append(folder)
                return
            reason = _unusable_reason(folder)
            if reason:
                unusable.append((folder, reason))
                return
        if depth < max_depth:
            for sub in _visible_dirs(folder):
                walk(sub, depth + 1)

    root = Path(data_root)
    if root.is_dir():
        for sub in _visible_dirs(root):
            walk(sub, 1)
    return sorted(datasets), sorted(unusable)


def dataset_signature(folder: str | os.PathLike) -> float:
    """The newest modification time of the folder and its folders two levels down.

    Adding or removing an image changes its class folder's mtime, so this is a cheap
    cache key for a dataset's scan.
    """
    folder = Path(folder)
    stamps = []
    for path in [folder, *_visible_dirs(folder)]:
        stamps.append(path.stat().st_mtime)
        stamps.extend(sub.stat().st_mtime for sub in _visible_dirs(path) if path != folder)
    return max(stamps) if stamps else 0.0
