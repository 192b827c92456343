"""The Data page's Health tab: run `core.health` on the dataset, show each kind of finding as a
gallery, and record the user's decisions (exclude, move to a class) outside the dataset."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import launch
from core.backbones import BACKBONES
from core.data import DatasetReport
from core.demo import workspace
from core.exclusions import (
    Exclusions,
    load_exclusions,
    load_findings,
    move_target,
    relative_path,
    save_exclusions,
    save_findings,
)
from core.health import KINDS, read_findings
from core.reports import decisions_line, finding_caption, health_summary_line
from core.runs import RunError
from core.text import md
from ui.images import thumbnail

KIND_TITLES = {"leakage": "Leakage", "duplicate": "Duplicates", "label_issue": "Label issues",
               "outlier": "Outliers"}  # fmt: skip
BACKBONE_CHOICES = ("mobilenet_v2", "mobilenet_v2_0.35", "mobilenet_0.25", "efficientnet_b0", "resnet50")
SHOWN = 30  # findings drawn per kind
PHOTOS_SHOWN = 6  # photos drawn per finding


def health_ui(dataset: Path, report: DatasetReport) -> None:
    """Explain, offer the check, and show the last check's findings with their decisions."""
    st.write(
        "Finds photos that are in the dataset twice, photos shared between train and validation "
        "(which inflate accuracy), photos that look like another class than their folder, and "
        "photos unlike any other. Decisions are saved in the project's data folder: **your "
        "dataset folder is never changed**, and the next training leaves out or moves the photos."
    )
    data_root = workspace(st.session_state).data_dir  # in the demo, this visitor's own
    a, b = st.columns(2)
    backbone = a.selectbox(
        "Backbone", BACKBONE_CHOICES, key="health_backbone", help="as training's: its embeddings are reused"
    )
    default = BACKBONES[backbone].default_size
    size = int(b.number_input("Image size", 32, 1024, default, key=f"health_size_{backbone}"))
    if st.button("Check data health", icon=":material/health_and_safety:"):
        with st.spinner("Embedding every photo and looking for problems (a separate process)..."):
            try:
                save_findings(dataset, launch.run_health(dataset, backbone, size), data_root)
            except RunError as exc:
                st.error(f"The health check failed: {exc}")
                return
    lines = load_findings(dataset, data_root)
    if lines is None:
        st.info("No health check of this dataset yet.")
        return
    findings, summary = read_findings(lines)
    st.caption(health_summary_line(summary))
    exclusions = load_exclusions(dataset, data_root)
    st.caption(decisions_line(exclusions))
    counts = summary.get("findings", {})
    tabs = st.tabs([f"{KIND_TITLES[kind]} ({counts.get(kind, 0)})" for kind in KINDS])
    for tab, kind in zip(tabs, KINDS):
        with tab:
            of_kind = [f for f in findings if f["kind"] == kind]
            findings_ui(dataset, report.class_names, of_kind, kind, exclusions)


def findings_ui(
    dataset: Path, class_names: list[str], findings: list[dict], kind: str, exclusions: Exclusions
) -> None:
    """The first SHOWN findings of one kind."""
    if not findings:
        st.success(f"No {KIND_TITLES[kind].lower()} found.")
    for index, finding in enumerate(findings[:SHOWN]):
        finding_ui(dataset, class_names, finding, f"{kind}_{index}", exclusions)
    if len(findings) > SHOWN:
        st.caption(f"... and {len(findings) - SHOWN} more (`python -m core.health` lists all).")


def finding_ui(
    dataset: Path, class_names: list[str], finding: dict, key: str, exclusions: Exclusions
) -> None:
    """One finding: its photos side by side, each with an "exclude" box (and "move" for labels)."""
    with st.container(border=True):
        st.caption(md(finding_caption(finding)))
        files = finding["files"][:PHOTOS_SHOWN]
        target = move_target(finding, class_names)
        columns = st.columns(max(len(files), 3))
        for i, (file, column) in enumerate(zip(files, columns)):
            relative = relative_path(file, dataset)
            thumb = thumbnail(file)
            if thumb is not None:
                column.image(thumb, caption=relative, width="stretch")
            box = f"exclude_{key}_{i}"
            column.checkbox(
                "Exclude from training",
                value=relative in exclusions.excluded,
                key=box,
                on_change=_decide,
                args=(dataset, relative, None, box),
            )
            if target:
                box = f"move_{key}_{i}"
                column.checkbox(
                    f"Move to {target}",
                    value=exclusions.relabelled.get(relative) == target,
                    key=box,
                    on_change=_decide,
                    args=(dataset, relative, target, box),
                )


def _decide(dataset: Path, relative: str, target: str | None, key: str) -> None:
    """Record one checkbox (exclude, or move to `target`) in the exclusions file of the data
    folder; the dataset folder is never touched."""
    data_root = workspace(st.session_state).data_dir
    exclusions = load_exclusions(dataset, data_root)
    if target is None:
        exclusions.set_excluded(relative, st.session_state[key])
    else:
        exclusions.set_moved(relative, target, st.session_state[key])
    save_exclusions(dataset, exclusions, data_root)
