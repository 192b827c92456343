"""Rows of images and thumbnails, for any page that shows photos."""

from __future__ import annotations

import streamlit as st
from PIL import Image

THUMBNAIL_PX = 200


def image_row(images: list, captions: list[str] | None = None) -> None:
    """The images side by side, each as wide as its column."""
    for i, column in enumerate(st.columns(len(images), gap="small")):
        column.image(images[i], caption=captions[i] if captions else None, width="stretch")


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, px: int = THUMBNAIL_PX) -> Image.Image | None:
    """The photo at `path` shrunk to fit `px` x `px`, or None when it cannot be read (gone since)."""
    try:
        with Image.open(path) as image:
            image.thumbnail((px, px))
            return image.convert("RGB")
    except OSError:
        return None
