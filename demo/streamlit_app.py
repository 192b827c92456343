"""The hosted demo's entrypoint (Streamlit Community Cloud: main file `demo/streamlit_app.py`).

It turns on demo mode and runs the dashboard itself; each visitor's workspace gets its own
copy of the ready model shipped in data/demo/, so Predict works at once. `demo/pages` links
to the real `pages/`, so page paths resolve the same from here as from the repository's own
entrypoint; Community Cloud reads `demo/requirements.txt` (tensorflow-cpu) because it sits
beside this file.
"""

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the packages `core` and `ui` live at the repository root
os.environ.setdefault("TLS_DEMO_MODE", "1")

runpy.run_path(str(ROOT / "streamlit_app.py"), run_name="__main__")
