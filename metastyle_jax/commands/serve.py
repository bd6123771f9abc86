"""`python -m metastyle_jax.serve`: the local web page (`metastyle_jax.serve`)."""

import importlib.util
import logging
import sys
from pathlib import Path

from metastyle_jax import adapt, checkpoints, checks, config, serve, vgg_weights
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError


def parse_args(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.serve", description=serve.__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this "
                   "machine only; 0.0.0.0 opens the page to the network)")
    p.add_argument("--model", action="append", default=[], help="an adapted model checkpoint to offer (repeatable)")
    p.add_argument("--models-dir", help="offer every adapted model checkpoint found under this folder")
    p.add_argument("--theta", help="meta-trained theta to adapt uploaded paintings from (default: random "
                   "initialization, Johnson et al., which needs far more steps)")
    p.add_argument("--adapt-steps", type=int, help="Adam steps per uploaded painting (default 200, the "
                   "paper's; 0 switches adaptation off)")
    p.add_argument("--save-adapted", help="also save each model adapted on the page under this folder")
    p.add_argument("--max-side", type=int, default=1024, help="downscale photos so the longer side is at most "
                   "N px (default 1024)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--config", default="adapt", help="adaptation config (default configs/adapt.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="adaptation config override")
    cli.add_vgg_args(p)
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError("--port must be between 0 and 65535")
    checks.check_side("--max-side", args.max_side)
    if not args.max_upload_mb > 0:
        raise UserError("--max-upload-mb must be positive")
    if args.adapt_steps is not None and args.adapt_steps < 0:
        raise UserError("--adapt-steps must be 0 (off) or more")
    return args


def adaptation_from_args(args):
    """The Adaptation of --theta, --adapt-steps, --config/--set and the VGG flags; None for --adapt-steps 0."""
    cfg = config.load(args.config, args.set)
    if args.adapt_steps is not None:
        cfg.num_steps = args.adapt_steps
    if cfg.num_steps == 0:
        return None
    if cfg.batch_size < 1 or cfg.data.content_size < 16 or cfg.data.style_size < 16 or not cfg.lr > 0:
        raise UserError("the adaptation config needs batch_size >= 1, size and style_size >= 16, lr > 0")
    vgg_weights.select(args.vgg, args.vgg_path, cfg)  # a bad choice is an error now, not at the first adaptation
    theta, meta = checkpoints.load_model(args.theta, kinds=("theta",)) if args.theta else (None, None)
    return serve.Adaptation(cfg, theta, str(args.theta) if args.theta else None,
                            lambda: cli.load_vgg_from_args(args, cfg), adapt.input_scale_of(meta),
                            adapt.resampling_of(meta, cfg))


def main(argv=None):
    args = parse_args(argv)
    if importlib.util.find_spec("flask") is None:
        raise UserError("the web page needs Flask: pip install -e '.[serve]'")
    if args.save_adapted and Path(args.save_adapted).exists() and not Path(args.save_adapted).is_dir():
        raise UserError(f"--save-adapted {args.save_adapted} is a file, not a folder")
    styles = serve.find_models(args.model, args.models_dir)
    adaptation = adaptation_from_args(args)
    if not styles and adaptation is None:
        raise UserError("no styles to offer: give --model CKPT or --models-dir DIR, or allow adaptation")
    limits = serve.Limits(int(args.max_upload_mb * serve.MB), args.max_side)
    studio = serve.Studio(styles, limits, adaptation, args.save_adapted)
    server = serve.make_server(serve.create_app(studio), args.host, args.port)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request: the page polls
    if adaptation is not None and adaptation.theta is None:
        print("warning: no --theta: uploaded paintings are adapted from random initialization (Johnson et al.); "
              f"{adaptation.cfg.num_steps} steps give a rough stylization at best", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the page",
              file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{len(styles)} style(s); serving on http://{host}:{server.port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()  # returns on Ctrl-C
    finally:
        server.server_close()
        studio.close()
    print("stopped", file=sys.stderr)
