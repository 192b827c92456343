"""The Data page's split of an unsplit dataset into a new folder (train / validation / test)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import config
from core.data import DatasetError, DatasetReport, split_dataset
from core.demo import workspace
from core.text import code, md
from core.uploads import safe_name, unique_path
from ui.dataset_picker import PENDING_DATASET
from ui.state import FLASH


def split_ui(dataset: Path, report: DatasetReport) -> None:
    """The split form; a new split folder becomes the chosen dataset (after a rerun)."""
    if report.is_split:
        st.info(f"This dataset is split already ({', '.join(report.splits)}): training uses its splits.")
        return
    st.write(
        "Training splits an unsplit dataset by itself (its *validation split* setting). Split it here "
        "to keep a test set aside, or to fix the split for several runs."
    )
    with st.form("split"):
        a, b, c = st.columns(3)
        val = a.slider("Validation fraction", 0.05, 0.5, 0.2, 0.05)
        test = b.slider("Test fraction", 0.0, 0.4, 0.0, 0.05, help="0: no test split")
        seed = int(c.number_input("Seed", 0, 2**31 - 1, 42))
        name = st.text_input("New folder name", f"{dataset.name}-split")
        submitted = st.form_submit_button("Split into a new folder", icon=":material/call_split:")
    if not submitted:
        return
    output = unique_path(workspace(st.session_state).splits_dir, safe_name(name, "split"))
    with st.spinner(f"Splitting into {output}..."):
        try:
            split_dataset(report, output, val, seed, test_split=test)
        except DatasetError as exc:
            st.error(f"Cannot split: {md(exc)}")
            return
    st.session_state[PENDING_DATASET] = str(output.relative_to(config.DATA_ROOT))
    st.session_state[FLASH] = f"Split into {code(output)}: the Train page now uses it."
    st.rerun()
