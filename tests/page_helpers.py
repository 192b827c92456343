"""Helpers for the dashboard's AppTest tests (tests/test_page_*.py).

Their fixtures (`dirs`, `with_run`, `fake_trainer`, `fresh_caches`) are in conftest.py: `dirs`
patches core.config.DATA_ROOT / RUNS_DIR and core.embeddings.CACHE_DIR to temp folders (pages
read them at run time) and sets TLS_DATA_ROOT / TLS_RUNS_DIR / TLS_CACHE_DIR for any process
they start.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.helpers import PROJ_ROOT

APP = str(PROJ_ROOT / "streamlit_app.py")
PAGES = ["pages/home.py", "pages/data.py", "pages/train.py", "pages/checkpoints.py", "pages/predict.py"]
FOLDER = "A folder in the data folder"
UPLOAD = "Upload a zip"


def open_page(page: str | None, session: dict | None = None, params: dict | None = None) -> AppTest:
    """The app opened on `page`, with `session` state and URL query `params` set first."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def chart_spec(at: AppTest, key: str) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    return json.loads(chart.proto.spec)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


class FakeTrainer:
    """Stands in for the `python -m core.train` process: alive (our pid), never trains."""

    commands: list = []
    real_popen = subprocess.Popen

    def __new__(cls, command, *args, **kwargs):
        if "core.train" not in command:
            return cls.real_popen(command, *args, **kwargs)
        cls.commands.append(command)
        return super().__new__(cls)

    def __init__(self, command, *args, **kwargs):
        self.pid = os.getpid()

    def wait(self):
        return 0


def fake_run(
    runs: Path, name: str, status: dict, lines=(), config: dict | None = None, counts: dict | None = None
) -> Path:
    """A run folder written by hand: config (over a small default), status, metrics, class counts."""
    run_dir = runs / name
    run_dir.mkdir()
    base = {"backbone": "mobilenet_v2_0.35", "image_size": 96}
    (run_dir / "config.json").write_text(json.dumps({**base, **(config or {})}))
    (run_dir / "status.json").write_text(json.dumps(status))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if counts:
        (run_dir / "dataset.json").write_text(json.dumps({"counts": counts}))
    return run_dir


def plan(at: AppTest) -> str:
    return "\n".join(i.value for i in at.info if i.proto.icon == ":material/route:")
