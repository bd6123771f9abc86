"""Export an adapted network for use without this package: StableHLO (jax.export), SavedModel, ONNX.

    python -m metastyle_jax.export --model CKPT --format stablehlo|savedmodel|onnx --out DIR
                                   [--size H W | --dynamic] [--platforms cpu,cuda] [--force]

The exported function takes an NHWC float32 RGB batch in [0, 1] and returns the stylized batch, same
shape, in [0, 1]; the parameters are constants inside the artefact. The batch size is always free; with
--dynamic (the default) H and W are free too (each at least MIN_SIDE), with --size they are fixed.
DIR receives the artefact (`model.stablehlo`, `saved_model/` or `model.onnx`) and `card.json`
(layout, range, shapes, how to load it, the checkpoint's meta and a measured check against JAX).
"""

import datetime
import functools
import importlib
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import __version__, checkpoints, outputs, transformer
from metastyle_jax.errors import UserError

FORMATS = ("stablehlo", "savedmodel", "onnx")
ARTEFACTS = {"stablehlo": "model.stablehlo", "savedmodel": "saved_model", "onnx": "model.onnx"}
MIN_SIDE = 16
CHECK_TOLERANCE = 1e-4
ONNX_OPSET = 23
INPUT_NAME, OUTPUT_NAME = "image", "stylized"


