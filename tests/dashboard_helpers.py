"""Helpers shared by the dashboard's tests: PNG bytes, zips, a local HTTP server, free ports,
a Streamlit server for the browser tests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import PROJ_ROOT


def png_bytes(color: tuple[int, int, int], size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), color, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A zip holding `entries` {name inside the zip: content}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


def class_zip_entries(prefix: str = "", per_class: int = 3) -> dict[str, bytes]:
    """Two classes of tiny PNGs: horses (brown) and humans (pink), under `prefix`."""
    entries = {}
    for name, color in (("horses", (120, 80, 40)), ("humans", (230, 180, 170))):
        for i in range(per_class):
            entries[f"{prefix}{name}/{name}{i}.png"] = png_bytes(color)
    return entries


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_directory(directory: Path):
    """Serve `directory` over HTTP on 127.0.0.1; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def streamlit_server(script: str, root: Path, env: dict[str, str]):
    """`streamlit run script` (a path from the repository root) on a free local port, with `env`
    and its output in `root/streamlit.log`; yields (base URL, server pid) once it is healthy."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--server.fileWatcherType", "none"]  # fmt: skip
    with open(root / "streamlit.log", "w") as log:
        server = subprocess.Popen(command, cwd=PROJ_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, server)
            yield url, server.pid
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail("streamlit did not become healthy")
