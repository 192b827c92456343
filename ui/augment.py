"""The Data page's augmentation: a slider per knob (ranges from the config's field table) and
a preview of one image augmented many times and of a random augmented batch."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import streamlit as st

from core.config import FILL_MODES, REFERENCE_AUGMENT, AugmentConfig, field_limits
from core.data import DatasetReport
from core.preview import augment_batch, augment_repeated, load_batch, preview_paths
from core.text import md
from ui.images import image_row
from ui.state import AUGMENT

PREVIEW_COUNT, PREVIEW_SIZE = 8, 160
AUGMENT_SLIDERS = {  # field: (label, step, help); the range is the config's (field_limits)
    "rotation": ("Rotation (degrees)", 5.0, "rotate by up to +/- this many degrees"),
    "width_shift": ("Width shift", 0.05, "shift sideways by up to this fraction of the width"),
    "height_shift": ("Height shift", 0.05, "shift up or down by up to this fraction of the height"),
    "shear": ("Shear", 0.05, "slant by up to this shear factor"),
    "zoom": ("Zoom", 0.05, "zoom in or out by up to this fraction"),
}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_repeated(path: str, augment: dict, seed: int):
    return augment_repeated(path, AugmentConfig(**augment), PREVIEW_COUNT, PREVIEW_SIZE, seed)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_batch(paths: tuple[str, ...], augment: dict, seed: int):
    return augment_batch(load_batch(list(paths), PREVIEW_SIZE), AugmentConfig(**augment), seed)


def augment_ui() -> AugmentConfig:
    """Sliders for every augmentation knob; starts from the remembered config."""
    saved = st.session_state.get(AUGMENT) or {}
    for field, value in dataclasses.asdict(AugmentConfig(**saved)).items():
        st.session_state.setdefault(f"aug_{field}", value)
    buttons = st.container(horizontal=True)
    buttons.button("Use the reference recipe", on_click=_set_augment, args=(REFERENCE_AUGMENT,))
    buttons.button("No augmentation", on_click=_set_augment, args=(AugmentConfig(),))
    values = {}
    columns = st.columns(3)
    for i, (field, (label, step, help_text)) in enumerate(AUGMENT_SLIDERS.items()):
        limits = field_limits(f"augment.{field}")
        values[field] = columns[i % 3].slider(
            label,
            float(limits.low),
            float(limits.high),
            step=step,
            format="%d" if step >= 1 else "%.2f",
            key=f"aug_{field}",
            help=help_text,
        )
    values["fill_mode"] = columns[2].selectbox(
        "Fill mode", FILL_MODES, key="aug_fill_mode", help="how to fill pixels moved in from outside"
    )
    values["horizontal_flip"] = columns[0].checkbox("Horizontal flip", key="aug_horizontal_flip")
    return AugmentConfig(**values)


def _set_augment(augment: AugmentConfig) -> None:
    for field, value in dataclasses.asdict(augment).items():
        st.session_state[f"aug_{field}"] = value


def preview_ui(report: DatasetReport, augment: AugmentConfig) -> None:
    """One image augmented PREVIEW_COUNT times, and a random augmented batch ("Regenerate" draws
    another)."""
    seed = st.session_state.setdefault("preview_seed", 0)
    if st.button("Regenerate", icon=":material/refresh:"):
        seed = st.session_state["preview_seed"] = int(time.time() * 1000) % 2**31
    samples = preview_paths(report, PREVIEW_COUNT, seed)
    settings = dataclasses.asdict(augment)
    with st.spinner("Augmenting (TensorFlow loads the first time, a few seconds)..."):
        repeated = cached_repeated(samples[0][0], settings, seed)
        batch = cached_batch(tuple(p for p, _ in samples), settings, seed)
    st.markdown(f"**One image, augmented {PREVIEW_COUNT} times** ({md(Path(samples[0][0]).name)})")
    image_row(list(repeated))
    st.markdown("**A random augmented batch**")
    image_row(list(batch), [name for _, name in samples])
