"""What every `python -m core.*` command shares: bad input is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
import sys


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