def forward(params, resampling="nearest"):
    """The network with `params` (and its `resampling`) closed over: (B, H, W, 3) float32 in [0, 1] -> same
    shape in [0, 1].

    Equal to `transformer.apply(params, .)`, but written so it also traces with symbolic H and W: the
    network's own padding of H, W up to multiples of 4 branches on H % 4, which is unknown for a symbolic
    H; here the input is reflection-padded by a fixed 3 and sliced to 4 * ceil(H / 4) (the same pixels),
    so the network sees a multiple of 4, and the output is sliced back to H, W.
    """
    def stylize(images):
        b, h, w, c = images.shape
        hp, wp = 4 * ((h + 3) // 4), 4 * ((w + 3) // 4)
        padded = jnp.pad(images, ((0, 0), (0, 3), (0, 3), (0, 0)), mode="reflect")
        padded = jax.lax.slice(padded, (0, 0, 0, 0), (b, hp, wp, c))
        return jax.lax.slice(transformer.apply(params, padded, resampling=resampling), (0, 0, 0, 0), (b, h, w, c))

    return stylize


@functools.partial(jax.jit, static_argnames="resampling")
def reference(params, images, resampling="nearest"):
    """transformer.apply under jit, the JAX result artefacts are checked against: (B, H, W, 3) -> same."""
    return transformer.apply(params, images, resampling=resampling)


def input_spec(size=None):
    """The exported input as a ShapeDtypeStruct: (b, h, w, 3) with h, w >= MIN_SIDE, or (b, H, W, 3)."""
    from jax import export

    dims = "b, h, w, 3" if size is None else f"b, {size[0]}, {size[1]}, 3"
    constraints = [f"h >= {MIN_SIDE}", f"w >= {MIN_SIDE}"] if size is None else []
    return jax.ShapeDtypeStruct(export.symbolic_shape(dims, constraints=constraints), jnp.float32)


def export_stablehlo(params, size=None, platforms=("cpu",), resampling="nearest"):
    """Serialized jax.export.Exported bytes of `forward(params)` for `platforms`."""
    from jax import export

    exported = export.export(jax.jit(forward(params, resampling)), platforms=tuple(platforms))(input_spec(size))
    return bytes(exported.serialize())


def write_savedmodel(params, directory, size=None, platforms=("cpu",), resampling="nearest"):
    """A TF SavedModel in `directory` (jax2tf, StableHLO inside an XlaCallModule op); signature
    'serving_default' maps {'image': (B, H, W, 3)} to {'stylized': (B, H, W, 3)}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from jax.experimental import jax2tf

    constraints = [f"h >= {MIN_SIDE}", f"w >= {MIN_SIDE}"] if size is None else []
    dims = "(b, h, w, 3)" if size is None else f"(b, {size[0]}, {size[1]}, 3)"
    converted = jax2tf.convert(forward(params, resampling), polymorphic_shapes=[dims],
                               polymorphic_constraints=constraints, native_serialization_platforms=tuple(platforms), with_gradient=False)
    shape = [None, None, None, 3] if size is None else [None, size[0], size[1], 3]
    module = tf.Module()
    module.stylize = tf.function(lambda image: {OUTPUT_NAME: converted(image)}, autograph=False,
                                 input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)])
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.stylize})


def export_onnx(params, size=None, resampling="nearest"):
    """Serialized ONNX model bytes of `forward(params)` (jax2onnx); input 'image', output 'stylized'."""
    for name in ("jax2onnx", "onnx_ir"):  # it logs every optional plugin it cannot import
        logging.getLogger(name).setLevel(logging.ERROR)
    from jax2onnx import to_onnx

    model = to_onnx(forward(params, resampling), [input_spec(size)], model_name="metastyle_transformer",
                    opset=ONNX_OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    return model.SerializeToString()


def run_artefact(fmt, directory, images):
    """Run the artefact of format `fmt` in `directory` on (B, H, W, 3) float32 images; numpy output."""
    path = Path(directory) / ARTEFACTS[fmt]
    if fmt == "stablehlo":
        from jax import export
        return np.asarray(export.deserialize(bytearray(path.read_bytes())).call(images))
    if fmt == "savedmodel":
        import tensorflow as tf
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        return signature(**{INPUT_NAME: tf.constant(images)})[OUTPUT_NAME].numpy()
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def check_image(size=None, seed=0):
    """A (1, H, W, 3) test image: the fixed size, or 45 x 61 (not multiples of 4) for a dynamic export."""
    h, w = size if size is not None else (45, 61)
    return np.random.default_rng(seed).random((1, h, w, 3), dtype=np.float32)


HOW_TO_LOAD = {
    "stablehlo": "from jax import export; f = export.deserialize(bytearray(open('model.stablehlo', 'rb')"
                 ".read())); out = f.call(image)",
    "savedmodel": "import tensorflow as tf; f = tf.saved_model.load('saved_model').signatures"
                  "['serving_default']; out = f(image=tf.constant(image))['stylized']",
    "onnx": "import onnxruntime as ort; s = ort.InferenceSession('model.onnx'); "
            "out = s.run(['stylized'], {'image': image})[0]",
}


def model_card(fmt, size, platforms, source, meta, check):
    """The card.json dict: what the artefact computes, its tensors, how to load it, where it came from."""
    shape = ["b", "h", "w", 3] if size is None else ["b", size[0], size[1], 3]
    tensor = {"layout": "NHWC", "channels": "RGB", "dtype": "float32", "range": [0.0, 1.0], "shape": shape}
    return {
        "format": fmt, "artefact": ARTEFACTS[fmt],
        "computes": "MetaStyle TransformerNet (supplementary Table 1) with the checkpoint's parameters as "
                    "constants; any H, W (not only multiples of 4) are reflection-padded and cropped inside",
        "input": {"name": INPUT_NAME, **tensor}, "output": {"name": OUTPUT_NAME, **tensor},
        "dynamic": size is None, "min_side": MIN_SIDE if size is None else None,
        "platforms": list(platforms) if fmt != "onnx" else None,
        "onnx_opset": ONNX_OPSET if fmt == "onnx" else None,
        "how_to_load": HOW_TO_LOAD[fmt],
        "source_checkpoint": None if source is None else str(source), "source_meta": meta, "check": check,
        "exported_by": {"package": f"metastyle-jax {__version__}", "jax": jax.__version__,
                        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
    }


def write_artefact(fmt, params, directory, size=None, platforms=("cpu",), resampling="nearest"):
    """Write the artefact of format `fmt` of the network (`params`, `resampling`) into the existing `directory`."""
    path = Path(directory) / ARTEFACTS[fmt]
    if fmt == "stablehlo":
        path.write_bytes(export_stablehlo(params, size, platforms, resampling))
    elif fmt == "savedmodel":
        write_savedmodel(params, path, size, platforms, resampling)
    else:
        path.write_bytes(export_onnx(params, size, resampling))


def export_model(params, meta, fmt, out, size=None, platforms=("cpu",), source=None, force=False, check=True):
    """Export to directory `out` (artefact + card.json), written aside and moved into place; returns the card.

    With `check`, the artefact is run on a test image and compared with `reference`; a difference
    over CHECK_TOLERANCE aborts the export.
    """
    out, resampling = Path(out).absolute(), checkpoints.resampling(meta)
    outputs.check([out], force=force, nbytes=sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(params)))
    with outputs.staging_dir(out) as tmp:
        t0 = time.perf_counter()
        write_artefact(fmt, params, tmp, size, platforms, resampling)
        result = {"export_seconds": round(time.perf_counter() - t0, 2)}
        if check:
            image = check_image(size)
            diff = float(np.abs(run_artefact(fmt, tmp, image) - np.asarray(reference(params, image, resampling))).max())
            if not diff <= CHECK_TOLERANCE:
                raise UserError(f"the exported {fmt} artefact differs from the JAX network by {diff:.3g} "
                                f"(> {CHECK_TOLERANCE:g}) on a {image.shape} image; nothing written")
            result.update(image_shape=list(image.shape), max_abs_diff_vs_jax=diff, tolerance=CHECK_TOLERANCE)
        card = model_card(fmt, size, platforms, source, meta, result)
        (tmp / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        outputs.replace_dir(tmp, out)
    return card


def artefact_size(path):
    """Bytes of a file, or of all files under a directory."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_requirements(fmt):
    """Raise a UserError naming the missing packages if format `fmt` cannot be written here, or the package
    that is installed but fails to import."""
    needs = {"stablehlo": ["flatbuffers"], "savedmodel": ["tensorflow"],
             "onnx": ["jax2onnx", "onnx", "onnxruntime"]}.get(fmt, [])
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        how = "pip install flatbuffers" if missing == ["flatbuffers"] else "pip install -e '.[export]'"
        if "jax2onnx" in missing:  # its pin would downgrade orbax-checkpoint: installed without dependencies
            how += " && pip install --no-deps 'jax2onnx>=0.17'"
        raise UserError(f"--format {fmt} needs {', '.join(missing)}: {how}")
    for name in needs:
        try:
            importlib.import_module(name)
        except Exception as e:  # a broken install fails in its own ways (ImportError, AttributeError, ...)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"--format {fmt} needs {name}, which is installed but fails to import: {first}") \
                from None


def parse_platforms(text):
    """'cpu,cuda' -> ('cpu', 'cuda'); a UserError for unknown names."""
    known = ("cpu", "cuda", "rocm", "tpu")
    platforms = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in platforms if p not in known]
    if not platforms or bad:
        raise UserError(f"--platforms takes a comma-separated list of {', '.join(known)}, not {text!r}")
    return platforms


if __name__ == "__main__":  # python -m metastyle_jax.export: the command line's `export`
    from metastyle_jax import commands

    commands.run("export")
