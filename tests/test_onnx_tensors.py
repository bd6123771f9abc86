"""metastyle_jax.onnx_tensors against models written by the onnx package itself."""

import numpy as np
import pytest

from metastyle_jax import onnx_tensors

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def model_bytes(tensors):
    return helper.make_model(helper.make_graph([], "g", [], [], initializer=tensors)).SerializeToString()


def test_every_storage_onnx_writes():
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((2, 3, 4)).astype(np.float32)
    got = onnx_tensors.initializers(model_bytes([
        helper.make_tensor("raw", TensorProto.FLOAT, raw.shape, raw.tobytes(), raw=True),
        helper.make_tensor("floats", TensorProto.FLOAT, [2, 2], [1.0, -2.5, 3.25, 1e-30]),
        helper.make_tensor("int64", TensorProto.INT64, [3], [1, -2, 2**40]),
        helper.make_tensor("int32", TensorProto.INT32, [2], [-5, 7]),
        helper.make_tensor("double", TensorProto.DOUBLE, [2], [0.1, -1e300]),
        helper.make_tensor("scalar", TensorProto.FLOAT, [], [4.0]),
    ]))
    np.testing.assert_array_equal(got["raw"], raw)
    np.testing.assert_array_equal(got["floats"], np.array([[1.0, -2.5], [3.25, 1e-30]], np.float32))
    np.testing.assert_array_equal(got["int64"], [1, -2, 2**40])
    assert got["int32"].dtype == np.int32 and got["int32"].tolist() == [-5, 7]
    assert got["double"].tolist() == [0.1, -1e300] and got["scalar"].shape == () and got["scalar"] == 4.0


@pytest.mark.parametrize("case", ["empty", "external", "truncated"])
def test_refuses_what_it_cannot_read(case):
    if case == "empty":
        data = b""
    elif case == "external":
        t = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
        t.data_location = TensorProto.EXTERNAL
        data = model_bytes([t])
    else:
        data = model_bytes([helper.make_tensor("w", TensorProto.FLOAT, [64], np.ones(64, "f4").tobytes(),
                                               raw=True)])[:-40]
    with pytest.raises(onnx_tensors.ONNXError):
        onnx_tensors.initializers(data)
