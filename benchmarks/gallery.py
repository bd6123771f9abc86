"""The README's gallery: each shipped style (`stylize --style NAME`) on three embedded photos at 512 px.

    python -m benchmarks.gallery [--photos astronaut chelsea rocket] [--max-side 512] [--cell 320]
        [--models DIR --out runs/gallery.jpg]   # the styles in DIR/NAME (a trial shipping) instead of the shipped

Rows: the painting, then its adapted model's stylizations; the first row shows the photos. Each photo is
stylized at `--max-side` px (its longer side) by the shipped model, exactly as the `stylize` command does,
then shown `--cell` px wide. chelsea and rocket are held out of both theta's and the styles' training
contents. Writes docs/gallery.jpg.
"""

from pathlib import Path

import numpy as np

from benchmarks import figures
from metastyle_jax import checkpoints, data, images, stylize
from metastyle_jax.commands import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


def cell(image, width, title=""):
    """`image` (H, W, 3) fitted into a white width x width square (aspect kept), titled above."""
    h, w = image.shape[:2]
    scale = width / max(h, w)
    fitted = images.resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
    square = np.ones((width, width, 3), np.float32)
    top, left = (width - fitted.shape[0]) // 2, (width - fitted.shape[1]) // 2
    square[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return figures.titled(square, title)


def gallery(names, photos, max_side, width, models=None):
    """The gallery grid (H, W, 3): a header row of the photos, then per style its painting and stylizations, by the
    shipped styles or those in folder `models` (each named after its painting)."""
    pictures = [data.load_image_spec(f"{data.EMBEDDED_PREFIX}{p}", max_side=max_side) for p in photos]
    cells = [cell(np.ones((1, 1, 3), np.float32), width)] + [cell(p, width, n) for p, n in zip(pictures, photos)]
    for name in names:
        path = Path(models) / name if models else stylize.shipped_style(name)
        params, meta = checkpoints.load_model(path, kinds=("adapted",))
        painting = images.load_image(data.painting_path(name))
        outs = stylize.stylize(params, pictures, 1, resampling=checkpoints.resampling(meta))
        cells += [cell(painting, width, name)] + [cell(o, width) for o in outs]
    return images.grid(cells, nrow=len(photos) + 1)


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m benchmarks.gallery", description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", choices=data.PAINTINGS, default=list(data.PAINTINGS))
    p.add_argument("--photos", nargs="+", default=["astronaut", "chelsea", "rocket"], choices=data.EMBEDDED_PHOTOS)
    p.add_argument("--max-side", type=int, default=512, help="stylization size: the photo's longer side in px")
    p.add_argument("--cell", type=int, default=320, help="width of each picture in the grid, px")
    p.add_argument("--models", metavar="DIR", help="the styles in DIR/NAME instead of the shipped ones")
    p.add_argument("--out", default=str(DOCS / "gallery.jpg"))
    args = p.parse_args(argv)
    grid = gallery(args.names, args.photos, args.max_side, args.cell, args.models)
    images.save_image(args.out, grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    cli.run(main)
