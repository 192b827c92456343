"""What the dashboard keeps in the page's URL (`st.query_params`), so a reload or a shared
link keeps the chosen dataset and augmentation: plain strings in, checked values out; and
where the Data page's dataset widgets start. No Streamlit here."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from core.catalog import looks_like_dataset
from core.config import AugmentConfig, ConfigError

SAMPLE_PARAM = "sample"


def dataset_param(folder: str | os.PathLike, data_root: Path, sample: Path) -> str:
    """How a dataset is named in the page's URL: "sample", or its path inside the data root
    (an outside folder by its full path: only a local dashboard can train on one)."""
    folder = Path(folder)
    if folder.resolve() == Path(sample).resolve():
        return SAMPLE_PARAM
    try:
        return str(folder.resolve().relative_to(Path(data_root).resolve()))
    except ValueError:
        return str(folder)


def dataset_from_param(
    param: str | None, data_root: Path, sample: Path, allowed: list[Path] | None = None
) -> Path | None:
    """The dataset folder a URL's parameter names, if it is a dataset inside the data root
    (or the sample) and, when `allowed` is given, one of those (the demo: this visitor's own);
    None otherwise, so a stale or crafted link falls back to the default."""
    if not param:
        return None
    if param == SAMPLE_PARAM:
        return Path(sample)
    root = Path(data_root).resolve()
    folder = (root / param).resolve()
    if not (folder.is_relative_to(root) and folder.is_dir() and looks_like_dataset(folder)):
        return None
    if allowed is not None and folder not in {Path(p).resolve() for p in allowed}:
        return None
    return folder


def dataset_widgets_start(
    pending: str | None, remembered: str | None, chosen_before: bool, data_root: Path, sample: Path
) -> tuple[str, str | None] | None:
    """Where the dataset widgets start: ("folder", path inside the data root), ("sample", None),
    or None to leave them as they are.

    `pending` is a folder (inside the data root) chosen by code, an upload or a split, and always
    wins. Otherwise `remembered`, the dataset of an earlier visit, is shown again, but only when
    the widgets have no choice of their own yet (`chosen_before`): Streamlit forgets the widgets
    of a page left, not the dataset.
    """
    if pending:
        return ("folder", pending)
    if chosen_before or not remembered:
        return None
    folder = Path(remembered)
    if folder == Path(sample):
        return ("sample", None)
    if folder.is_relative_to(data_root):
        return ("folder", str(folder.relative_to(data_root)))
    return None


def augment_param(augment: dict) -> str:
    """An augmentation as a short JSON of the fields that differ from none ("{}" for none)."""
    default = dataclasses.asdict(AugmentConfig())
    return json.dumps({k: v for k, v in augment.items() if default.get(k) != v}, separators=(",", ":"))


def augment_from_param(param: str | None) -> dict | None:
    """The augmentation a URL's parameter describes, as a full dict; None if absent or invalid."""
    if not param:
        return None
    try:
        values = json.loads(param)
        augment = AugmentConfig(**values) if isinstance(values, dict) else None
        if augment is None:
            return None
        augment.validate()
    except (ValueError, TypeError, ConfigError):
        return None
    return dataclasses.asdict(augment)
