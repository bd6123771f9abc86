"""Style interpolation (section 5.3): a convex combination of the parameters of adapted models.

    python -m metastyle_jax.interpolate --models A B [C ...] --content IMG [--weights 1,0 0.5,0.5 0,1] --out STRIP.png

Each weight vector (one weight per model, non-negative, summing to 1) gives the network sum_k w_k * w_{s_k},
which stylizes the content image; the strip shows the content image, then one picture per weight vector.
Without --weights: 5 evenly spaced vectors from A to B (and on to C, ...), A and B included.
"""

import sys
from pathlib import Path

import jax
import numpy as np

from metastyle_jax import checkpoints, checks, data, images, outputs, stylize
from metastyle_jax.errors import UserError

SUM_TOLERANCE = 1e-4


def combine(models, weights):
    """sum_k weights[k] * models[k] over params pytrees of equal structure, float32 leaves.

    A one-hot weight vector returns that model's parameters exactly (1 * x + 0 * y == x in floating point).
    """
    w = [np.float32(x) for x in weights]

    def mix(*leaves):
        out = w[0] * np.asarray(leaves[0], np.float32)
        for wk, leaf in zip(w[1:], leaves[1:]):
            out = out + wk * np.asarray(leaf, np.float32)
        return out

    return jax.tree_util.tree_map(mix, *models)


def check_weights(weights, n_models):
    """`weights` as a float tuple, or a UserError unless it is a convex combination of `n_models` models."""
    w = tuple(float(x) for x in weights)
    if len(w) != n_models:
        raise UserError(f"weight vector {','.join(map(str, weights))} has {len(w)} weights for {n_models} models")
    if any(not np.isfinite(x) or x < 0 for x in w) or abs(sum(w) - 1.0) > SUM_TOLERANCE:
        raise UserError(f"weights {','.join(f'{x:g}' for x in w)} are not a convex combination: each must be "
                        "at least 0 and together they must sum to 1")
    return w


def parse_weights(texts, n_models):
    """Weight vectors from the command line -> list of tuples. Each text is a comma-separated vector
    ("0.25,0.75"); n_models plain numbers ("0.25 0.75") are one vector. Default: a sweep through the models."""
    if not texts:
        return sweep(n_models)
    if len(texts) == n_models and not any("," in t for t in texts):
        texts = [",".join(texts)]
    vectors = []
    for text in texts:
        try:
            values = [float(x) for x in text.split(",")]
        except ValueError:
            raise UserError(f"--weights {text!r}: write each vector as comma-separated numbers, e.g. 0.3,0.7")
        vectors.append(check_weights(values, n_models))
    return vectors


def sweep(n_models, per_segment=4):
    """Weight vectors from model 0 to model 1, then on to model 2, ...: `per_segment` steps per pair."""
    vectors = []
    for k in range(n_models - 1):
        for t in np.linspace(0.0, 1.0, per_segment + 1)[: per_segment + (k == n_models - 2)]:
            w = np.zeros(n_models)
            w[k], w[k + 1] = 1.0 - t, t
            vectors.append(tuple(float(x) for x in w))
    return vectors


def strip(models, weight_vectors, content, resampling="nearest"):
    """The stylization of `content` (H, W, 3) by each combination: a list of (H, W, 3) images (one compiled
    network, the parameters are arguments; `resampling` the models' own)."""
    return [stylize.stylize(combine(models, w), [content], resampling=resampling)[0] for w in weight_vectors]


def write_strip(model_paths, weights, content_arg, out, size=None, save_model=None, force=False):
    """Stylize `content_arg` (a path or embedded:NAME, downscaled to `size`) by the mix of the adapted models at
    `model_paths` of each weight vector (`weights`: texts as `parse_weights` reads them; None: a sweep) and write
    the strip `out` (content first); with `save_model`, also the network of the single weight vector as an
    adapted checkpoint. Returns (content (H, W, 3), style names, weight vectors)."""
    if len(model_paths) < 2:
        raise UserError("--models needs at least two adapted checkpoints to interpolate between")
    if size is not None:
        checks.check_side("--size", size)
    checks.check_image_suffix(out)
    outputs.check([out, save_model], [checkpoints.resolve_model(m) for m in model_paths] + [content_arg], force)
    vectors = parse_weights(weights, len(model_paths))
    if save_model and len(vectors) != 1:
        raise UserError(f"--save-model needs exactly one weight vector, not {len(vectors)}")
    content = data.load_image_spec(content_arg, max_side=size)
    loaded = [checkpoints.load_model(m, kinds=("adapted",)) for m in model_paths]
    origins = {str((meta.get("settings") or {}).get("from_theta")) for _, meta in loaded}
    if len(origins) > 1:
        print("warning: these models were adapted from different starting points; their parameters may not "
              "interpolate smoothly", file=sys.stderr)
    kinds = {checkpoints.resampling(meta) for _, meta in loaded}
    if len(kinds) > 1:
        raise UserError(f"these models' networks resample differently ({', '.join(sorted(kinds))}): they cannot "
                        "be mixed")
    resampling = kinds.pop()
    models = [params for params, _ in loaded]
    styles = [(meta.get("settings") or {}).get("style") or Path(m).name for m, (_, meta) in zip(model_paths, loaded)]
    images.save_image(out, images.hstack([content] + strip(models, vectors, content, resampling)))
    if save_model:
        meta = checkpoints.model_meta("adapted", vgg=loaded[0][1].get("vgg"), resampling=resampling, styles=styles,
                                      interpolation_of=[str(m) for m in model_paths], weights=list(vectors[0]))
        checkpoints.save_model(Path(save_model).absolute(), combine(models, vectors[0]), meta,
                               force=force)  # Orbax needs an absolute path
    return content, styles, vectors


if __name__ == "__main__":  # python -m metastyle_jax.interpolate: the command line's `interpolate`
    from metastyle_jax import commands

    commands.run("interpolate")
