"""`python -m metastyle_jax.interpolate`: mix adapted models (section 5.3, `metastyle_jax.interpolate`)."""

from metastyle_jax import interpolate
from metastyle_jax.commands import cli


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.interpolate",
                           description=interpolate.__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="two or more adapted checkpoints")
    p.add_argument("--weights", nargs="+", metavar="W1,W2,...",
                   help="weight vectors, one weight per model (default: 5 steps from each model to the next)")
    p.add_argument("--content", required=True, help="content image: a path or embedded:NAME")
    p.add_argument("--out", default="interpolation.png", help="the strip (.png/.jpg)")
    p.add_argument("--size", type=int, help="longer side of the content image in px (default: keep)")
    p.add_argument("--save-model", metavar="CKPT", help="also write the interpolated network as an adapted "
                   "checkpoint (needs exactly one weight vector)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = p.parse_args(argv)
    content, styles, vectors = interpolate.write_strip(args.models, args.weights, args.content, args.out, args.size,
                                              args.save_model, args.force)
    print(f"wrote {args.out}: {content.shape[1]}x{content.shape[0]} content, then {len(vectors)} interpolations of "
          f"{' / '.join(styles)} at weights " + " ".join(",".join(f"{x:g}" for x in w) for w in vectors))
