"""The photos behind an evaluation on Checkpoints: one confusion-matrix cell's photos, and the
misclassified and highest-loss galleries, each with its Grad-CAM overlay when the run has one.

A training's own evaluation leaves the overlays for later (see core.evaluate): turning on
"Show where the model looked" draws them in the background (`core.launch.start_overlays`)
while the page stays usable, then shows them."""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from core.evaluate import cell_images
from core.launch import overlays_job, start_overlays
from core.reports import gallery_caption
from core.runs import RunDir, RunError, is_number
from core.text import md
from ui.background import job_progress

GALLERY_COLUMNS = 6
CELL_PHOTOS = 24  # photos shown for one confusion-matrix cell
GRADCAM_CAPTION = "Grad-CAM: where it looked"


def cell_photos(run_dir: Path, result: dict, clicked) -> None:
    """The photos behind one confusion-matrix cell: the one clicked, or the one chosen below."""
    if not result.get("predictions"):
        return
    names = result["class_names"]
    points = (clicked or {}).get("selection", {}).get("points") or []
    click = (points[0].get("y"), points[0].get("x")) if points else None
    if click != st.session_state.get("cell_click") and set(click or ()) <= set(names):
        # A new click picks the cell; the boxes stay free to pick another until the next click.
        st.session_state["cell_click"] = click
        if click:
            st.session_state["cell_true"], st.session_state["cell_predicted"] = click
    with st.expander("The photos behind a cell (click one in the matrix, or choose)", expanded=bool(points)):
        a, b = st.columns(2)
        true = a.selectbox("True class", names, key="cell_true", index=None)
        predicted = b.selectbox("Predicted class", names, key="cell_predicted", index=None)
        if true is None or predicted is None:
            return
        cell = cell_images(result, names.index(true), names.index(predicted))
        which = f"**{md(true)}** predicted **{md(predicted)}**"
        st.caption(f"{len(cell)} photo(s) of {which}, least confident first.")
        columns = st.columns(GALLERY_COLUMNS)
        for i, entry in enumerate(cell[:CELL_PHOTOS]):
            column = columns[i % GALLERY_COLUMNS]
            if Path(entry["file"]).is_file():
                column.image(entry["file"], width="stretch")
            gradcam = RunDir(run_dir).thumbnail(entry.get("gradcam_thumbnail"))
            if gradcam:
                column.image(str(gradcam), caption=GRADCAM_CAPTION, width="stretch")
            column.caption(md(f"{Path(entry['file']).name}: {predicted} {entry['confidence']:.1%}"))
        if len(cell) > CELL_PHOTOS:
            st.caption(f"... and {len(cell) - CELL_PHOTOS} more.")


def galleries(run_dir: Path, result: dict) -> None:
    """The misclassified and the highest-loss photos on two tabs, with a Grad-CAM toggle."""
    misclassified, top = result.get("misclassified") or [], result.get("top_losses") or []
    has_gradcam = any(entry.get("gradcam_thumbnail") for entry in misclassified + top)
    pending = bool(result.get("overlays_pending"))
    toggle = "Show where the model looked (Grad-CAM)"
    show_gradcam = (has_gradcam or pending) and st.toggle(toggle, key="gallery_gradcam")
    if show_gradcam and pending:
        draw_overlays(run_dir, result)
    wrong_tab, loss_tab = st.tabs([f"Misclassified ({len(misclassified)})", f"Highest loss ({len(top)})"])
    with wrong_tab:
        none_wrong = f"No image of the {result['split']} split was misclassified."
        gallery(run_dir, misclassified, none_wrong, show_gradcam)
    with loss_tab:
        st.caption("The images the model was least sure of, right or wrong.")
        gallery(run_dir, top, "No images.", show_gradcam)


def draw_overlays(run_dir: Path, result: dict) -> None:
    """Start drawing the split's overlays unless a drawing since its evaluation ran; say how it
    goes, and why a drawing failed (with a button to draw them again)."""
    split, evaluated_at = result["split"], result.get("evaluated_at")
    job = overlays_job(run_dir, split)
    stale = job is None or (is_number(evaluated_at) and job.started_at < evaluated_at)
    if not stale and job.error:
        st.warning(f"The Grad-CAM overlays could not be drawn: {md(job.error)}")
        if not st.button("Draw them again", icon=":material/refresh:", key="overlays_again"):
            return
    if stale or job.error:
        try:
            start_overlays(run_dir, split)
        except RunError as exc:
            job = overlays_job(run_dir, split)
            if not (job and job.running):  # running: another visitor asked at the same moment
                st.error(f"Cannot draw the Grad-CAM overlays: {md(exc)}")
                return
        job = overlays_job(run_dir, split)
    if job and job.running:
        doing = "Drawing where the model looked on the gallery's photos (TensorFlow loads first)"
        job_progress(functools.partial(overlays_job, run_dir, split), doing)


def gallery(run_dir: Path, entries: list[dict], empty: str, show_gradcam: bool = False) -> None:
    """Thumbnails in a grid, each captioned with its true and predicted class."""
    if not entries:
        st.success(empty)
        return
    folder = RunDir(run_dir)
    columns = st.columns(GALLERY_COLUMNS)
    for i, entry in enumerate(entries):
        column = columns[i % GALLERY_COLUMNS]
        thumbnail = folder.thumbnail(entry.get("thumbnail"))
        gradcam = folder.thumbnail(entry.get("gradcam_thumbnail")) if show_gradcam else None
        if thumbnail:
            column.image(str(thumbnail), caption=gallery_caption(entry), width="stretch")
        if gradcam:
            column.image(str(gradcam), caption=GRADCAM_CAPTION, width="stretch")
        else:
            column.caption(md(f"{Path(entry.get('file', '?')).name}: {gallery_caption(entry)}"))
