"""The command line, on top of the library: one module per command, each with its argument parser and a thin
`main(argv)` that hands plain values to the library. No library module imports this package; a library
module's `python -m metastyle_jax.NAME` block calls `run(NAME)`.

    metastyle COMMAND [FLAGS]   (installed with the package)
    python -m metastyle_jax COMMAND [FLAGS]
    python -m metastyle_jax.COMMAND [FLAGS]
"""

import importlib
import sys

COMMANDS = {
    "train": "meta-train theta (Algorithm 1)",
    "adapt": "adapt theta to one painting (eq. 8)",
    "stylize": "stylize images or a video with an adapted model",
    "gatys": "Gatys et al.: optimize the pixels of one image",
    "interpolate": "mix adapted models (section 5.3)",
    "export": "export an adapted model: StableHLO, SavedModel, ONNX",
    "convert": "import a checkpoint of the official PyTorch code",
    "serve": "a local web page for stylizing photos",
}


def run(name, argv=None):
    """Run command `name` (a key of COMMANDS) as a command line (`cli.run`): flags from `argv` or sys.argv."""
    from metastyle_jax.commands import cli

    return cli.run(importlib.import_module(f"metastyle_jax.commands.{name}").main, argv)


def usage():
    width = max(map(len, COMMANDS))
    return "usage: metastyle COMMAND [FLAGS]   (metastyle COMMAND --help for its flags)\n\ncommands:\n" + "".join(
        f"  {name.ljust(width)}  {what}\n" for name, what in COMMANDS.items())


def main(argv=None):
    """`metastyle COMMAND [FLAGS]`: run the command named by the first argument."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        print(f"metastyle: unknown command {argv[0]!r}: one of {', '.join(COMMANDS)} (see --help)", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"metastyle {argv[0]}", *argv[1:]]  # a command-line run: flags from sys.argv, Ctrl-C watched
    return run(argv[0])
