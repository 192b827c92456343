"""Soak the dashboard: start and stop several trainings through a real browser (not a test).

    python -m bench.soak_browser [--runs 5]

Starts `streamlit run streamlit_app.py` on 127.0.0.1 with temporary data and runs
folders, then in headless Chromium presses Start training (the quick preset, random
weights, so no download is needed) and Stop, again and again. Reports the dashboard
process's memory before and after, and whether any training process or lock was left.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.runs import TrainingLock, list_runs

PROJ_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _one_run(page, url: str) -> None:
    page.goto(f"{url}/train")
    page.get_by_text("Start from ImageNet weights").click()  # off: random weights, nothing to download
    page.get_by_role("button", name="Start training").click()
    page.locator(".st-key-stop button").click(timeout=120_000)  # ours, not Streamlit's own "Stop"
    page.get_by_text("Stopped after").wait_for(timeout=180_000)


def soak(runs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="soak-browser-"))
    env = {
        **os.environ,
        "TLS_RUNS_DIR": str(work / "runs"),
        "TLS_DATA_ROOT": str(work / "data"),
        "TLS_CACHE_DIR": str(work / "cache"),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=PROJ_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            page.get_by_text("Transfer Learning Studio").first.wait_for(timeout=60_000)
            before = _rss_mb(server.pid)
            rss = []
            for index in range(runs):
                try:
                    _one_run(page, url)
                except Exception:
                    page.screenshot(path="/tmp/soak-fail.png", full_page=True)
                    raise
                rss.append(_rss_mb(server.pid))
                print(f"run {index + 1}/{runs}: stopped; dashboard RSS {rss[-1]:.0f} MB", flush=True)
            page.screenshot(path=str(work / "last.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    time.sleep(2)
    leftovers = subprocess.run(["pgrep", "-f", "core.train --config"], capture_output=True, text=True).stdout
    lock = TrainingLock(work / "runs")
    lock.acquire()  # raises if a training still held it
    lock.release()
    states = [run.state for run in list_runs(work / "runs")]
    return {
        "runs": runs,
        "states": states,
        "rss_before_mb": round(before),
        "rss_after_each_mb": [round(r) for r in rss],
        "leftover_processes": leftovers.split(),
        "screenshot": str(work / "last.png"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    result = soak(parser.parse_args().runs)
    print(result)
    ok = not result["leftover_processes"] and set(result["states"]) == {"stopped"}
    print("OK" if ok else "PROBLEMS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
