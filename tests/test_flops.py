"""benchmarks/flops.py: the analytic count of the transformer's convolutions against XLA's cost analysis."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not put the repository on the path
    sys.path.insert(0, str(REPO))

import jax

from benchmarks import flops


def test_analytic_formula_by_hand():
    # 307,584 FLOPs per pixel: conv1 15552 + conv2 9216 + conv3 9216 + 10 res convs 184320
    # + deconv1 36864 + deconv2 36864 + deconv3 15552
    assert flops.stylize_conv_flops(256, 256) == 307_584 * 256 * 256
    assert flops.stylize_conv_flops(64, 32, batch=3) == 3 * 307_584 * 64 * 32
    assert flops.vgg_conv_flops(256, 256) == pytest.approx(36.465278976e9)


@pytest.mark.parametrize("size", [32, 48])
def test_analytic_count_matches_xla_cost_analysis(theta, size):
    compiled, _ = flops.stylize_compiled(theta, size)
    xla = flops.xla_flops(compiled)
    analytic = flops.stylize_conv_flops(size, size, cpu_program=jax.default_backend() == "cpu")
    # XLA also counts bias, instance norm, ReLU and sigmoid: 0.74% on top of the convolutions
    assert analytic < xla < 1.01 * analytic


def test_achieved_fraction_of_peak():
    got = flops.achieved(989e12, 2.0)
    assert got["achieved_tflops"] == pytest.approx(494.5)
    assert got["fraction_of_peak"]["h100_sxm_bf16"] == pytest.approx(0.5)
    assert got["fraction_of_peak"]["h100_sxm_fp32"] == pytest.approx(494.5 / 67)
