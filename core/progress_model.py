"""One progress model for a whole run: start-up, embedding, training, evaluation.

The training process records a *timeline* in status.json: one segment per phase it entered,
`{"phase", "start", "end"}`, a resumed run appending new segments. From it:

- the run's duration counts active time only (a resumed run's pause is not in any segment);
- a finished run's per-phase *rates* (seconds of start-up, per embedded image, per batch, per
  evaluated image) are stored in its status, and later runs on this machine learn from them;
- the estimate of the time left covers every phase still to come, not only the epochs.

Pure functions over plain dicts, except `mark_phase`/`finish_timeline` (which write
status.json) and `learned_rates` (which reads earlier runs): no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

STARTING, EMBEDDING, TRAINING, EVALUATING = "starting", "embedding", "training", "evaluating"
PHASES = (STARTING, EMBEDDING, TRAINING, EVALUATING)
PHASE_LABELS = {
    STARTING: "Start-up",
    EMBEDDING: "Embedding images",
    TRAINING: "Training",
    EVALUATING: "Evaluation",
}
TRAINING_LABELS = {"features": "Fitting the classifier", "auto": "Trying candidates"}
PHASE_NOTES = {
    STARTING: "loading TensorFlow, checking the images, building the backbone",
    EMBEDDING: "the frozen backbone runs once per image",
    TRAINING: "fitting the new head",
    EVALUATING: "classifying the validation images with the best checkpoint",
}
# Used until this machine has finished a run that measured them (a 2-core CPU's figures).
DEFAULT_RATES = {
    "starting_s": 20.0,  # import TensorFlow, scan the images, build the backbone
    "embed_s_per_image": 0.03,
    "batch_s": 1.0,  # one training batch, live images (cached embeddings: far less)
    "cached_batch_s": 0.005,
    "fit_s": 2.0,  # fitting a classical classifier on the embeddings
    "evaluate_s_per_image": 0.05,
    "evaluate_overhead_s": 20.0,  # loading the checkpoint, the thumbnails and Grad-CAM gallery
}


# --- the timeline, written by the training process -------------------------------------------


def enter_phase(timeline: list[dict], phase: str, now: float) -> list[dict]:
    """The timeline with the open segment closed at `now` and `phase` opened (unchanged if
    `phase` is already the open one)."""
    timeline = [dict(segment) for segment in timeline or []]
    if timeline and timeline[-1].get("end") is None:
        if timeline[-1]["phase"] == phase:
            return timeline
        timeline[-1]["end"] = now
    return [*timeline, {"phase": phase, "start": now, "end": None}]


def close_timeline(timeline: list[dict], now: float | None) -> list[dict]:
    """The timeline with its open segment (if any) ended at `now` (None: where it began, for a
    segment whose end is unknown), never before it began."""
    timeline = [dict(segment) for segment in timeline or []]
    if timeline and timeline[-1].get("end") is None:
        timeline[-1]["end"] = max(now or 0.0, timeline[-1]["start"])
    return timeline


def phase_seconds(timeline: list[dict], now: float) -> dict[str, float]:
    """Active seconds per phase; an open segment counts up to `now`."""
    seconds: dict[str, float] = {}
    for segment in timeline or []:
        end = segment.get("end") or now
        seconds[segment["phase"]] = seconds.get(segment["phase"], 0.0) + max(end - segment["start"], 0.0)
    return seconds


def run_duration(status: dict, now: float | None = None) -> float | None:
    """The run's active seconds: its timeline's segments (a pause between a stop and a resume
    is in none), up to `now` while it runs, else up to its last status update. Runs written
    before timelines existed: ended_at - started_at."""
    timeline = status.get("timeline")
    if timeline:
        open_end = now if now is not None and status.get("state") in ("starting", "running") else None
        return sum(phase_seconds(timeline, open_end or status.get("updated_at") or time.time()).values())
    start, end = status.get("started_at"), status.get("ended_at")
    return end - start if start and end else None


def mark_phase(run_dir: Path, entered: str, now: float | None = None, **fields) -> None:
    """Record in the run's status.json that it has entered the phase `entered` (and any other
    fields, e.g. `phase`, the free text the log shows)."""
    from core.runs import RunDir, read_json

    status = read_json(Path(run_dir) / "status.json", {}) or {}
    now = time.time() if now is None else now
    RunDir(run_dir).write_status(timeline=enter_phase(status.get("timeline"), entered, now), **fields)


def finish_timeline(run_dir: Path, now: float | None = None) -> list[dict]:
    """Close the run's timeline at `now` (default: the present) in status.json; returns it."""
    from core.runs import RunDir, read_json

    status = read_json(Path(run_dir) / "status.json", {}) or {}
    timeline = close_timeline(status.get("timeline"), time.time() if now is None else now)
    RunDir(run_dir).write_status(timeline=timeline)
    return timeline


