"""`python -m metastyle_jax.gatys`: Gatys et al. on one image (`metastyle_jax.gatys`)."""

from metastyle_jax import gatys
from metastyle_jax.commands import cli


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.gatys", description=gatys.__doc__.splitlines()[0])
    p.add_argument("--content", default="embedded:astronaut",
                   help="content image: a path or embedded:NAME (default embedded:astronaut)")
    p.add_argument("--style", default="embedded:starry_night",
                   help="style image: a path or embedded:NAME (default embedded:starry_night, a painting "
                        "shipped in the package)")
    p.add_argument("--out", default="gatys.png", help="output image (.png or .jpg); its loss curve goes "
                   "beside it as <name>_loss.png")
    p.add_argument("--init", help="content | noise | path to an image (default: content)")
    p.add_argument("--steps", type=int, help="optimization steps (default: 800, as the paper)")
    p.add_argument("--size", type=int, help="longer side of the content image in px (default 256)")
    p.add_argument("--style-size", type=int, help="longer side of the style image in px (default 256)")
    p.add_argument("--lr", type=float, help="Adam learning rate on the pixels (default 0.02)")
    p.add_argument("--compare", metavar="PNG", help="also write content | style | result side by side")
    cli.add_config_args(p, "gatys")
    args = p.parse_args(argv)
    cfg = cli.config_from_args(args, ("init", "steps", "size", "style_size", "lr"))
    r = gatys.transfer(cfg, args.content, args.style, args.out, args.compare, args.force)
    hist, result = r["history"], r["result"]
    print(f"wrote {r['out']} ({result.shape[1]}x{result.shape[0]}) and {r['curve']}; {cfg.num_steps} steps in "
          f"{r['seconds']:.1f} s (compilation included); loss {hist['total'][0]:.4g} -> {hist['total'][-1]:.4g} "
          f"(content {hist['content'][-1]:.4g}, style {hist['style'][-1]:.4g})")
