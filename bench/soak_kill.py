"""Soak: one cached-head run killed (SIGKILL) at random moments and resumed each time (not a test).

    python -m bench.soak_kill [--kills 20] [--epochs 400] [--seed 0]

The run is launched as the dashboard does, then killed after a random delay (start-up,
embedding, training and checkpoint saving all get hit), and resumed with
`core.launch.launch_resume`. After every kill, every epoch recorded in metrics.jsonl must
still be there, and the resumed process must say it holds the weights of the last
recorded epoch (or a later one). At the end the run must complete with epochs 1..N, each
once, and no temp file may remain.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.soak import _make_dataset, _wait
from core.config import TrainConfig
from core.launch import launch_resume, launch_training
from core.runs import RunDir, pid_alive

# "resuming after epoch 7 from the weights of epoch 7", or "resuming: no epoch had ended ..."
RESUMED = re.compile(
    r"resuming(?: after epoch (\d+)(?: from the weights of epoch (\d+))?|: no epoch had ended)"
)


def _epochs(run_dir: Path) -> list[int]:
    return [e["epoch"] for e in RunDir(run_dir).metrics()[0]]


def _resume_line(run_dir: Path, count: int) -> tuple[int, int] | None:
    """(recorded epoch, epoch of the weights held) of the `count`-th "resuming after epoch"
    line of train.log, once it is there."""
    found = RESUMED.findall((run_dir / "train.log").read_text(errors="replace"))
    if len(found) < count:
        return None
    recorded, held = found[count - 1]
    return int(recorded or 0), int(held or 0)


def soak(kills: int, epochs: int, seed: int) -> dict:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="soak-kill-"))
    config = TrainConfig(data=str(_make_dataset(work / "data")), backbone="mobilenet_v2_0.35", weights=None,
                         image_size=32, batch_size=1, epochs=epochs, patience=0,
                         head_training="cached")  # fmt: skip
    run_dir = launch_training(config, work / "runs")
    lost, mismatched, killed_at = [], [], []
    for index in range(kills):
        before = _epochs(run_dir)
        time.sleep(rng.uniform(0.5, 12.0))
        status = RunDir(run_dir).status()
        if status.get("state") == "completed":
            break
        if pid_alive(status.get("pid")):
            os.kill(status["pid"], signal.SIGKILL)
        _wait(lambda: RunDir(run_dir).status()["state"] in ("interrupted", "failed", "stopped", "completed"))
        after = _epochs(run_dir)
        if after[: len(before)] != before:
            lost.append((index, len(before), len(after)))
        killed_at.append((len(after), RunDir(run_dir).status().get("phase")))
        phase = killed_at[-1][1]
        print(f"kill {index + 1}/{kills}: {len(after)} epochs recorded (phase {phase})", flush=True)
        launch_resume(run_dir)
        recorded, held = _wait(lambda index=index: _resume_line(run_dir, index + 1), 300)
        if recorded != len(after) or (recorded and held < recorded):
            mismatched.append((index, len(after), recorded, held))
    _wait(lambda: RunDir(run_dir).status()["state"] in ("completed", "failed"), 900)
    final = _epochs(run_dir)
    temps = [str(p) for p in run_dir.rglob("*") if ".tmp" in p.name or p.name.startswith(".split")]
    return {
        "kills": len(killed_at),
        "final_state": RunDir(run_dir).status()["state"],
        "epochs_continuous": final == list(range(1, epochs + 1)),
        "epochs_lost_after_a_kill": lost,
        "resumed_from_other_weights": mismatched,
        "temp_files": temps,
        "killed_at": killed_at,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = soak(args.kills, args.epochs, args.seed)
    print(result)
    ok = (
        result["final_state"] == "completed"
        and result["epochs_continuous"]
        and not result["epochs_lost_after_a_kill"]
        and not result["resumed_from_other_weights"]
        and not result["temp_files"]
    )
    print("OK" if ok else "EPOCHS LOST")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