# --- rates: what one finished run measured, and what this machine has learned ------------------


def run_rates(status: dict, config: dict, counts: dict, epoch_records: list[dict]) -> dict[str, float]:
    """What a finished run measured, per phase: start-up seconds, seconds per computed
    embedding, per training batch (live or cached), per evaluated image."""
    seconds = phase_seconds(status.get("timeline") or [], status.get("updated_at") or time.time())
    first = (status.get("timeline") or [{}])[0]
    rates: dict[str, float] = {}
    if first.get("phase") == STARTING and first.get("end"):
        rates["starting_s"] = first["end"] - first["start"]
    computed = status.get("cache_misses")
    if seconds.get(EMBEDDING) and computed:
        rates["embed_s_per_image"] = seconds[EMBEDDING] / computed
    batches = status.get("batches")
    epoch_seconds = [r["seconds"] for r in epoch_records if r.get("seconds") and r.get("stage", 1) == 1]
    if config.get("mode") == "features":
        if epoch_seconds and seconds.get(TRAINING):
            rates["fit_s"] = seconds[TRAINING]
    elif epoch_seconds and batches:
        key = "cached_batch_s" if status.get("head_training") == "cached" else "batch_s"
        rates[key] = statistics.median(epoch_seconds) / batches
    evaluated = sum(sum((counts.get(s) or {}).values()) for s in ("validation", "test"))
    if seconds.get(EVALUATING) and evaluated:
        rates["evaluate_s_per_image"] = seconds[EVALUATING] / evaluated
    return rates


def merge_rates(history: list[tuple[dict, dict]], backbone: str, image_size: int) -> dict[str, float]:
    """Each rate as the median over earlier runs' `(config, rates)`, preferring runs with the
    same backbone and image size (the embedding and evaluation rates depend on them), then
    any run (start-up does not), then DEFAULT_RATES."""
    merged = dict(DEFAULT_RATES)
    same = [r for c, r in history if c.get("backbone") == backbone and c.get("image_size") == image_size]
    anyone = [r for _, r in history]
    for key in DEFAULT_RATES:
        for pool in (same, anyone if key in ("starting_s", "fit_s") else []):
            values = [r[key] for r in pool if isinstance(r.get(key), (int, float)) and r[key] > 0]
            if values:
                merged[key] = statistics.median(values)
                break
    return merged


def learned_rates(runs_dir: Path, backbone: str, image_size: int, limit: int = 20) -> dict[str, float]:
    """`merge_rates` over the newest `limit` completed runs in `runs_dir` that recorded rates."""
    from core.runs import RunDir

    history = []
    folders = sorted((p for p in Path(runs_dir).glob("*/status.json")), reverse=True)
    for path in folders:
        run = RunDir(path.parent)  # total readers: a malformed file is skipped, never raised
        status = run.status()
        if status.get("state") == "completed" and isinstance(status.get("rates"), dict):
            history.append((run.config(), status["rates"]))
            if len(history) >= limit:
                break
    return merge_rates(history, backbone, image_size)


# --- the estimate -------------------------------------------------------------------------------


