"""What every benchmark records beside its figures: device, versions, date and the exact command."""

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import jax

RESULTS = Path(__file__).resolve().parent / "results"


def environment():
    """Device name, JAX version, host, UTC date and the command line that produced a result."""
    dev = jax.devices()[0]
    return {"device": f"{dev.platform}: {getattr(dev, 'device_kind', '')}".strip(),
            "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
            "jax": jax.__version__, "python": platform.python_version(), "host": platform.machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python -m", sys.modules["__main__"].__spec__.name if
                                 getattr(sys.modules["__main__"], "__spec__", None) else sys.argv[0]]
                                + sys.argv[1:])}


def cpu_flags():
    """The bfloat16 and AMX flags of this CPU (Linux /proc/cpuinfo), e.g. ['amx_bf16', 'amx_tile', 'avx512_bf16']."""
    from metastyle_jax import onednn
    return sorted(w for w in onednn.cpu_flags() if "bf16" in w or w.startswith("amx"))


class Float64Numpy:
    """jax.numpy with float32 read as float64: the perceptual-loss modules pin float32 in places (instance norm
    statistics, Gram matrices, VGG output); in a float64 reference they must compute in float64."""

    def __getattr__(self, name):
        import jax.numpy as jnp
        return jnp.float64 if name == "float32" else getattr(jnp, name)


def compute_in_float64():
    """Switch this process to float64 for good: jax_enable_x64, and `Float64Numpy` in the transformer, VGG16
    and loss modules. For float64 reference workers only."""
    from metastyle_jax import losses, transformer, vgg16
    jax.config.update("jax_enable_x64", True)
    for module in (transformer, vgg16, losses):
        module.jnp = Float64Numpy()


def write_result(name, figures):
    """Write {environment..., figures} to benchmarks/results/<name>.json and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**environment(), **figures}, indent=2, default=float) + "\n")
    return path
