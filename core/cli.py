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
