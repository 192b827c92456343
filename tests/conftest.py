"""Fixtures: tiny synthetic datasets, real ImageNet weights in the test cache's Keras home,
the real horse-or-human data, and a small trained run.

Plain helpers live in `tests/helpers.py`, the real weights and data in `tests/real_assets.py`.
Every test that uses `keras_home`, `use_keras_home` or `horse_or_human` (directly or through
another fixture) is marked `real` automatically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import make_color_dataset, run_cli
from tests.real_assets import asset_cache, ensure_real_weights, horse_or_human_dataset, session_keras_home

# Keras reads KERAS_HOME once, when it is first imported, so the whole session uses the test
# cache's Keras home (never the user's ~/.keras); `keras_home` fills it with real weights.
os.environ["KERAS_HOME"] = str(session_keras_home())
# Running the tests never fills the user's caches (embeddings, remembered scans): unless a test
# points it elsewhere, the cache lives in the test cache too. Set before core.embeddings reads it.
os.environ.setdefault("TLS_CACHE_DIR", str(asset_cache() / "tls-cache" / "embeddings"))

REAL_FIXTURES = {"keras_home", "use_keras_home", "horse_or_human"}


def pytest_collection_modifyitems(items):
    for item in items:
        if REAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real)


@pytest.fixture
def color_dataset(tmp_path: Path) -> Path:
    """Two classes (red, blue), 8 tiny PNGs each, unsplit."""
    return make_color_dataset(tmp_path / "colors")


@pytest.fixture(scope="session")
def keras_home() -> Path:
    """The session's KERAS_HOME, its models/ holding real ImageNet weights (see tests/real_assets.py)."""
    return ensure_real_weights()


@pytest.fixture
def use_keras_home(keras_home: Path, monkeypatch) -> Path:
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    return keras_home


@pytest.fixture(scope="session")
def horse_or_human() -> Path:
    """The real dataset (official split, train/ and validation/); read it, never write to it."""
    return horse_or_human_dataset()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A completed fine-tune run of 2 epochs on the synthetic colour dataset (random weights: fast).

    Used by tests of the dashboard and of prediction plumbing, not of learning.
    """
    root = tmp_path_factory.mktemp("trained")
    data = make_color_dataset(root / "colors", per_class=10)
    result = run_cli(
        "core.train",
        "--data",
        str(data),
        "--runs-dir",
        str(root / "runs"),
        "--backbone",
        "mobilenet_v2_0.35",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--mode",
        "finetune",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(result.stdout.strip().splitlines()[-1])


# --- the dashboard's AppTest tests (tests/test_page_*.py) ----------------------------------


@pytest.fixture
def dirs(tmp_path, monkeypatch, keras_home) -> SimpleNamespace:
    """Temp data, runs and cache folders, for the pages (patched) and the processes they start
    (env); ImageNet weights in the session's Keras home (the Train page offers Start only for
    a backbone whose weights are there)."""
    import core.config
    import core.embeddings

    data, runs, cache = tmp_path / "data", tmp_path / "runs", tmp_path / "cache"
    data.mkdir()
    runs.mkdir()
    monkeypatch.setattr(core.config, "DATA_ROOT", data)
    monkeypatch.setattr(core.config, "RUNS_DIR", runs)
    monkeypatch.setattr(core.embeddings, "CACHE_DIR", cache)
    monkeypatch.setenv("TLS_DATA_ROOT", str(data))
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs))
    monkeypatch.setenv("TLS_CACHE_DIR", str(cache))
    return SimpleNamespace(data=data, runs=runs, cache=cache)


@pytest.fixture
def with_run(dirs, trained_run) -> Path:
    """A copy of the session's trained run (2 epochs, classes blue and red) in the runs folder."""
    return Path(shutil.copytree(trained_run, dirs.runs / trained_run.name, symlinks=True))


@pytest.fixture
def fake_trainer(monkeypatch):
    """`python -m core.train` replaced by a stand-in that is alive and never trains."""
    from tests.page_helpers import FakeTrainer

    FakeTrainer.commands = []
    monkeypatch.setattr(subprocess, "Popen", FakeTrainer)
    return FakeTrainer


@pytest.fixture
def fresh_caches():
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()
