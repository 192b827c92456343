"""The hosted demo's entrypoint (Streamlit Community Cloud: main file `demo/streamlit_app.py`).

It turns on demo mode, installs the ready model shipped in data/demo/ so Predict works at
once, and then runs the dashboard itself. `demo/pages` links to the real `pages/`, so page
paths resolve the same from here as from the repository's own entrypoint; Community Cloud
reads `demo/requirements.txt` (tensorflow-cpu) because it sits beside this file.
"""

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the engine package `core` lives at the repository root
os.environ.setdefault("TLS_DEMO_MODE", "1")

from core import config  # noqa: E402
from core.demo import ensure_demo_run  # noqa: E402

ensure_demo_run(config.RUNS_DIR)
runpy.run_path(str(ROOT / "streamlit_app.py"), run_name="__main__")
