"""Stylize images with a MetaStyle network (an adapted model, or theta for the style-neutral image).

    python -m metastyle_jax.stylize --model CKPT --content IMAGE_OR_DIR --out PATH [--size N]

A folder is processed recursively, images of the same size batched through one compiled function;
the outputs mirror the folder's layout under --out as PNG files.

    python -m metastyle_jax.stylize --model CKPT --video IN.mp4|FRAMES_DIR --out OUT.mp4|FRAMES_DIR

stylizes a video frame by frame (see `video`).
"""

import sys
import time
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import checkpoints, cli, images, transformer


@jax.jit
def stylize_batch(params, batch):
    """M(batch; params): (B, H, W, 3) in [0, 1] -> (B, H, W, 3) in [0, 1]."""
    return transformer.apply(params, batch)


def stylize(params, pictures, batch_size=8):
    """Stylize a list of (H_i, W_i, 3) images; images of equal shape share batches. Returns a list."""
    by_shape = defaultdict(list)
    for i, img in enumerate(pictures):
        by_shape[img.shape].append(i)
    out = [None] * len(pictures)
    for idx in by_shape.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            result = np.asarray(stylize_batch(params, jnp.stack([pictures[i] for i in chunk])))
            for i, r in zip(chunk, result):
                out[i] = r
    return out


def load_params(model, seed=0):
    """Params and meta from a model checkpoint; with no model, an untrained network (with a warning)."""
    if model is None:
        print("warning: no --model given: using an UNTRAINED network (random weights); its output is "
              "not a stylization. Adapt one with `python -m metastyle_jax.adapt`.", file=sys.stderr)
        return transformer.init_params(jax.random.key(seed)), {"kind": "untrained"}
    return checkpoints.load_model(model)


def plan_outputs(content, out):
    """[(input path, output path)] for a file or a folder of images."""
    content, out = Path(content), Path(out)
    if not content.exists():
        raise cli.UserError(f"content not found: {content}")
    if content.is_dir():
        files = images.list_images(content)
        if not files:
            raise cli.UserError(f"no images found in {content}")
        if out.exists() and not out.is_dir():
            raise cli.UserError(f"--out {out} must be a folder when --content is a folder")
        return [(f, (out / Path(f).relative_to(content)).with_suffix(".png")) for f in files]
    cli.check_image_suffix(out)
    return [(content, out)]


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.stylize", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model checkpoint (adapted, or theta for the style-neutral image); "
                   "none: an untrained network")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--content", help="an image or a folder of images")
    source.add_argument("--video", help="a video file, or a folder of frames, to stylize frame by frame")
    p.add_argument("--out", required=True, help="output image (.png/.jpg), or a folder for a folder; with --video "
                   "a video file (.mp4, .mkv, .mov, .avi) or a folder of frames")
    p.add_argument("--fps", type=float, help="with --video: the output frame rate (default: the input video's, "
                   "25 for a folder of frames)")
    p.add_argument("--size", type=int, help="resize so the longer side is N px (default: keep the size)")
    p.add_argument("--batch-size", type=int, default=8, help="images per compiled call (default 8)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = p.parse_args(argv)
    if args.size is not None and args.size < 16:
        raise cli.UserError("--size must be at least 16 px")
    if args.batch_size < 1:
        raise cli.UserError("--batch-size must be at least 1")
    if args.video is not None:
        return stylize_video(args)

    plan = plan_outputs(args.content, args.out)
    for _, dst in plan:
        cli.refuse_overwrite(dst, args.force)
    params, meta = load_params(args.model)

    loaded, skipped = [], []
    for src, dst in plan:
        try:
            loaded.append((images.load_image(src, max_side=args.size), dst))
        except cli.UserError as e:
            if len(plan) == 1:
                raise
            skipped.append(f"{src}: {e}")
    if not loaded:
        raise cli.UserError(f"none of the {len(plan)} images could be read")
    t0 = time.perf_counter()
    results = stylize(params, [img for img, _ in loaded], args.batch_size)
    seconds = time.perf_counter() - t0
    for result, (_, dst) in zip(results, loaded):
        images.save_image(dst, result)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    where = loaded[0][1] if len(loaded) == 1 else args.out
    print(f"stylized {len(loaded)} image(s) with the {meta.get('kind')} network in {seconds:.2f} s "
          f"(compilation included) -> {where}" + (f"; skipped {len(skipped)}" if skipped else ""))


def stylize_video(args):
    """The --video path of `main`: frames through one compiled function, then a temporal-consistency line."""
    from metastyle_jax import video

    if args.fps is not None and not args.fps > 0:
        raise cli.UserError("--fps must be positive")
    video.output_kind(args.out)
    cli.refuse_overwrite(args.out, args.force)
    if not Path(args.video).exists():
        raise cli.UserError(f"video not found: {args.video}")
    params, meta = load_params(args.model)
    t0 = time.perf_counter()
    stats = video.stylize_video(params, args.video, args.out, args.size, args.batch_size, args.fps, args.force)
    seconds = time.perf_counter() - t0
    print(f"stylized {stats['frames']} frames ({stats['size'][0]}x{stats['size'][1]}, {stats['fps']:g} fps) with "
          f"the {meta.get('kind')} network in {seconds:.1f} s ({stats['frames'] / seconds:.1f} frames/s, "
          f"compilation included) -> {args.out}")
    print(video.summary(stats))


if __name__ == "__main__":
    cli.run(main)
