"""What the paper-figure benchmarks (fig6, fig7, quality) share: the theta they start from and how it is
labelled, their output files, the loss of a batch of stylized images, and titled image grids."""

import functools
import json
import sys
from pathlib import Path

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.common import RESULTS, environment
from metastyle_jax import checkpoints, images, losses, outputs, transformer
from metastyle_jax.errors import UserError

TITLE_HEIGHT = 14   # px of the white strip that carries a title above an image
DEFAULT_WEIGHTS = losses.LossWeights()


def painting_records(folder, prefix):
    """{painting: record} of `folder`/<prefix>_<painting>.json for each shipped painting that has one, in
    `data.PAINTINGS` order (the records of a figure run once per painting with --name <prefix>_<painting>)."""
    from metastyle_jax import data
    return {n: json.loads((Path(folder) / f"{prefix}_{n}.json").read_text()) for n in data.PAINTINGS
            if (Path(folder) / f"{prefix}_{n}.json").is_file()}


def platform():
    """The JAX platform of the default device: 'cpu', 'gpu' or 'tpu'."""
    return jax.devices()[0].platform


def add_output_args(parser, name):
    """--out-dir (default benchmarks/results) and --name (default <name>_<platform>); --force comes with
    cli.add_config_args."""
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the JSON and PNGs go "
                        "(default benchmarks/results)")
    parser.add_argument("--name", help=f"file name stem (default {name}_<platform>)")


def add_phases_arg(parser, what):
    """--phases: the grid shifts averaged in `what` (stylize's choices, transformer.PHASES; default: stylize's for
    theta's resampling, transformer.phases_for)."""
    parser.add_argument("--phases", type=int, choices=sorted(transformer.PHASES),
                        help=f"grid shifts averaged in {what} (default: stylize's for theta's resampling; 1: the raw "
                        "network output)")


def output_paths(args, name, suffixes):
    """{suffix: Path} of <out-dir>/<stem><suffix> for each suffix (e.g. '.json', '_loss.png'); a UserError if
    one exists and --force is not given."""
    stem = args.name or f"{name}_{platform()}"
    paths = {s: Path(args.out_dir) / f"{stem}{s}" for s in suffixes}
    outputs.check(paths.values(), force=args.force)
    return paths


def write_json(path, figures):
    """Write {environment(): device, versions, date, command; **figures} to `path` (JSON); returns that
    record as read back (plain JSON types)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**environment(), **figures}, indent=2, default=float) + "\n")
    return json.loads(path.read_text())


def load_theta(path):
    """A theta checkpoint: (params, label), label = {path, iterations, content_size, style_size, styles,
    mode, vgg, vgg_sha256, created, resampling} from its meta.json (None where it does not say). UserError if `path` is
    not a theta checkpoint."""
    params, meta = checkpoints.load_model(path, kinds=("theta",))
    settings = meta.get("settings") or {}
    config = settings.get("config") or {}
    data_cfg = config.get("data") or {}
    theta_vgg = meta.get("vgg") or {}
    label = {"path": str(path), "iterations": settings.get("iterations"),
             "content_size": data_cfg.get("content_size"), "style_size": data_cfg.get("style_size"),
             "styles": data_cfg.get("styles"), "mode": config.get("mode"),
             "vgg": theta_vgg.get("source"), "vgg_sha256": theta_vgg.get("sha256"), "created": meta.get("created"),
             "resampling": checkpoints.resampling(meta)}
    return params, label


def warn_vgg_mismatch(label, vgg):
    """Warn on stderr when theta (its `load_theta` label) was meta-trained with other VGG weights than `vgg`."""
    if label.get("vgg_sha256") and label["vgg_sha256"] != vgg.sha256:
        print(f"warning: theta was meta-trained with {label['vgg']} VGG weights, this run uses {vgg.source}",
              file=sys.stderr)


def theta_title(label):
    """A line naming a theta for plot titles: 'theta <path> (<iterations> it., <size> px)'."""
    parts = [f"{label['iterations']} it." if label.get("iterations") is not None else None,
             f"{label['content_size']} px" if label.get("content_size") else None]
    detail = ", ".join(p for p in parts if p)
    return f"theta {label['path']}" + (f" ({detail})" if detail else "")


def snapshot_steps(text, steps):
    """Parse '--snapshots 0,50,100,200' into sorted unique ints in [0, steps]; None -> 0, steps/4, steps/2,
    steps. UserError on anything else."""
    if text is None:
        return sorted({0, steps // 4, steps // 2, steps})
    try:
        values = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        raise UserError(f"--snapshots {text!r}: give comma-separated step numbers, e.g. 0,50,100,200") from None
    if not values or values[0] < 0 or values[-1] > steps:
        raise UserError(f"--snapshots {text!r}: steps must lie between 0 and --steps ({steps})")
    return values


def titled(image, text, height=TITLE_HEIGHT):
    """`image` (H, W, 3) with a white strip of `height` px above it carrying `text` (clipped to the width)."""
    image = np.asarray(image, np.float32)
    strip = Image.new("RGB", (image.shape[1], height), "white")
    ImageDraw.Draw(strip).text((2, 1), text, fill="black", font=ImageFont.load_default(height - 3))
    return np.concatenate([np.asarray(strip, np.float32) / 255.0, image], axis=0)


def comparison_grid(rows):
    """rows: [(row title, [(cell title, image (H, W, 3)), ...]), ...] -> one titled grid (H', W', 3), a row each."""
    built = [titled(images.hstack([titled(im, t) for t, im in cells]), title) for title, cells in rows]
    return images.grid(built, nrow=1, height=max(r.shape[0] for r in built))


def stylized_loss(vgg, outputs, contents, grams, weights=DEFAULT_WEIGHTS):
    """Eq. 4 through `vgg` (a `vgg16.VGG`) of finished stylizations `outputs` of `contents`, both (B, H, W, 3),
    against style Grams
    (layer -> (1, C, C)): {"loss", "content", "style"} floats. The one measure fig6, fig7 and quality
    report, whatever produced the outputs (a network or pixel optimization)."""
    total, parts = _perceptual_loss(vgg, np.asarray(outputs, np.float32), np.asarray(contents, np.float32), grams,
                                    weights=weights)
    return {"loss": float(total), "content": float(parts["content"]), "style": float(parts["style"])}


@functools.partial(jax.jit, static_argnames=("weights",))
def _perceptual_loss(vgg, outputs, contents, grams, *, weights):
    return losses.perceptual_loss(vgg, outputs, grams, contents=contents, weights=weights)
