"""What the antialiased network costs at stylization: nearest against antialiased, side by side in one run.

    python -m benchmarks.resampling_speed [--sizes 256 512 1024] [--rounds 5] [--label LABEL]

`transformer.stylize_batch` of one random image per size, in float32 and (where oneDNN loads) bfloat16, for
both networks (`transformer.RESAMPLING`; the same parameters: the blurs have none), compiled ahead; after one
untimed call of each, `--rounds` rounds go over every case in turn; medians, and antialiased / nearest. Writes
benchmarks/results/resampling_speed_<label>.json.
"""

import argparse

import jax
import numpy as np

from benchmarks import cpu_speed
from benchmarks.common import write_result
from metastyle_jax import transformer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="image sides (default 256 512 1024)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--label", default=jax.default_backend(), help="results go to resampling_speed_<label>.json")
    args = p.parse_args(argv)
    theta = jax.device_get(transformer.init_params(jax.random.key(0), 16))
    r = np.random.default_rng(0)
    rows = {}
    for size in args.sizes:
        x = cpu_speed.images(r, 1, size, size, 3)
        for _, dtype in cpu_speed.jax_dtypes():
            calls = {}
            for resampling in transformer.RESAMPLING:
                compiled = transformer.stylize_batch.lower(theta, x, dtype=dtype, resampling=resampling).compile()
                calls[resampling] = lambda c=compiled, x=x: c(theta, x).block_until_ready()
            rows[f"{size}_{dtype}"] = (calls, None)
    times = cpu_speed.interleaved(rows, args.rounds)
    figures = {"rounds": args.rounds, "rows": {}}
    for row, rts in times.items():
        medians = {rt: float(np.median(s)) for rt, s in rts.items()}
        figures["rows"][row] = {"median_s": medians, "seconds": rts,
                                "antialiased_over_nearest": medians["antialiased"] / medians["nearest"]}
        print(f"{row}: nearest {medians['nearest']:.3g} s, antialiased {medians['antialiased']:.3g} s, "
              f"ratio {figures['rows'][row]['antialiased_over_nearest']:.2f}")
    print(f"wrote {write_result(f'resampling_speed_{args.label}', figures)}")


if __name__ == "__main__":
    main()
