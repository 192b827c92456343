"""What every `python -m core.*` command shares: bad input is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn


def fail(message: str) -> int:
    """Print `error: message` to stderr (no traceback); return the exit status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `error:` line too, instead of the usage text."""

    def error(self, message: str):
        sys.exit(fail(message))


def add_knob(parser: argparse.ArgumentParser, name: str, help: str | None = None) -> None:
    """`--name` for the TrainConfig field `name`, typed and limited by the config's one table of
    limits (core.config.field_limits): choices become argparse choices, ranges go in the help
    and are enforced by `TrainConfig.validate()` with one line naming the field."""
    from core.config import field_limits

    limits = field_limits(name)
    flag = "--" + name.replace("_", "-")
    if limits.choices:
        parser.add_argument(flag, choices=limits.choices, help=help)
        return
    span = limits.interval if limits.low is not None else ""
    parser.add_argument(flag, type=limits.kind, help=" ".join(filter(None, [help, span])) or None)


def exit_now(status: int) -> NoReturn:
    """End a command with `status` once its output is flushed, skipping interpreter teardown.

    After TensorFlow has run, Python's shutdown spends about a second destroying TF and Keras
    objects (measured here: 0.9-1.2 s after a run's last line), which a user waits for and
    which does nothing: every file a command writes is closed (and renamed into place) before
    it returns. So every `python -m core.*` command ends here instead of `sys.exit`; under
    a profiler or a coverage tracer, which write their results at shutdown, it exits normally.
    """
    if sys.getprofile() or sys.gettrace():
        sys.exit(status)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)
