"""Train: a form of every knob, then the run's live progress and curves.

Two kinds of transfer learning: fine-tune (a Keras head, then optionally the backbone's
top layers) or feature extraction (a classical classifier on the embeddings), and auto,
which measures both. Before Start the page says which path training will take; while it
trains, what it is doing.

Training runs in its own process (`python -m core.train`, started by core.launch); this
page only writes a config and reads the run's files, so it never imports Keras.
"""

import streamlit as st

from core import config
from core.catalog import dataset_name
from core.checks import launch_problems, snap_to_weights
from core.config import ConfigError, TrainConfig
from core.demo import workspace
from core.launch import launch_training
from core.runs import RunError, active_run, watched_run
from core.text import code, md
from core.url_state import augment_from_param, augment_param, dataset_from_param, dataset_param
from ui.navigation import run_through_navigation
from ui.run_watch import watch_ui
from ui.state import AUGMENT, DATASET, TRAIN_RUN
from ui.train_form import augment_ui, knobs_ui, preset_ui, weights_downloadable
from ui.train_start import data_ui, plan_ui, start_ui

run_through_navigation()


def chosen_dataset() -> str:
    """The Data page's dataset (and augmentation), else the URL's (so a reload keeps them), else
    the sample; both written back to the URL."""
    state, params = st.session_state, st.query_params
    if not state.get(DATASET):
        allowed = space.datasets()  # in the demo, never another visitor's
        found = dataset_from_param(params.get("dataset"), config.DATA_ROOT, config.SAMPLE_DATASET, allowed)
        state[DATASET] = str(found or config.SAMPLE_DATASET)
    if state.get(AUGMENT) is None and augment_from_param(params.get("augment")):
        state[AUGMENT] = augment_from_param(params.get("augment"))
    params["dataset"] = dataset_param(state[DATASET], config.DATA_ROOT, config.SAMPLE_DATASET)
    if state.get(AUGMENT) is not None:
        params["augment"] = augment_param(state[AUGMENT])
    return state[DATASET]


def start(values: dict) -> None:
    """Launch; errors in the user's words."""
    try:
        train_config = TrainConfig.from_dict(values)
        train_config.validate()
        with st.spinner("Starting the training process..."):
            run_dir = launch_training(train_config, space.runs_dir, space.data_dir)
    except ConfigError as exc:
        st.error(f"Check the settings: {md(exc)}")
    except RunError as exc:
        st.error(f"Cannot start: {md(exc)}")
    else:
        st.session_state[TRAIN_RUN] = str(run_dir)
        st.toast(f"Started {run_dir.name}", icon=":material/rocket_launch:")
        st.rerun()  # the form folds away: the run's progress comes into view


st.title("Train")
space = workspace(st.session_state)  # in the demo, this visitor's own runs only
dataset = chosen_dataset()
st.caption(
    f"New runs train on **{md(dataset_name(dataset))}** ({code(dataset)}) · choose another on the Data page"
)
# Asked once per run of the page, so the Start button and the live view below agree on it.
running = active_run(space.runs_dir)
with st.expander("New run", expanded=running is None):
    preset_name, preset = preset_ui(dataset)
    values = knobs_ui(preset, preset_name)
    values["augment"] = augment_ui(preset, preset_name)
    # Fields without a widget keep the preset's; the size snaps to one with ImageNet weights.
    values, notes = snap_to_weights({**preset, **values, "data": dataset})
    problems = data_ui(dataset) + launch_problems(values, weights_downloadable())
    if start_ui(problems, notes, running):
        start(values)
    plan_ui(values)

# Below the form (folded while a run trains), so Start is in view without scrolling.
run_dir = watched_run(space.runs_dir, running, st.session_state.get(TRAIN_RUN))
if run_dir is None:
    st.info("No runs yet: start one above.")
else:
    watch_ui(run_dir, space.runs_dir, running)
