"""The package as a user installs it: a wheel (not this checkout), run where no checkout is beside it."""

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory, real_vgg):
    """The wheel of this checkout, unpacked as site-packages would hold it; the default VGG weights converted once."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("building the wheel offline needs setuptools in this environment")
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root), str(ROOT)], check=True, capture_output=True)
    (wheel,) = root.glob("metastyle_jax-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(root / "site")
    return root


def _run(site, *args):
    """`python args` from the unpacked wheel, in a folder with no checkout, VGG weights from this session."""
    env = dict(os.environ, PYTHONPATH=str(site / "site"),
               METASTYLE_VGG_DIR=str(ROOT / "vgg_weights"), METASTYLE_CACHE=str(site / "cache"))
    work = site / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True)


def test_the_wheel_carries_its_configs_models_and_paintings(site):
    out = _run(site, "-c", "import metastyle_jax, metastyle_jax.config as c; print(metastyle_jax.__file__); "
                           "print(c.CONFIG_DIR); print(c.load('metastyle').outer_lr)")
    assert out.returncode == 0, out.stderr
    package, configs, lr = out.stdout.split()
    assert Path(package).is_relative_to(site / "site") and Path(configs) == site / "site" / "metastyle_jax" / "configs"
    assert float(lr) == 1e-3
    err = _run(site, "-m", "metastyle_jax.train", "--config", "metastyle", "--set", "mode=maml", "--workdir", "w")
    assert err.returncode == 2 and "mode must be one of" in err.stderr, err.stderr  # the config was found


def test_the_wheel_installs_the_metastyle_command(site):
    (entry_points,) = (site / "site").glob("metastyle_jax-*.dist-info/entry_points.txt")
    assert "metastyle = metastyle_jax.commands:main" in entry_points.read_text()


def test_a_small_adaptation_from_the_wheel(site):
    out = _run(site, "-m", "metastyle_jax.adapt", "--style", "embedded:wave", "--size", "32", "--style-size", "32",
               "--batch-size", "1", "--steps", "2", "--eval-every", "0", "--out", "wave")
    assert out.returncode == 0, out.stderr
    assert (site / "work" / "wave" / "meta.json").is_file() and (site / "work" / "wave_preview.png").is_file()


def test_the_jax_floor_provides_every_jax_api_the_package_calls():
    """pyproject's jax floor is at least the release with every jax API the code calls (jax.lax.pcast first
    ships in jax 0.8.2, read from the 0.8.1 and 0.8.2 wheels), and the installed jax meets it."""
    import re

    import jax
    from packaging.version import Version

    floor = re.search(r'"jax>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert Version(floor) >= Version("0.8.2") and Version(jax.__version__) >= Version(floor)
    for name in ("lax.pcast", "typeof", "shard_map", "ffi.include_dir", "ffi.ffi_call", "ffi.register_ffi_target",
                 "ffi.pycapsule", "export.export"):
        owner = jax
        for part in name.split("."):
            owner = getattr(owner, part)
