"""The strategy advisor: measure the dataset, recommend a kind of transfer learning, and hand
its settings to the Train page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import advisor
from core.backbones import WeightsUnavailableError
from core.catalog import dataset_signature
from core.data import DatasetError
from core.text import md
from ui.state import ADVISED, ADVISOR, PRESET_DEFAULT

ADVICE_FOR = "advice_for"  # (dataset, signature) the user asked advice for


@st.cache_data(show_spinner=False, max_entries=16)
def cached_advice(path: str, signature: float) -> advisor.Advice:
    """`core.advisor.advise`, redone only for another dataset or when a class folder changed."""
    return advisor.advise(path)


def strategy_ui(dataset: Path) -> None:
    """The advisor: measured only when asked, shown again while the dataset is unchanged."""
    st.write(
        "Which kind of transfer learning fits this dataset depends on two things: how many "
        "images each class has, and how much the images look like ImageNet's photos. The "
        "advisor measures both and recommends a recipe."
    )
    key = (str(dataset), dataset_signature(dataset))
    if st.button("Recommend a strategy", icon=":material/psychology:"):
        st.session_state[ADVICE_FOR] = key
    if st.session_state.get(ADVICE_FOR) != key:
        return
    try:
        with st.spinner("Measuring: a pretrained MobileNetV2 looks at a sample of the images..."):
            advice = cached_advice(*key)
    except WeightsUnavailableError as exc:
        st.session_state.pop(ADVICE_FOR)  # asked again only by the button
        st.error(str(exc))
        return
    except (DatasetError, ValueError) as exc:
        st.session_state.pop(ADVICE_FOR)
        st.error(f"The advisor cannot measure this dataset: {md(exc)}")
        return
    advice_ui(dataset, advice)


def advice_ui(dataset: Path, advice: advisor.Advice) -> None:
    st.success(f"Recommended: **{advice.strategy}**", icon=":material/recommend:")
    a, b, c = st.columns(3)
    a.metric(
        "Smallest class",
        f"{advice.images_per_class_min:,} images",
        help=f"the dataset is {advice.size_label}",
    )
    b.metric("Mean per class", f"{advice.images_per_class_mean:,.0f} images")
    c.metric(
        "Similarity to ImageNet",
        f"{advice.similarity:.2f}",
        help=f"{advice.similarity_label}; 1 = ImageNet's top features serve these classes best",
    )
    st.caption(
        f"Size: **{advice.size_label}** · images: **{advice.similarity_label}** to ImageNet's. "
        f"Measured as the {advice.similarity_method}."
    )
    st.write(advice.explanation)
    left, right = st.columns(2)
    with left.expander("Images per class"):
        st.dataframe([{"class": c, "images": n} for c, n in advice.counts.items()], hide_index=True)
    with right.expander("The settings it recommends"):
        st.json(advice.preset)
    st.button(
        "Use this on the Train page",
        type="primary",
        icon=":material/input:",
        on_click=_use_advice,
        args=(dataset, advice),
    )
    if st.session_state.get(ADVISED, {}).get("dataset") == str(dataset):
        st.page_link("pages/train.py", label="The Train page opens with it", icon=":material/model_training:")


def _use_advice(dataset: Path, advice: advisor.Advice) -> None:
    st.session_state[ADVISED] = {
        "dataset": str(dataset),
        "dataset_name": dataset.name,
        "strategy": advice.strategy,
        "preset": dict(advice.preset),
    }
    st.session_state[PRESET_DEFAULT] = ADVISOR