@dataclass
class PhaseState:
    phase: str
    label: str
    state: str  # "done", "current" or "todo"
    seconds: float | None  # active seconds so far (done or current), else the expected ones


@dataclass
class RunProgress:
    """Where a run stands across all its phases, for the Train page."""

    state: str
    phase: str | None  # the current phase while active
    phases: list[PhaseState]
    fraction: float  # of the whole run's expected active time
    eta_s: float | None  # seconds left in every phase still to come
    elapsed_s: float
    detail: str  # what the current phase is doing, e.g. "epoch 2/5 · batch 3/9"

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def label(self) -> str:
        """The current phase's name ("Start-up", "Embedding images", ...)."""
        current = [p.label for p in self.phases if p.state == "current"]
        return current[0] if current else PHASE_LABELS.get(self.phase or STARTING, "")


def planned_phases(config: dict) -> list[str]:
    """The phases a run of `config` goes through: embedding only when the frozen base runs
    once per image (feature extraction, or a head trained on cached embeddings)."""
    from core.config import TrainConfig, head_training_choice

    try:
        cached = (
            config.get("mode") in ("features", "auto")  # both embed every image once
            or head_training_choice(TrainConfig.from_dict(config))[0] == "cached"
        )
    except (ValueError, TypeError):
        cached = config.get("head_training") == "cached"
    return [STARTING, *([EMBEDDING] if cached else []), TRAINING, EVALUATING]


def expected_seconds(config: dict, counts: dict, rates: dict, status: dict) -> dict[str, float]:
    """How long each planned phase should take in all, from the dataset's size and the rates."""
    train = sum((counts.get("train") or {}).values())
    held_out = sum(sum((counts.get(s) or {}).values()) for s in ("validation", "test"))
    views = int(config.get("augment_views") or 0)
    phases = planned_phases(config)
    cached = EMBEDDING in phases
    expected = {STARTING: rates["starting_s"]}
    if cached:
        images = train * (1 + views) + sum((counts.get("validation") or {}).values())
        expected[EMBEDDING] = images * rates["embed_s_per_image"]
    if config.get("mode") in ("features", "auto"):
        expected[TRAINING] = rates["fit_s"]
    else:
        batch_size = max(int(config.get("batch_size") or 1), 1)
        batches = status.get("batches") or math.ceil((train * (1 + views) if cached else train) / batch_size)
        stage1 = int(config.get("epochs") or 1) * batches * rates["cached_batch_s" if cached else "batch_s"]
        stage2_epochs = int(config.get("fine_tune_epochs") or 0) if config.get("fine_tune_layers") else 0
        stage2 = stage2_epochs * math.ceil(train / batch_size) * rates["batch_s"]  # live images
        expected[TRAINING] = stage1 + stage2
    expected[EVALUATING] = rates["evaluate_overhead_s"] + held_out * rates["evaluate_s_per_image"]
    return expected


def estimate(
    status: dict,
    config: dict,
    counts: dict,
    epoch_records: list[dict],
    batch_records: list[dict],
    rates: dict | None = None,
    now: float | None = None,
) -> RunProgress:
    """The run's progress over all its phases, and the seconds left in all of them.

    The current phase's time left comes from what it has measured itself (images embedded,
    batches and epochs trained) once it has measured anything, else from `rates`; phases to
    come are expected from `rates` and the dataset's size (`counts`, from dataset.json).
    """
    now = time.time() if now is None else now
    rates = {**DEFAULT_RATES, **(rates or {})}
    state = status.get("state", "unknown")
    active = state in ("starting", "running")
    timeline = status.get("timeline") or []
    spent = phase_seconds(timeline, now if active else status.get("updated_at") or now)
    plan = planned_phases(config)
    current = _current_phase(status, epoch_records, batch_records) if active else None
    expected = expected_seconds(config, counts, rates, status)
    left = {p: max(expected[p] - spent.get(p, 0.0), 0.0) for p in plan}
    if current in plan:
        left[current] = _current_left(current, status, config, epoch_records, batch_records, spent, left)
    order = plan.index(current) if current in plan else len(plan)
    phases = []
    for i, phase in enumerate(plan):
        done = (not active and state == "completed") or i < order
        phases.append(
            PhaseState(
                phase,
                TRAINING_LABELS.get(config.get("mode"), PHASE_LABELS[phase])
                if phase == TRAINING
                else PHASE_LABELS[phase],
                "done" if done else "current" if i == order and active else "todo",
                spent.get(phase) if (done or i == order) else expected.get(phase),
            )
        )
    elapsed = sum(spent.values())
    if not active:
        return RunProgress(state, None, phases, 1.0 if state == "completed" else 0.0, None, elapsed, "")
    eta = sum(left[p] for p in plan[order:])
    fraction = elapsed / (elapsed + eta) if elapsed + eta > 0 else 0.0
    detail = _detail(current, status, config, epoch_records, batch_records)
    return RunProgress(state, current, phases, min(fraction, 0.99), eta, elapsed, detail)


