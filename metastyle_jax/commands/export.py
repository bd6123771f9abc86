"""`python -m metastyle_jax.export`: export an adapted model (`metastyle_jax.export`)."""

from pathlib import Path

from metastyle_jax import checkpoints, checks, export, outputs
from metastyle_jax.commands import cli


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.export", description=export.__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="an adapted model checkpoint")
    p.add_argument("--format", required=True, choices=export.FORMATS, help="artefact format")
    p.add_argument("--out", required=True, help="output directory (artefact + card.json)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="fix the image size (batch stays free)")
    shape.add_argument("--dynamic", action="store_true",
                       help=f"free H and W, each >= {export.MIN_SIDE} (the default)")
    p.add_argument("--platforms", default="cpu,cuda",
                   help="stablehlo/savedmodel: platforms to lower for (default cpu,cuda)")
    p.add_argument("--no-check", action="store_true", help="skip running the artefact against the JAX network")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    for side in args.size or ():
        checks.check_side("--size H W", side, low=export.MIN_SIDE)
    platforms = export.parse_platforms(args.platforms)
    outputs.check([args.out], [checkpoints.resolve_model(args.model)], args.force)
    export.check_requirements(args.format)
    params, meta = checkpoints.load_model(args.model, kinds=("adapted",))
    shape_text = "dynamic H, W" if args.size is None else f"H, W = {args.size[0]}, {args.size[1]}"
    print(f"exporting {args.model} as {args.format} ({shape_text}) ...", flush=True)
    card = export.export_model(params, meta, args.format, args.out, args.size and tuple(args.size), platforms,
                        source=Path(args.model).absolute(), force=args.force, check=not args.no_check)
    check = card["check"]
    diff = (f"; max |artefact - JAX| = {check['max_abs_diff_vs_jax']:.2g} on {tuple(check['image_shape'])}"
            if "max_abs_diff_vs_jax" in check else "")
    size = export.artefact_size(Path(args.out) / export.ARTEFACTS[args.format]) / 2**20
    print(f"wrote {Path(args.out) / export.ARTEFACTS[args.format]} ({size:.1f} MiB) and card.json in "
          f"{check['export_seconds']:.1f} s{diff}")
