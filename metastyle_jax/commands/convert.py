"""`python -m metastyle_jax.convert`: import a checkpoint of the official PyTorch code (`metastyle_jax.convert`)."""

from metastyle_jax import checkpoints, convert
from metastyle_jax.commands import cli


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.convert", description=convert.__doc__.splitlines()[0])
    p.add_argument("--from-pytorch", required=True, metavar="PTH", help="official TransformerNet state dict (.pth)")
    p.add_argument("--out", required=True, help="model checkpoint to write (a directory)")
    p.add_argument("--kind", choices=checkpoints.KINDS, default="theta",
                   help="theta (a meta-trained model, the default) or adapted (a model fast-trained to one style)")
    p.add_argument("--input-scale", type=float, default=convert.OFFICIAL_INPUT_SCALE,
                   help="the pixel range the PyTorch network was trained on: 255 (official code) or 1")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    n = convert.convert_file(args.from_pytorch, args.out, args.kind, args.input_scale, args.force)
    print(f"converted {n:,} parameters of {args.from_pytorch} ({args.kind}, PyTorch input scale "
          f"{args.input_scale:g}) -> {args.out}")
