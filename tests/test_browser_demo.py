"""The hosted demo in a real browser: two visitors (two browser contexts, so two sessions)
of one `streamlit run demo/streamlit_app.py` server cannot see each other's uploads, nor
see or stop each other's runs."""

import json
import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.dashboard_helpers import class_zip_entries, make_zip, streamlit_server
from tests.test_browser import ARTIFACTS, PROJ_ROOT, assert_no_exception, go, launch_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-demo")
    env = {
        **os.environ,
        "TLS_DEMO_MODE": "1",
        "TLS_DATA_ROOT": str(root / "data"),
        "TLS_RUNS_DIR": str(root / "runs"),
        "TLS_CACHE_DIR": str(root / "cache"),
    }
    with streamlit_server("demo/streamlit_app.py", root, env) as (url, pid):
        yield url, root, pid


def _active_run(runs_dir: Path, name: str, pid: int) -> Path:
    """A run as its training process keeps it while it trains (the live server's pid stands in)."""
    run = runs_dir / name
    run.mkdir(parents=True)
    config = json.loads((PROJ_ROOT / "data" / "demo" / "horse-or-human-quick" / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config))
    status = {"state": "running", "pid": pid, "started_at": time.time(), "epochs": 5}
    (run / "status.json").write_text(json.dumps(status))
    return run


def main(page):
    return page.locator('[data-testid="stMain"]')  # not the toolbar's Stop of a running script


def test_two_demo_visitors_cannot_see_or_stop_each_others_work(demo_server, tmp_path):
    url, root, server_pid = demo_server
    archive = make_zip(tmp_path / "alices-pets.zip", class_zip_entries("alices-pets/"))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        alice, bob = (browser.new_context(viewport={"width": 1400, "height": 1600}).new_page() for _ in "ab")
        for page in (alice, bob):
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_role("heading", name="Transfer Learning Studio").wait_for()
            page.get_by_text("Your uploads, splits and runs are your own").wait_for()
        try:
            go(alice, "Data")
            alice.get_by_text("Upload a zip").click()
            alice.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(archive))
            alice.get_by_text("Unpacked alices-pets.zip").wait_for()
            assert_no_exception(alice)
            (upload,) = (root / "data" / "sessions").glob("*/uploads/alices-pets")
            alice_runs = root / "runs" / "sessions" / upload.parent.parent.name  # her workspace
            run = _active_run(alice_runs, "20260101-000000-alices-run", server_pid)

            go(bob, "Data")
            bob.get_by_text("A folder in the data folder").click()
            bob.get_by_text("No dataset folders").wait_for()  # alice's upload is not his to pick
            expect(bob.get_by_text("alices-pets")).to_have_count(0)
            go(bob, "Train")
            bob.get_by_text("Run horse-or-human-quick").wait_for()  # his own copy of the ready model
            ARTIFACTS.mkdir(exist_ok=True)
            bob.screenshot(path=str(ARTIFACTS / "demo-bob-train.png"), full_page=True)
            expect(main(bob).get_by_role("button", name="Stop", exact=True)).to_have_count(0)
            expect(bob.get_by_text(run.name)).to_have_count(0)
            go(bob, "Checkpoints")
            own_run = "horse-or-human-quick · horse-or-human"  # the ready model, labelled with its dataset
            expect(bob.get_by_role("combobox", name="Run")).to_have_value(own_run)
            expect(bob.get_by_text(run.name)).to_have_count(0)
            assert_no_exception(bob)
            bob.screenshot(path=str(ARTIFACTS / "demo-bob-checkpoints.png"), full_page=True)

            go(alice, "Train")  # the owner sees her run and can stop it
            alice.get_by_text(f"Run {run.name}").wait_for()
            main(alice).get_by_role("button", name="Stop", exact=True).click()
            alice.get_by_text("Stop requested").wait_for()
            assert (run / "STOP").exists()
            alice.screenshot(path=str(ARTIFACTS / "demo-alice-train.png"), full_page=True)
        finally:
            browser.close()
