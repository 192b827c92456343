"""Cheap facts about the machine for the dashboard: no TensorFlow import here."""

from __future__ import annotations

import shutil
import subprocess


def gpu_names(timeout: float = 5.0) -> list[str]:
    """The NVIDIA GPUs `nvidia-smi -L` lists, e.g. ["NVIDIA H200"]; [] when none or no driver.

    Importing TensorFlow to ask would take seconds and grab GPU memory; the driver's
    own tool answers in milliseconds.
    """
    tool = shutil.which("nvidia-smi")
    if not tool:
        return []
    try:
        result = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return parse_nvidia_smi_list(result.stdout)


def parse_nvidia_smi_list(text: str) -> list[str]:
    """Names from `nvidia-smi -L` lines like "GPU 0: NVIDIA H200 (UUID: GPU-...)"."""
    names = []
    for line in text.splitlines():
        if not line.startswith("GPU ") or ":" not in line:
            continue
        name = line.split(":", 1)[1].strip()
        names.append(name.split(" (UUID", 1)[0].strip())
    return names
