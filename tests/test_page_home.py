"""The Home page: downloading horse-or-human and clearing the embedding cache.

Fixtures `dirs`, `with_run`, `fake_trainer` and `fresh_caches` are in conftest.py; helpers in
tests/page_helpers.py.
"""

from pathlib import Path

import numpy as np

from core.reports import format_bytes
from tests.dashboard_helpers import class_zip_entries, free_port, make_zip, serve_directory
from tests.page_helpers import (
    button,
    open_page,
    texts,
)


def _horse_or_human_zips(root: Path) -> Path:
    make_zip(root / "horse-or-human.zip", class_zip_entries(per_class=2))
    make_zip(root / "validation-horse-or-human.zip", class_zip_entries(per_class=1))
    return root


def test_home_download_from_a_local_server(dirs, tmp_path, monkeypatch):
    served = _horse_or_human_zips(tmp_path / "served")
    at = open_page("pages/home.py")
    with serve_directory(served) as base:
        monkeypatch.setenv("TLS_HORSE_OR_HUMAN_URL_BASE", base)
        button(at, "Download the full horse-or-human dataset").click().run()
    assert not at.exception and not at.error
    target = dirs.data / "downloads" / "horse-or-human"
    assert "Downloaded and unpacked" in texts(at.success)
    assert len(list((target / "train" / "horses").iterdir())) == 2
    assert len(list((target / "validation" / "humans").iterdir())) == 1


def test_home_download_offline_is_a_clear_error(dirs, monkeypatch):
    monkeypatch.setenv("TLS_HORSE_OR_HUMAN_URL_BASE", f"http://127.0.0.1:{free_port()}")
    at = open_page("pages/home.py")
    button(at, "Download the full horse-or-human dataset").click().run()
    assert not at.exception
    (error,) = at.error
    assert "The download failed: could not reach 127.0.0.1" in error.value
    assert not (dirs.data / "downloads" / "horse-or-human").exists()


# --- Home: the embedding cache --------------------------------------------------------------


def test_clear_the_embedding_cache_after_confirming(dirs):
    for i in range(3):
        path = dirs.cache / "mobilenet_v2-imagenet-224-top-avg" / "plain" / f"{i:02d}" / f"{i:02d}.npy"
        path.parent.mkdir(parents=True)
        np.save(path, np.zeros(256, np.float32))
    size = format_bytes(sum(p.stat().st_size for p in dirs.cache.rglob("*.npy")))
    at = open_page("pages/home.py")
    assert f"**3 embeddings, {size}**" in texts(at.markdown) and str(dirs.cache) in texts(at.markdown)
    assert button(at, "Clear the embedding cache").disabled
    at.checkbox(key="confirm_clear_cache").check().run()
    button(at, "Clear the embedding cache").click().run()
    assert not at.exception and not at.error
    assert not list(dirs.cache.rglob("*.npy"))
    assert f"Cleared the embedding cache: {size} freed." in texts(at.success)
    assert "**0 embeddings, 0 B**" in texts(at.markdown)
    assert not [b for b in at.button if b.label == "Clear the embedding cache"]
