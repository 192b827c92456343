"""Train a transfer-learning classifier into a run directory.

    python -m core.train --data DIR --runs-dir DIR [--backbone NAME] [--preset seed] ...

Prints progress; the last line of stdout is the run directory. On bad input it exits
with status 2 and a one-line error. The dashboard launches exactly this command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from core.backbones import BACKBONES, WeightsUnavailableError
from core.cli import OneLineParser, add_knob, exit_now, fail
from core.config import (
    IMBALANCE_WARNING_RATIO,
    PRESETS,
    RUNS_DIR,
    ConfigError,
    TrainConfig,
    preset_config,
)
from core.data import DatasetError, DatasetReport, link_split, scan_dataset, split_dataset
from core.demo import check_demo_limits, check_quota, demo_mode, hold_job_slot
from core.exclusions import apply_exclusions, load_exclusions, read_exclusions
from core.progress_model import EVALUATING, STARTING, close_timeline, finish_timeline, mark_phase, run_rates
from core.runs import (
    COMPLETED,
    FAILED,
    RESUMABLE_STATES,
    RUNNING,
    STOPPED,
    RunDir,
    RunError,
    TrainingLock,
    new_run_dir,
    write_json_atomic,
)

if TYPE_CHECKING:
    from core.stages import RunContext  # imports TensorFlow: loaded only when training starts

# what the dashboard writes before launching
LAUNCH_FILES = {RunDir("").config_file.name, RunDir("").status_file.name, RunDir("").train_log.name}
USER_ERRORS = (ConfigError, DatasetError, RunError, WeightsUnavailableError)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m core.train", description=__doc__.split("\n")[1])
    add = parser.add_argument
    add("--data", help="a folder of class folders, or one with train/ and validation/")
    add("--runs-dir", type=Path, default=None, help=f"where runs are created (default {RUNS_DIR})")
    add("--run-dir", type=Path, help="use this new, empty folder as the run directory")
    add("--config", type=Path, help="a config.json to start from (flags override it)")
    add("--preset", choices=sorted(PRESETS), help="start from a named preset ('seed' = reference)")
    knob = functools.partial(add_knob, parser)
    knob("backbone")
    add("--weights", choices=["imagenet", "none"], help="'none' = random init (for tests)")
    knob("image_size", "square input size (default: the backbone's own)")
    knob("pooling")
    knob("dense_units")
    knob("dropout")
    knob("optimizer")
    knob("learning_rate")
    knob("batch_size")
    knob("epochs")
    knob("patience", "early-stopping patience in epochs (0 = off)")
    knob("monitor")
    knob("val_split", "validation fraction for an unsplit dataset")
    knob("seed")
    knob("mode", "auto (default: measure the candidates, keep the best), finetune (a Keras head) or features")
    knob("classifier", "features mode: logreg (default), svm, knn or tree")
    knob("classifier_c", "logreg/svm inverse regularisation C")
    knob("svm_kernel")
    knob("knn_neighbors")
    knob("tree_max_depth", "0 = unlimited")
    add("--feature-layer", help="take features from this earlier backbone layer")
    knob("head_training", "cached embeddings or live images (default auto)")
    knob("augment_views", "augmented views per image to cache (0 = none)")
    knob("fine_tune_layers", "stage 2: unfreeze this many top backbone layers")
    knob("fine_tune_epochs")
    knob("fine_tune_lr_factor", "stage 2 learning rate factor (default 0.1)")
    add("--no-evaluate", action="store_true", help="skip evaluating the best checkpoint at the end")
    add("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped or interrupted run")
    add("--class-weights", action="store_true", default=None, help="weight classes by inverse frequency")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Preset or config file first, then every flag given on the command line."""
    if args.config:
        try:
            config = TrainConfig.from_json(Path(args.config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {args.config}: {exc.strerror}") from None
    elif args.preset:
        config = preset_config(args.preset)
    else:
        config = TrainConfig(image_size=0)  # 0: take the backbone's default size below
    overrides = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k in {f.name for f in dataclasses.fields(TrainConfig)}
    }
    if overrides.get("weights") == "none":
        overrides["weights"] = None
    config = dataclasses.replace(config, **overrides)
    if not config.image_size and config.backbone in BACKBONES:
        config.image_size = BACKBONES[config.backbone].default_size
    config.validate()
    return config


def prepare_data(config: TrainConfig, run_dir: Path, log) -> DatasetReport:
    """Scan the dataset; split an unsplit one into `run_dir/split` (links, not copies)."""
    split = RunDir(run_dir).split_dir
    if split.is_dir():  # a resumed run keeps the split it started with
        return scan_dataset(split, validate=False)
    report = scan_dataset(config.data)
    for skipped in report.skipped:
        log(f"skipped {skipped.path}: {skipped.reason}")
    run = RunDir(run_dir)  # the decisions copied in at launch, else the project's for this dataset
    decisions = read_exclusions(run.exclusions_file) if run.exclusions_file.is_file() else None
    report, decided = apply_exclusions(report, decisions or load_exclusions(config.data))
    if decided["excluded"] or decided["relabelled"]:
        log(f"left out {len(decided['excluded'])} photo(s), moved {len(decided['relabelled'])} (Health tab)")
    if not report.is_split or decided["excluded"] or decided["relabelled"]:
        # Into a temp folder first: a kill midway must not leave half a split.
        partial = run_dir / ".split.partial"
        for leftover in [partial, *run_dir.glob(".tls-stage-*")]:  # from a process killed midway
            shutil.rmtree(leftover, ignore_errors=True)
        if report.is_split:  # the run's own view of a split dataset, decisions applied
            link_split(report, partial)
        else:
            split_dataset(report, partial, config.val_split, config.seed, link=True)
        split_dir = split
        os.replace(partial, split_dir)
        report = dataclasses.replace(
            scan_dataset(split_dir, validate=False), skipped=report.skipped, sizes=report.sizes
        )
    write_json_atomic(
        RunDir(run_dir).dataset_file,
        {
            "source": str(config.data),
            "classes": report.class_names,
            "counts": report.counts(),
            "skipped": [dataclasses.asdict(s) for s in report.skipped],
            **decided,
        },
    )
    for split, counts in report.counts().items():
        log(f"{split}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    if report.imbalance_ratio() > IMBALANCE_WARNING_RATIO:
        hint = "" if config.class_weights else "; consider --class-weights and --monitor val_macro_f1"
        log(f"warning: classes are imbalanced (largest/smallest = {report.imbalance_ratio():.1f}){hint}")
    return report


class StopRequest:
    """Set by SIGTERM or by a STOP file in the run directory."""

    def __init__(self, run_dir: Path):
        self.stop_file = RunDir(run_dir).stop_file
        self.signalled = False
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.signalled = True

    def __bool__(self) -> bool:
        return self.signalled or self.stop_file.exists()


def train(
    config: TrainConfig,
    run_dir: Path,
    log=print,
    resume: bool = False,
    evaluate: bool = True,
    lock: TrainingLock | None = None,
) -> dict:
    """Train `config` into `run_dir` (which holds config.json); return the final status.

    With `resume`, continue a stopped or interrupted run from its last checkpoint. `lock`, the
    training lock this process holds, is released just before the final state is written.
    """
    stop, run = StopRequest(run_dir), RunDir(run_dir)
    total = config.total_epochs
    if resume:  # a run whose process died left its last phase open: it ended with its last record
        run.write_status(timeline=close_timeline(run.status().get("timeline"), _last_record_time(run_dir)))
    launched = run.status()  # the dashboard's launcher wrote "starting" when Start was pressed
    launched_at = launched.get("updated_at") if launched.get("state") == "starting" else None
    mark_phase(run_dir, STARTING, launched_at or time.time())
    started = {"resumed_at": time.time()} if resume else {"started_at": time.time(), "epoch": 0, "stage": 1}
    run.write_status(
        state=RUNNING,
        pid=os.getpid(),
        epochs=1 if config.mode in ("features", "auto") else total,
        error=None,
        ended_at=None,
        **started,
    )
    report = prepare_data(config, run_dir, log)
    if demo_mode():
        check_demo_limits(config, len(report.splits["train"].paths))
    write_json_atomic(run.labels_file, report.class_names)

    from core.tf_setup import distribution_strategy, keras, use_mixed_precision_if_gpu

    keras.utils.set_random_seed(config.seed)
    strategy = distribution_strategy()
    replicas = strategy.num_replicas_in_sync
    device = "GPU (mixed precision)" if use_mixed_precision_if_gpu() else "CPU"
    log(f"device: {device}" + (f", {replicas} replicas ({type(strategy).__name__})" if replicas > 1 else ""))
    run.write_status(replicas=replicas)
    if replicas > 1:  # batch_size is per replica; the pipeline feeds the global batch
        config = dataclasses.replace(config, batch_size=config.batch_size * replicas)
    from core.stages import RunContext

    with strategy.scope():
        model, holds_best = _train_model(RunContext(config, run_dir, report, stop, log), resume)
    _refuse_diverged(run_dir)
    if stop:
        return end_run(run_dir, STOPPED, lock)
    if evaluate:
        mark_phase(run_dir, EVALUATING, phase="evaluating")
        _evaluate(run_dir, report, log, model, holds_best)
    return end_run(run_dir, COMPLETED, lock, phase=None, rates=_rates(run_dir, config, report))


def end_run(run_dir: Path, state: str, lock: TrainingLock | None, **fields) -> dict:
    """Write the run's final `state`, releasing the training lock first.

    The dashboard enables Start as soon as no run's status reads active (`core.runs.active_run`);
    were the lock still held at that moment, the next training would be refused by it.
    """
    if lock:
        lock.release()
    finish_timeline(run_dir)
    return RunDir(run_dir).write_status(state=state, ended_at=time.time(), **fields)


def _last_record_time(run_dir: Path) -> float | None:
    """When the run last wrote a metrics line (its last sign of life), if it wrote any."""
    epochs, batches = RunDir(run_dir).metrics()
    times = [r["time"] for r in epochs + batches if r.get("time")]
    return max(times) if times else None


def _rates(run_dir: Path, config: TrainConfig, report: DatasetReport) -> dict:
    """What this run measured per phase, for the time estimates of later runs on this machine."""
    epochs, _ = RunDir(run_dir).metrics()
    return run_rates(RunDir(run_dir).status(), config.to_dict(), report.counts(), epochs)


def _refuse_diverged(run_dir: Path) -> None:
    """A run whose loss became NaN or infinite has learnt nothing usable: it fails, saying so."""
    import math

    for record in RunDir(run_dir).metrics()[0]:
        bad = [record[k] for k in ("loss", "val_loss") if isinstance(record.get(k), float)]
        bad = [value for value in bad if not math.isfinite(value)]
        if bad:
            raise RunError(
                f"training diverged: the loss became {bad[0]} at epoch {record.get('epoch')} "
                "(bad inputs, or lower the learning rate)"
            )


def _evaluate(run_dir: Path, report: DatasetReport, log, model=None, holds_best: bool = False) -> None:
    """Evaluate the best checkpoint on validation (and test); a failure is logged, never fatal.

    `model`, the one just trained, is evaluated: loading best.keras anew would rebuild the
    whole model (seconds, a third of a frozen-base run's evaluation). It takes the best weights
    from disk unless it `holds_best` already (a single fit: 0.8 s saved on MobileNetV2). The
    galleries' Grad-CAM overlays are left for when they are asked for (`core.evaluate
    --overlays`, which the Checkpoints page runs): 2 s of a 15 s features run otherwise."""
    from core.evaluate import evaluate_run, summary_line
    from core.predict import classifier_from_model

    try:
        classifier = classifier_from_model(run_dir, model, holds_best) if model is not None else None
    except Exception:  # evaluate_run loads the checkpoint itself and names any problem
        classifier = None
    for split in ("validation", "test"):
        if split in report.splits:
            try:
                result = evaluate_run(run_dir, split, classifier=classifier, overlays=False, report=report)
                log(summary_line(result))
            except Exception as exc:  # the run itself succeeded; the page can evaluate again
                log(f"evaluation of {split} failed: {type(exc).__name__}: {exc}")


def _train_model(ctx: RunContext, resume: bool):
    """Train as the config says; return the trained Keras model (None: evaluation loads it) and
    whether it holds the best checkpoint's weights already (a single fit: its only weights)."""
    if ctx.config.mode == "auto":  # candidates measured by cross-validation; the best is kept
        from core.auto import train_auto

        return train_auto(ctx), True
    if ctx.config.mode == "features":  # the classifier replaces the Keras head
        from core.model import build_model
        from core.stages import train_features

        ctx = ctx.replace(config=dataclasses.replace(ctx.config, dense_units=0, dropout=0.0))
        model = build_model(ctx.config, ctx.num_classes)
        train_features(ctx, model)
        return model, True
    return _train_stages(ctx, resume), False


def _train_stages(ctx: RunContext, resume: bool):
    """Stage 1 (head), then stage 2 (fine-tuning) if asked; a resumed run picks up where it was."""
    from core.model import build_model
    from core.stages import fine_tune, train_head

    config = ctx.config
    no_resume = (None, 0, None, None)
    model, done, stage2_start, best = _resume_point(ctx.run_dir, config, ctx.log) if resume else no_resume
    if model is None:
        model = build_model(config, ctx.num_classes)
    checkpoint = None
    if stage2_start is None and done < config.epochs:
        checkpoint, done = train_head(ctx, model, done, best)
    if config.fine_tune_layers and not ctx.stop:
        if checkpoint is None:
            from core.callbacks import AtomicCheckpoint

            checkpoint = AtomicCheckpoint(ctx.run_dir, model, config.monitor)
            checkpoint.best = best
        fine_tune(ctx, model, checkpoint, done, stage2_start)
    return model


def _resume_point(run_dir: Path, config: TrainConfig, log):
    """(model from last.keras, epochs done, stage-2 start epoch or None, best monitored value);
    the model is None when nothing was trained yet (the run starts from the beginning)."""
    from core.callbacks import restore_head_snapshots
    from core.model import ImagePreprocess  # noqa: F401  registers the custom layer and metric
    from core.tf_setup import keras

    run = RunDir(run_dir)
    last = run.checkpoint("last")
    epochs, _ = run.metrics()
    if not last.is_file():
        if epochs:
            raise RunError(f"{run.name} has no last checkpoint to resume from")
        log("resuming: no epoch had ended, so training starts from the beginning")
        return None, 0, None, None
    stage2 = [e["epoch"] for e in epochs if e.get("stage") == 2]
    model = keras.models.load_model(last, safe_mode=True)  # compiled: the optimizer state resumes too
    weights_epoch = restore_head_snapshots(run_dir, model, len(epochs), config.monitor)
    best = run.best_record().get("value")
    held = f" from the weights of epoch {weights_epoch}" if weights_epoch else ""
    log(f"resuming after epoch {len(epochs)}{held}" + (" (stage 2)" if stage2 else ""))
    return model, len(epochs), (min(stage2) if stage2 else None), best


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir, lock = _launched_run_dir(args), None  # a refusal is written into a launched run's status
    try:
        if args.resume:
            return _resume(args.resume)
        config = config_from_args(args)
        runs_dir = args.run_dir.parent if args.run_dir else args.runs_dir or RUNS_DIR
        if demo_mode():
            check_demo_limits(config)
            check_quota(runs_dir)
            hold_job_slot()
        lock = TrainingLock(runs_dir)
        lock.acquire()  # before creating a run, so a refused start leaves no empty run behind
        run_dir = _make_run_dir(args, config)
        lock.name_holder(run_dir)
        status = train(config, run_dir, log=_log, evaluate=not args.no_evaluate, lock=lock)
        _log(f"{status['state']}: {run_dir}")
    except USER_ERRORS as exc:
        return _fail(run_dir, str(exc), lock)
    except KeyboardInterrupt:
        if run_dir:
            end_run(run_dir, STOPPED, lock)
        return 130
    except Exception as exc:  # an unexpected bug: one line here, the traceback in the run
        return _fail_unexpectedly(run_dir, exc, lock)
    finally:
        if lock:
            lock.release()
    print(run_dir, flush=True)  # the contract: the last line of stdout is the run directory
    return 0


def _resume(run_dir: Path) -> int:
    """Continue a stopped, interrupted or failed run from its last checkpoint."""
    run = RunDir(run_dir)
    launched = run.status().get("state") == "starting"  # by the dashboard's Resume button
    try:
        refusal = run.resume_refusal(RESUMABLE_STATES + ("starting",))
        if refusal:
            raise RunError(refusal)
        config = run.train_config()
    except RunError as exc:  # refused: the run is left as it was, bar a launch's "starting"
        return _fail(run_dir if launched else None, str(exc))
    lock = TrainingLock(run_dir.parent)
    try:
        if demo_mode():
            check_quota(run_dir.parent)
            hold_job_slot()
        lock.acquire()
        lock.name_holder(run_dir)
        run.stop_file.unlink(missing_ok=True)
        status = train(config, run_dir, log=_log, resume=True, lock=lock)
        _log(f"{status['state']}: {run_dir}")
    except USER_ERRORS as exc:  # the page set it "starting": it must say why it did not
        return _fail(run_dir if lock.held or launched else None, str(exc), lock)
    except Exception as exc:
        return _fail_unexpectedly(run_dir if lock.held else None, exc, lock)
    finally:
        lock.release()
    print(run_dir, flush=True)
    return 0


def _launched_run_dir(args: argparse.Namespace) -> Path | None:
    """The run folder the dashboard created for this process (holding only its config and
    status), whose status must carry the reason if the training is refused; else None."""
    run_dir = args.run_dir
    if not run_dir or not run_dir.is_dir():
        return None
    return run_dir if {p.name for p in run_dir.iterdir()} <= LAUNCH_FILES else None


def _make_run_dir(args: argparse.Namespace, config: TrainConfig) -> Path:
    if not args.run_dir:
        run = RunDir(new_run_dir(args.runs_dir or RUNS_DIR, config))
        write_json_atomic(run.config_file, config.to_dict())
        return run.path
    run = RunDir(args.run_dir)
    existing = {p.name for p in run.path.iterdir()} if run.path.is_dir() else set()
    if existing - LAUNCH_FILES:
        raise RunError(f"the run directory is not empty: {run.path}")
    run.path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.config_file, config.to_dict())
    return run.path


def _fail(run_dir: Path | None, message: str, lock: TrainingLock | None = None) -> int:
    if run_dir and run_dir.is_dir():
        try:
            end_run(run_dir, FAILED, lock, error=message)
        except OSError as exc:  # a full disk: the message still reaches stderr and train.log
            message += f" (and status.json could not be written: {exc.strerror})"
    return fail(message)


def _fail_unexpectedly(run_dir: Path | None, exc: Exception, lock: TrainingLock | None = None) -> int:
    """One line for the user; the traceback in the run's error.log when the disk allows."""
    if run_dir:
        with contextlib.suppress(OSError):
            (run_dir / "error.log").write_text(traceback.format_exc())
    if isinstance(exc, OSError) and exc.strerror:  # a full disk, a removed folder: say which file
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(run_dir, f"cannot write or read a file ({exc.strerror}){where}", lock)
    return _fail(run_dir, f"unexpected failure: {type(exc).__name__}: {exc}", lock)


def _log(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    exit_now(main())
