"""Data: choose a dataset, check it, split it, preview the augmentation training will use, ask
the strategy advisor which kind of transfer learning fits it, and check the data's health.

Remembers the dataset (a folder), the augmentation (an AugmentConfig as a dict) and, once
asked, the advisor's settings in session state (keys in ui/state.py) for the Train page; the
dataset and augmentation also in the URL, so a reload keeps them.
"""

import dataclasses

import streamlit as st

from core import config
from core.reports import describe_augment
from core.text import code
from core.url_state import augment_param, dataset_param
from ui.advisor import strategy_ui
from ui.augment import augment_ui, preview_ui
from ui.dataset_picker import dataset_ui, restore_choice
from ui.dataset_report import report_ui, scan_ui
from ui.health import health_ui
from ui.navigation import run_through_navigation
from ui.split import split_ui
from ui.state import AUGMENT, DATASET, FLASH

run_through_navigation()

st.title("Data")
restore_choice()
dataset = dataset_ui()
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))
if dataset is None:
    st.stop()
report = scan_ui(dataset)
if report is None:
    st.stop()
st.session_state[DATASET] = str(dataset)
st.query_params["dataset"] = dataset_param(dataset, config.DATA_ROOT, config.SAMPLE_DATASET)
st.caption(f"The Train page uses this dataset: {code(dataset)}")

report_tab, split_tab, augment_tab, strategy_tab, health_tab = st.tabs(
    ["Check", "Split", "Augmentation", "Which strategy?", "Health"]
)
with report_tab:
    report_ui(report)
with split_tab:
    split_ui(dataset, report)
with augment_tab:
    augment = augment_ui()
    st.session_state[AUGMENT] = dataclasses.asdict(augment)
    st.query_params["augment"] = augment_param(st.session_state[AUGMENT])
    st.caption(
        f"Previewing changes no training by itself: on the Train page, choose *the Data page's* "
        f"augmentation to train with this one ({describe_augment(st.session_state[AUGMENT])})."
    )
    preview_ui(report, augment)
with strategy_tab:
    strategy_ui(dataset)
with health_tab:
    health_ui(dataset, report)
