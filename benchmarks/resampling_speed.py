"""What the antialiased network and grid-phase averaging cost at stylization, side by side in one run.

    python -m benchmarks.resampling_speed [--sizes 256 512 1024] [--phases 4] [--rounds 5] [--label LABEL]

`transformer.stylize_batch` of one random image per size, in float32 and (where oneDNN loads) bfloat16, for
both networks (`transformer.RESAMPLING`; the same parameters: the blurs have none) and the antialiased one averaged
over each of `--phases` (`stylize --phases`), compiled ahead; after one untimed call of each, `--rounds` rounds go
over every case in turn; medians, antialiased / nearest and phases N / 1. Writes
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
    p.add_argument("--phases", type=int, nargs="*", default=[4], choices=sorted(transformer.PHASES),
                   help="phase averagings of the antialiased network to time too (default 4)")
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
            cases = [(r, r, 1) for r in transformer.RESAMPLING]
            cases += [(f"antialiased_phases{n}", "antialiased", n) for n in args.phases if n > 1]
            for case, resampling, phases in cases:
                compiled = transformer.stylize_batch.lower(theta, x, dtype=dtype, resampling=resampling,
                                                           phases=phases).compile()
                calls[case] = lambda c=compiled, x=x: c(theta, x).block_until_ready()
            rows[f"{size}_{dtype}"] = (calls, None)
    times = cpu_speed.interleaved(rows, args.rounds)
    figures = {"rounds": args.rounds, "rows": {}}
    for row, rts in times.items():
        medians = {rt: float(np.median(s)) for rt, s in rts.items()}
        phases = {k: medians[k] / medians["antialiased"] for k in medians if k.startswith("antialiased_phases")}
        figures["rows"][row] = {"median_s": medians, "seconds": rts,
                                "antialiased_over_nearest": medians["antialiased"] / medians["nearest"],
                                **{f"{k}_over_antialiased": v for k, v in phases.items()}}
        print(f"{row}: nearest {medians['nearest']:.3g} s, antialiased {medians['antialiased']:.3g} s, "
              f"ratio {figures['rows'][row]['antialiased_over_nearest']:.2f}"
              + "".join(f"; {k} {v:.2f}x" for k, v in phases.items()))
    print(f"wrote {write_result(f'resampling_speed_{args.label}', figures)}")


if __name__ == "__main__":
    main()