def _current_phase(status: dict, epoch_records: list[dict], batch_records: list[dict]) -> str:
    """The open segment's phase; for a run without a timeline (written by an older version),
    what its free-text `phase` and metrics say."""
    timeline = status.get("timeline") or []
    if timeline and timeline[-1].get("end") is None:
        return timeline[-1]["phase"]
    text = status.get("phase") or ""
    if text.startswith("computing embeddings"):
        return EMBEDDING
    if text.startswith("evaluating"):
        return EVALUATING
    if text.startswith("auto:"):  # trying candidates, fitting the winner
        return TRAINING
    return TRAINING if epoch_records or batch_records else STARTING


def _current_left(phase, status, config, epoch_records, batch_records, spent, left) -> float:
    """Seconds left in the current phase, from its own measurements when it has any."""
    if phase == EMBEDDING:
        done, total = status.get("embedded"), status.get("to_embed")
        if done and total:
            return spent.get(EMBEDDING, 0.0) / done * max(total - done, 0)
    if phase == TRAINING and config.get("mode") != "features":
        total_epochs = int(status.get("epochs") or config.get("epochs") or 1)
        batches = int(status.get("batches") or 0)
        finished = len(epoch_records)
        current = [b for b in batch_records if b.get("epoch") == finished + 1]
        per_epoch = None
        seconds = [r["seconds"] for r in epoch_records if r.get("seconds")]
        if seconds:
            per_epoch = statistics.median(seconds[-3:])  # the latest epochs: stage 2 is slower
        elif batches and len(current) >= 2 and current[-1]["batch"] > current[0]["batch"]:
            span = current[-1]["time"] - current[0]["time"]
            per_epoch = span / (current[-1]["batch"] - current[0]["batch"]) * batches
        if per_epoch is not None:
            batch = int(current[-1]["batch"]) if current else 0
            this_epoch = per_epoch * (1 - batch / batches) if batches else 0.0
            return this_epoch + per_epoch * max(total_epochs - finished - 1, 0)
    return left[phase]


def _detail(phase, status, config, epoch_records, batch_records) -> str:
    """What the current phase is doing, in words."""
    if phase == EMBEDDING:
        done, total = status.get("embedded"), status.get("to_embed")
        return f"{done:,}/{total:,} images" if total else "reading the images"
    if phase == TRAINING:
        if config.get("mode") == "features":
            return "fitting the classifier on the embeddings"
        if config.get("mode") == "auto":
            return (status.get("phase") or "").removeprefix("auto: ") or "measuring the candidates"
        finished = len(epoch_records)
        total = int(status.get("epochs") or config.get("epochs") or 0)
        current = [b for b in batch_records if b.get("epoch") == finished + 1]
        batch = f" · batch {current[-1]['batch']}/{status.get('batches')}" if current else ""
        stage = " · fine-tuning the backbone" if int(status.get("stage") or 1) == 2 else ""
        return f"epoch {min(finished + 1, total)}/{total}{batch}{stage}"
    return PHASE_NOTES.get(phase, "")
