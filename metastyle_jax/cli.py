"""Shared command-line plumbing: one-line errors for user mistakes, never a traceback."""

import argparse
import os
import sys


class UserError(Exception):
    """A mistake in what the user asked for (bad file, bad flag, bad value); shown as one line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main, argv=None):
    """Run `main(argv)`; a UserError (or a missing/unreadable file) becomes one line on stderr and exit 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def refuse_overwrite(path, force):
    """Raise a UserError if `path` exists and `force` is not set."""
    if os.path.exists(path) and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
