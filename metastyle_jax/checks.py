"""Checks of what a command is asked to do, made before the work starts: image sides, learning rates, output
names, and the memory a compiled program needs. Each raises a one-line UserError."""

import math
import os

from metastyle_jax import outputs
from metastyle_jax.errors import UserError

MAX_SIDE = 8192  # the longest image side any command accepts (one float32 image at the cap: 0.8 GB)
MEMORY_FRACTION = 0.9  # of the memory free when a program is about to run that it may need


def check_side(flag, value, low=16):
    """UserError unless an image side given by `flag` lies in [low, MAX_SIDE]."""
    if not low <= value <= MAX_SIDE:
        raise UserError(f"{flag} must be between {low} and {MAX_SIDE} px, not {value}")


def free_memory():
    """Bytes that can still be allocated where JAX computes: the accelerator's free memory, else the host's
    MemAvailable (None where neither is known)."""
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(nbytes, what, hint):
    """UserError, before anything is allocated, if `what` needs more than MEMORY_FRACTION of the free memory;
    `hint` says how to need less. METASTYLE_MEMORY_CHECK=0 skips the check."""
    free = free_memory()
    if os.environ.get("METASTYLE_MEMORY_CHECK", "1") == "0" or free is None or nbytes <= MEMORY_FRACTION * free:
        return
    raise UserError(f"{what} needs about {outputs.human_bytes(nbytes)} and {outputs.human_bytes(free)} is free: {hint} "
                    "(METASTYLE_MEMORY_CHECK=0 tries anyway)")


def program_bytes(compiled):
    """The memory a compiled JAX program needs to run (its arguments, outputs and temporaries, from XLA's
    memory analysis), 0 where the backend does not report it."""
    m = compiled.memory_analysis()
    if m is None:
        return 0
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def check_lr(flag, value):
    """UserError unless learning rate `value` (of `flag`) is finite and positive."""
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{flag} must be a finite number above 0, not {value}")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_image_suffix(path):
    """Raise a UserError unless `path` names a PNG or JPEG file."""
    if os.path.splitext(str(path))[1].lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{path}: output images must end in {', '.join(IMAGE_SUFFIXES)}")
