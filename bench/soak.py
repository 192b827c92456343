"""Soak: many short runs started and stopped in a row, as the dashboard does (not a test).

    python -m bench.soak [--runs 20]

Each run is launched with `core.launch.launch_training`, stopped with a STOP file once it
has trained a few batches, and must end as `stopped` with a loadable best checkpoint.
Afterwards no training process may be left, the training lock must be free, no temp
files may remain, and this launcher's memory must not keep growing.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.config import TrainConfig
from core.launch import launch_training
from core.runs import RunDir, TrainingLock


def _wait(predicate, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise TimeoutError("timed out")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _make_dataset(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    for c, color in enumerate(((220, 40, 40), (40, 40, 220))):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(12):
            noise = np.random.default_rng(i).integers(-20, 20, (32, 32, 3))
            Image.fromarray(np.clip(np.array(color) + noise, 0, 255).astype("uint8")).save(
                folder / f"{i}.png"
            )
    return root


def _training_processes() -> str:
    return subprocess.run(["pgrep", "-f", "core.train --config"], capture_output=True, text=True).stdout


def soak(runs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    data = _make_dataset(work / "data")
    config = TrainConfig(
        data=str(data),
        backbone="mobilenet_v2_0.35",
        weights=None,
        image_size=32,
        batch_size=1,
        epochs=50,
        patience=0,
        head_training="live",
    )
    rss = []
    for index in range(runs):
        run_dir = launch_training(config, work / "runs")
        _wait(lambda run_dir=run_dir: RunDir(run_dir).metrics()[1])  # a batch has trained
        RunDir(run_dir).request_stop()
        status = _wait(
            lambda run_dir=run_dir: (s := RunDir(run_dir).status())["state"] in ("stopped", "completed") and s
        )
        assert status["state"] == "stopped", status
        rss.append(_rss_mb())
        print(
            f"run {index + 1}/{runs}: {status['state']} after {len(RunDir(run_dir).metrics()[0])} epoch(s), "
            f"launcher RSS {rss[-1]:.0f} MB",
            flush=True,
        )
    deadline = time.time() + 30  # a stopped run writes its status, then TensorFlow takes a moment to exit
    while (leftovers := _training_processes()) and time.time() < deadline:
        time.sleep(0.5)
    lock = TrainingLock(work / "runs")
    lock.acquire()  # raises if a dead or live process still held it
    lock.release()
    temps = [p for p in (work / "runs").rglob("*") if ".tmp" in p.name]
    return {
        "runs": runs,
        "leftover_processes": leftovers.split(),
        "temp_files": [str(p) for p in temps],
        "rss_first_mb": rss[0],
        "rss_last_mb": rss[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    result = soak(parser.parse_args().runs)
    print(result)
    ok = not result["leftover_processes"] and not result["temp_files"]
    print("OK" if ok else "LEAKS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
