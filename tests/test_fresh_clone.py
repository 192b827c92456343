"""A fresh clone without ../shared/: the real-weights tests fetch what they need, or say what to do.

The downloads are pointed at a local mirror (an HTTP server on 127.0.0.1), so these tests
show the online path without the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.dashboard_helpers import class_zip_entries, free_port, make_zip, serve_directory
from tests.helpers import PROJ_ROOT
from tests.real_assets import (
    PBC_SAMPLE,
    REAL_WEIGHTS,
    ensure_real_weights,
    horse_or_human_dataset,
    pbc_blood_cells,
)

REAL_TEST = "tests/test_advisor.py::test_real_photos_are_similar_and_flat_colours_different"


def _fresh_clone_env(tmp_path: Path, mirror: str) -> dict[str, str]:
    """No ../shared, an empty test cache, and both downloads pointed at `mirror`."""
    return {
        "TLS_SHARED_DIR": str(tmp_path / "no-shared"),
        "TLS_TEST_CACHE": str(tmp_path / "cache"),
        "TLS_KERAS_WEIGHTS_URL_BASE": mirror,
        "TLS_HORSE_OR_HUMAN_URL_BASE": mirror,
        "TLS_PBC_URL_BASE": f"{mirror}/pbc",
    }


def _mirror_weights(mirror: Path, content: dict[str, bytes]) -> None:
    for name, (folder, _) in REAL_WEIGHTS.items():
        (mirror / folder).mkdir(parents=True, exist_ok=True)
        (mirror / folder / name).write_bytes(content[name])


def test_weights_and_data_are_downloaded_into_the_test_cache(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    weights = {name: f"weights of {name}".encode() for name in REAL_WEIGHTS}
    _mirror_weights(mirror, weights)
    make_zip(mirror / "horse-or-human.zip", class_zip_entries(per_class=3))
    make_zip(mirror / "validation-horse-or-human.zip", class_zip_entries(per_class=2))
    for name in PBC_SAMPLE:
        (mirror / "pbc" / name).parent.mkdir(parents=True, exist_ok=True)
        (mirror / "pbc" / name).write_bytes(name.encode())
    with serve_directory(mirror) as base:
        for name, value in _fresh_clone_env(tmp_path, base).items():
            monkeypatch.setenv(name, value)
        keras_home = ensure_real_weights()
        data = horse_or_human_dataset()
        cells = pbc_blood_cells()
    assert keras_home == tmp_path / "cache" / "keras"
    for name, content in weights.items():  # where Keras looks, under the names it asks for
        assert (keras_home / "models" / name).read_bytes() == content
    assert sorted(p.name for p in (data / "train").iterdir()) == ["horses", "humans"]
    assert len(list((data / "validation" / "humans").iterdir())) == 2
    assert not list((keras_home / "models").glob("*.part"))
    assert sorted(str(p.relative_to(cells)) for p in cells.rglob("*.jpg")) == sorted(PBC_SAMPLE)


def test_shared_seeds_the_cache_without_any_download(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    for _, shared_name in REAL_WEIGHTS.values():
        (shared / "weights").mkdir(parents=True, exist_ok=True)
        (shared / "weights" / shared_name).write_bytes(shared_name.encode())
    for split in ("train", "validation"):
        (shared / "datasets" / "horse-or-human" / split / "horses").mkdir(parents=True)
        (shared / "datasets" / "horse-or-human" / split / "horses" / "h.jpg").write_bytes(b"x")
    monkeypatch.setenv("TLS_SHARED_DIR", str(shared))
    monkeypatch.setenv("TLS_TEST_CACHE", str(tmp_path / "cache"))
    unreachable = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TLS_KERAS_WEIGHTS_URL_BASE", unreachable)
    monkeypatch.setenv("TLS_HORSE_OR_HUMAN_URL_BASE", unreachable)
    models = ensure_real_weights() / "models"
    for name, (_, shared_name) in REAL_WEIGHTS.items():
        assert (models / name).read_bytes() == shared_name.encode()
    assert (horse_or_human_dataset() / "validation" / "horses" / "h.jpg").read_bytes() == b"x"


def _pytest(test: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-o", "addopts="],
        cwd=PROJ_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


def test_without_shared_or_network_a_real_test_fails_with_one_line_that_says_what_to_do(tmp_path):
    result = _pytest(REAL_TEST, _fresh_clone_env(tmp_path, f"http://127.0.0.1:{free_port()}"))
    assert result.returncode == 1, result.stdout[-2000:]
    # The short summary repeats the message, cut at the terminal's width: read the report above it.
    report = result.stdout.split("short test summary info")[0]
    [line] = [line for line in report.splitlines() if "real ImageNet weights unavailable" in line]
    assert "could not reach 127.0.0.1" in line and "connect to the internet once" in line
    assert "Traceback" not in result.stdout and "During handling" not in result.stdout


def _zip_folder(folder: Path, archive: Path) -> None:
    """A zip of `folder`'s class folders, as the tutorial's bucket serves them (uncompressed: fast)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())


@pytest.mark.slow
def test_a_fresh_clone_passes_a_real_test_from_a_mirror(tmp_path, keras_home, horse_or_human):
    """The whole chain in a separate pytest: the real files, served only by the mirror."""
    mirror = tmp_path / "mirror"
    _mirror_weights(mirror, {name: (keras_home / "models" / name).read_bytes() for name in REAL_WEIGHTS})
    _zip_folder(horse_or_human / "train", mirror / "horse-or-human.zip")
    _zip_folder(horse_or_human / "validation", mirror / "validation-horse-or-human.zip")
    with serve_directory(mirror) as base:
        result = _pytest(REAL_TEST, _fresh_clone_env(tmp_path, base))
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-3000:]
    assert (tmp_path / "cache" / "data" / "downloads" / "horse-or-human" / "train" / "horses").is_dir()
    shutil.rmtree(tmp_path / "cache")
