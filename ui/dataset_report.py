"""The Data page's check of a dataset: every image read once (cached), then its counts, sizes,
skipped files and warnings."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.catalog import dataset_signature
from core.checks import data_warnings
from core.data import DatasetError, DatasetReport, scan_dataset
from core.plots import split_counts_figure
from core.reports import image_sizes_line, skipped_rows
from core.text import md


@st.cache_data(show_spinner=False, max_entries=16)
def cached_scan(path: str, signature: float) -> DatasetReport:
    """`scan_dataset`, redone only when a class folder changed (`signature` is their newest mtime)."""
    return scan_dataset(path)


def scan(path: str) -> DatasetReport:
    """The dataset's report, from the cache while no class folder changed."""
    return cached_scan(path, dataset_signature(path))


def scan_ui(dataset: Path) -> DatasetReport | None:
    """The dataset's report, or None (with the reason shown) when it cannot train."""
    with st.spinner("Checking every image with Pillow..."):
        try:
            return scan(str(dataset))
        except DatasetError as exc:
            st.error(f"This folder cannot be used for training: {md(exc)}")
            return None


def report_ui(report: DatasetReport) -> None:
    """Classes, images and skipped files; the data warnings; counts per split; image sizes."""
    counts = report.counts()
    total = sum(sum(c.values()) for c in counts.values())
    a, b, c = st.columns(3)
    a.metric("Classes", len(report.class_names))
    b.metric("Valid images", f"{total:,}")
    c.metric("Skipped files", len(report.skipped))
    for warning in data_warnings(counts):
        st.warning(warning)
    left, right = st.columns([2, 3])
    left.dataframe(
        {"class": report.class_names, **{split: list(c.values()) for split, c in counts.items()}},
        hide_index=True,
    )
    right.plotly_chart(split_counts_figure(counts), key="counts_chart")
    st.caption(image_sizes_line(report.sizes))
    if report.skipped:
        with st.expander(f"Skipped files ({len(report.skipped)})"):
            st.dataframe(skipped_rows(report), hide_index=True)
