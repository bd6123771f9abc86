"""The judge's checkerboard ratio and blob share of a model's outputs at several stylization sizes.

    python -m benchmarks.checkerboard_scale [--models theta starry_night wave udnie] [--sizes 128 256 384 512]
                                            [--photos astronaut chelsea | all] [--name NAME]

Says whether a model draws the 2- and 4-pixel checkerboard at the size it was trained at, or only when it is
run larger; `theta` gives the style-neutral image M(I_c; theta). Writes benchmarks/results/checkerboard_scale.json
(checkerboard_scale_NAME.json with --name) and prints each model's mean and maximum per size.
"""

import argparse

import numpy as np

from benchmarks import common, picture_quality
from metastyle_jax import checkpoints, data, stylize


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.checkerboard_scale", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["theta", "starry_night", "wave", "udnie"])
    p.add_argument("--photos", nargs="+", default=["astronaut", "chelsea"], help="embedded photos, or all")
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 256, 384, 512])
    p.add_argument("--name", default="", help="the result's name: checkerboard_scale_NAME.json")
    args = p.parse_args(argv)
    photos = data.EMBEDDED_PHOTOS if args.photos == ["all"] else args.photos
    rows = []
    for model in args.models:
        params, meta = checkpoints.load_model(model)
        for name in photos:
            for size in args.sizes:
                photo = data.load_image_spec(f"embedded:{name}", max_side=size)
                out = np.asarray(stylize.stylize(params, [photo], resampling=checkpoints.resampling(meta), phases=1)[0])
                rows.append({"model": model, "photo": name, "size": size,
                             "checkerboard": picture_quality.checkerboard_ratio(out),
                             "blob_share": picture_quality.blob_share(photo, out)})
                print(f"{model} {name} {size} px: checkerboard {rows[-1]['checkerboard']:.1f}, "
                      f"blob share {100 * rows[-1]['blob_share']:.1f}%", flush=True)
    for model in args.models:
        for size in args.sizes:
            r = [row["checkerboard"] for row in rows if row["model"] == model and row["size"] == size]
            print(f"{model} at {size} px: checkerboard mean {np.mean(r):.1f}, max {np.max(r):.1f} ({len(r)} photos)")
    print(common.write_result("checkerboard_scale" + (f"_{args.name}" if args.name else ""),
                              {"rows": rows}))


if __name__ == "__main__":
    main()
