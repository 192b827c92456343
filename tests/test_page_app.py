"""The dashboard as a whole: the entrypoint, every page with and without runs, and
TensorFlow kept out of the pages that only read run files.

Fixtures `dirs`, `with_run`, `fake_trainer` and `fresh_caches` are in conftest.py; helpers in
tests/page_helpers.py.
"""

import subprocess
import sys

import pytest

from tests.page_helpers import (
    PAGES,
    PROJ_ROOT,
    open_page,
    texts,
)


def test_entrypoint_opens_home(dirs):
    at = open_page(None)
    assert at.title[0].value == "Transfer Learning Studio"
    assert str(dirs.data) in texts(at.markdown) and str(dirs.runs) in texts(at.markdown)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_runs(dirs, page):
    at = open_page(page)
    assert at.title[0].value in {"Transfer Learning Studio", "Data", "Train", "Checkpoints", "Predict"}
    if page in ("pages/checkpoints.py", "pages/predict.py", "pages/train.py"):
        assert "No " in texts(at.info)  # a guard, not an empty page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_trained_run(with_run, page):
    at = open_page(page)
    assert not at.error


# --- TensorFlow stays out of the pages that only read run files ---------------------------

NO_TENSORFLOW = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("streamlit_app.py", default_timeout=60)
at.run()
for page in ("pages/train.py", "pages/checkpoints.py"):
    at.switch_page(page).run()
    assert not at.exception, at.exception
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules), len(at.get("plotly_chart")))
"""


def test_home_train_and_checkpoints_never_import_keras(with_run):
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported, charts = result.stdout.strip().rsplit(" ", 1)
    assert imported == "[]" and int(charts) >= 6  # the evaluation's charts were drawn too
