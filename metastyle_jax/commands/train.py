"""`python -m metastyle_jax.train`: meta-train theta (Algorithm 1, `metastyle_jax.train`)."""

import sys

import jax

from metastyle_jax import config, train
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.train", description=train.__doc__.splitlines()[0])
    p.add_argument("--config", default="metastyle", help="config file or name under configs/ (default: metastyle)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set inner_lr=1e-5 --set data.content=/data/coco")
    p.add_argument("--workdir", default="runs/metastyle", help="run folder (default: runs/metastyle)")
    p.add_argument("--resume", action="store_true", help="continue the run in --workdir from its last checkpoint")
    p.add_argument("--force", action="store_true", help="delete the run in --workdir and start over")
    p.add_argument("--devices", type=int, help="use only the first N devices (default: all)")
    p.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: address of process 0's coordinator")
    p.add_argument("--num-processes", type=int, help="multi-host: number of processes (hosts)")
    p.add_argument("--process-id", type=int, help="multi-host: this process's index, 0 .. N-1")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host with cluster auto-detection (SLURM, Cloud TPU, ...)")
    cli.add_vgg_args(p)
    args = p.parse_args(argv)
    if args.resume and args.force:
        p.error("--resume and --force exclude each other")
    return args


def init_distributed(args):
    """jax.distributed.initialize from --coordinator/--num-processes/--process-id, or auto with --distributed."""
    if args.coordinator or args.num_processes or args.process_id is not None:
        if not (args.coordinator and args.num_processes and args.process_id is not None):
            raise UserError("multi-host runs need all of --coordinator, --num-processes and --process-id")
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    elif args.distributed:
        jax.distributed.initialize()


def main(argv=None):
    args = parse_args(argv)
    init_distributed(args)
    cfg = train.resolve_config(cli.config_from_args(args, ()), args.workdir, args.resume,
                               defaults=config.load(args.config))
    try:
        return train.train_and_evaluate(cfg, args.workdir, args.resume, args.force, args.devices)
    except train.Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
