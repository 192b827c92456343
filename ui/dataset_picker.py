"""The Data page's choice of a dataset: the bundled sample, a folder of the data folder, or an
uploaded zip, with the uploads to rename or delete and the folders that cannot train."""

from __future__ import annotations

import contextlib
from pathlib import Path

import streamlit as st

from core import config
from core.catalog import unusable_folders
from core.demo import workspace
from core.text import code, md
from core.uploads import (
    MAX_UNCOMPRESSED_BYTES,
    UploadError,
    delete_upload,
    extract_dataset_upload,
    name_was_taken,
    rename_upload,
    upload_folders,
    upload_of,
    upload_problem,
)
from core.url_state import augment_from_param, dataset_from_param, dataset_widgets_start
from ui.dataset_report import scan
from ui.state import AUGMENT, DATASET, FLASH

SOURCES = {"sample": "The bundled sample", "folder": "A folder in the data folder", "upload": "Upload a zip"}
PENDING_DATASET = "pending_dataset"  # a folder (inside the data root) code chose: an upload, a split


def restore_choice() -> None:
    """Point the dataset widgets, before they draw, at a folder chosen by code (an upload, a
    split) or remembered from an earlier visit (Streamlit forgets widgets of pages left)."""
    state = st.session_state
    remembered = state.get(DATASET)
    if not remembered:  # a reload: the URL remembers the dataset and the augmentation
        allowed = workspace(state).datasets()  # in the demo, never another visitor's
        found = dataset_from_param(
            st.query_params.get("dataset"), config.DATA_ROOT, config.SAMPLE_DATASET, allowed
        )
        remembered = str(found) if found else None
        if state.get(AUGMENT) is None:
            state[AUGMENT] = augment_from_param(st.query_params.get("augment"))
    pending = state.pop(PENDING_DATASET, None)
    start = dataset_widgets_start(
        pending, remembered, "source" in state, config.DATA_ROOT, config.SAMPLE_DATASET
    )
    if start:
        source, folder = start
        state["source"] = SOURCES[source]
        if folder:
            state["folder"] = folder


def dataset_ui() -> Path | None:
    """Widgets choosing the dataset; returns its folder, or None while there is none."""
    source = st.radio("Dataset", list(SOURCES.values()), key="source", horizontal=True)
    if source == SOURCES["sample"]:
        st.caption(f"100 photos of horses and humans, bundled with the app: {code(config.SAMPLE_DATASET)}")
        return config.SAMPLE_DATASET
    if source == SOURCES["folder"]:
        return folder_ui()
    return upload_ui()


def folder_ui() -> Path | None:
    folders = workspace(st.session_state).datasets()  # in the demo, never another visitor's
    if not folders:
        st.info(
            f"No dataset folders in `{config.DATA_ROOT}` yet. Put one there (one folder of images per "
            "class), upload a zip, or download the full horse-or-human set on the Home page."
        )
        return None
    labels = [str(p.relative_to(config.DATA_ROOT)) for p in folders]
    if st.session_state.get("folder") not in labels:
        st.session_state.pop("folder", None)
    choice = st.selectbox("Folder", labels, key="folder", help=f"dataset folders found in {config.DATA_ROOT}")
    unusable_ui()
    return config.DATA_ROOT / choice


def unusable_ui() -> None:
    """Folders with images that cannot train, and why: not silently missing from the list."""
    space = workspace(st.session_state)
    root = space.data_dir if space.isolated else config.DATA_ROOT  # the demo: this visitor's own
    containers = (space.uploads_dir, space.splits_dir)
    unusable = unusable_folders(root, exclude=(config.SAMPLE_DATASET,), containers=containers)
    if unusable:
        with st.expander(f"Folders that cannot train ({len(unusable)})", icon=":material/block:"):
            for folder, reason in unusable:
                st.markdown(f"- {code(folder.relative_to(root))}: {md(reason)}")


def upload_ui() -> None:
    """The zip uploader; a usable upload is selected as a folder after a rerun (so it returns
    nothing itself), an unusable one is deleted at once with the reason shown."""
    upload = st.file_uploader(
        "A zip of class folders (cats/..., dogs/...), or of train/ and validation/ folders",
        type="zip",
    )
    space = workspace(st.session_state)
    uploads, free = space.uploads_dir, space.free_bytes()
    manage_uploads_ui(uploads)  # in the demo, this visitor's own uploads only
    if upload is None:
        return None
    limit = MAX_UNCOMPRESSED_BYTES if free is None else min(free, MAX_UNCOMPRESSED_BYTES)
    with st.spinner("Unpacking the zip safely..."):
        try:
            folder = extract_dataset_upload(upload, uploads, upload.name, max_bytes=limit)
        except UploadError as exc:
            st.error(f"That zip cannot be used: {md(exc)}")
            return None
    problem = upload_problem(folder, scan)
    if problem:
        with contextlib.suppress(UploadError, OSError):  # at once: it must not keep taking disk space
            delete_upload(uploads, upload_of(uploads, folder))
        st.error(f"That zip cannot be used: {md(problem)}")
        return None
    st.session_state[PENDING_DATASET] = str(folder.relative_to(config.DATA_ROOT))
    taken = " (that name was taken: rename it below)" if name_was_taken(uploads, folder, upload.name) else ""
    st.session_state[FLASH] = f"Unpacked {md(upload.name)} into {code(folder)}{taken}."
    st.rerun()


def manage_uploads_ui(uploads: Path) -> None:
    """Rename or delete earlier uploads."""
    folders = upload_folders(uploads)
    if not folders:
        return
    with st.expander(f"Your uploads ({len(folders)}): rename or delete", icon=":material/folder_managed:"):
        for folder in folders:
            name, rename, delete = st.columns([3, 1, 1], vertical_alignment="bottom")
            new_name = name.text_input(
                f"Name of {code(folder.name)}", folder.name, key=f"upload_name:{folder.name}"
            )
            if rename.button("Rename", key=f"upload_rename:{folder.name}", disabled=new_name == folder.name):
                _upload_action(
                    rename_upload, uploads, folder, new_name, f"Renamed {md(folder.name)} to {md(new_name)}."
                )
            if delete.button("Delete", key=f"upload_delete:{folder.name}", icon=":material/delete:"):
                _upload_action(delete_upload, uploads, folder, None, f"Deleted the upload {md(folder.name)}.")


def _upload_action(action, uploads: Path, folder: Path, new_name: str | None, done: str) -> None:
    try:
        action(uploads, folder, *([new_name] if new_name is not None else []))
    except (UploadError, OSError) as exc:
        st.error(f"Cannot change {md(folder.name)}: {md(exc)}")
        return
    if st.session_state.get(DATASET, "").startswith(str(folder)):
        st.session_state.pop(DATASET, None)  # it moved or is gone
        st.session_state.pop("folder", None)
    st.session_state[FLASH] = done
    st.rerun()
