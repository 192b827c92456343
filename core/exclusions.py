"""What the user decided about a dataset's photos after a health check: photos to leave out of
training, and photos to train under another class. No TensorFlow, no Streamlit.

The decisions live in a file of the project's data folder, never in the dataset itself:

    <data root>/.health/<dataset name>-<hash of its path>/exclusions.json
        {"dataset": "/abs/path", "excluded": ["train/horses/a.png", ...],
         "relabelled": {"train/humans/b.png": "horses", ...}}
    <data root>/.health/<dataset name>-<hash of its path>/findings.jsonl
        the last health check's output (`python -m core.health`), which the Health tab shows

The data root is the project's (DATA_ROOT), or a demo visitor's own workspace, so visitors
never share decisions. Paths are relative to the dataset folder. Starting a run from the
dashboard copies the decisions into the run folder (`launch_training`); `core.train` applies
the run's copy, or else the data root's, when it reads the dataset (`apply_exclusions`) and
lists them in the run's dataset.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from core import config
from core.data import DatasetReport, Split
from core.runs import read_json, write_json_atomic

HEALTH_DIR = ".health"  # hidden: the dataset finder never mistakes it for a dataset
EXCLUSIONS_FILE = "exclusions.json"
FINDINGS_FILE = "findings.jsonl"


@dataclasses.dataclass
class Exclusions:
    """Photos (relative to the dataset folder) left out of training, and photos moved to a class."""

    excluded: list[str] = dataclasses.field(default_factory=list)
    relabelled: dict[str, str] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.excluded or self.relabelled)

    def set_excluded(self, relative: str, excluded: bool) -> None:
        """Leave the photo out of training, or take it back in."""
        kept = set(self.excluded) - {relative}
        self.excluded = sorted(kept | {relative} if excluded else kept)

    def set_moved(self, relative: str, target: str, moved: bool) -> None:
        """Train the photo under class `target`, or undo that move (a move elsewhere stays)."""
        if moved:
            self.relabelled[relative] = target
        elif self.relabelled.get(relative) == target:
            del self.relabelled[relative]


def move_target(finding: dict, class_names: list[str]) -> str | None:
    """The class a health finding offers to move its photos to: a label issue's suggested class,
    if the dataset has it; None otherwise."""
    target = finding.get("suggested")
    return target if finding.get("kind") == "label_issue" and target in class_names else None


def health_dir(dataset: str | os.PathLike, data_root: Path | None = None) -> Path:
    """The folder holding one dataset's health findings and exclusions (keyed by its real path)
    under `data_root` (default: the project's data folder)."""
    real = os.path.realpath(dataset)
    digest = hashlib.sha256(real.encode()).hexdigest()[:12]
    return (data_root or config.DATA_ROOT) / HEALTH_DIR / f"{Path(real).name or 'dataset'}-{digest}"


def read_exclusions(path: str | os.PathLike) -> Exclusions:
    """The decisions in an exclusions file; none when it is missing or of the wrong shape."""
    saved = read_json(Path(path), {})
    saved = saved if isinstance(saved, dict) else {}
    excluded, relabelled = saved.get("excluded", []), saved.get("relabelled", {})
    return Exclusions(
        [p for p in excluded if isinstance(p, str)] if isinstance(excluded, list) else [],
        {k: v for k, v in relabelled.items() if isinstance(v, str)} if isinstance(relabelled, dict) else {},
    )


def load_exclusions(dataset: str | os.PathLike, data_root: Path | None = None) -> Exclusions:
    return read_exclusions(health_dir(dataset, data_root) / EXCLUSIONS_FILE)


def save_exclusions(
    dataset: str | os.PathLike, exclusions: Exclusions, data_root: Path | None = None
) -> Path:
    folder = health_dir(dataset, data_root)
    folder.mkdir(parents=True, exist_ok=True)
    return write_decisions(folder / EXCLUSIONS_FILE, dataset, exclusions)


def save_findings(dataset: str | os.PathLike, lines: list[str], data_root: Path | None = None) -> Path:
    """Keep a health check's output lines (`python -m core.health`) beside the decisions."""
    path = health_dir(dataset, data_root) / FINDINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_findings(dataset: str | os.PathLike, data_root: Path | None = None) -> list[str] | None:
    """The output lines of the dataset's last health check, or None when it has had none."""
    path = health_dir(dataset, data_root) / FINDINGS_FILE
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else None


def write_decisions(path: Path, dataset: str | os.PathLike, exclusions: Exclusions) -> Path:
    """Write `exclusions` for `dataset` to `path` atomically."""
    write_json_atomic(path, {"dataset": os.path.realpath(dataset), **dataclasses.asdict(exclusions)})
    return path


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to the dataset folder `root`, with forward slashes."""
    return Path(os.path.relpath(path, root)).as_posix()


def apply_exclusions(report: DatasetReport, exclusions: Exclusions) -> tuple[DatasetReport, dict]:
    """The report without the excluded photos and with moved photos under their new class.

    Returns the new report and what was applied ({"excluded": [...], "relabelled": {...}}),
    naming only photos this dataset really has. A move to a class the dataset lacks is ignored.
    """
    excluded, relabelled = set(exclusions.excluded), {}
    splits = {}
    for name, split in report.splits.items():
        kept = Split()
        for path, label in zip(split.paths, split.labels):
            relative = relative_path(path, report.root)
            if relative in excluded:
                continue
            target = exclusions.relabelled.get(relative)
            if target in report.class_names and report.class_names.index(target) != label:
                relabelled[relative] = target
                label = report.class_names.index(target)
            kept.paths.append(path)
            kept.labels.append(label)
        splits[name] = kept
    applied = {
        "excluded": sorted(
            relative_path(p, report.root)
            for split in report.splits.values()
            for p in split.paths
            if relative_path(p, report.root) in excluded
        ),
        "relabelled": dict(sorted(relabelled.items())),
    }
    return dataclasses.replace(report, splits=splits), applied
