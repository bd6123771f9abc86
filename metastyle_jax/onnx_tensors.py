"""The initializer tensors of an ONNX model, read from its protobuf bytes without the `onnx` package.

Only what a weight file needs: ModelProto.graph (field 7) -> GraphProto.initializer (field 5) -> TensorProto's
dims (1), data_type (2), float_data (4), int32_data (5), int64_data (7), name (8), raw_data (9) and
double_data (10). Tensors stored outside the file (external data) are refused.
"""

import numpy as np

# TensorProto.DataType -> numpy little-endian dtype, for the types weight files hold
DTYPES = {1: "<f4", 2: "u1", 3: "i1", 6: "<i4", 7: "<i8", 10: "<f2", 11: "<f8"}


class ONNXError(ValueError):
    """The bytes are not an ONNX model this reader understands."""


def _varint(buf, i):
    """(value, next offset) of the base-128 varint at `buf[i]`."""
    value = shift = 0
    while True:
        if i >= len(buf):
            raise ONNXError("truncated varint")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ONNXError("varint longer than 64 bits")


def fields(buf, start=0, end=None):
    """The fields of the protobuf message in buf[start:end]: (number, wire type, value), value an int for
    varint and fixed-width fields and a (start, end) span of `buf` for length-delimited ones."""
    i, end = start, len(buf) if end is None else end
    while i < end:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            value, i = int.from_bytes(buf[i:i + size], "little"), i + size
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = (i, i + size), i + size
        else:
            raise ONNXError(f"unsupported protobuf wire type {wire}")
        if i > end:
            raise ONNXError("truncated message")
        yield number, wire, value


def _tensor(buf, start, end):
    """(name, numpy array) of the TensorProto in buf[start:end]."""
    dims, dtype, name, raw, packed = [], None, "", None, {}
    for number, wire, value in fields(buf, start, end):
        if number == 1:
            dims.extend([value] if wire == 0 else _packed_varints(buf, *value))
        elif number == 2:
            dtype = value
        elif number == 8:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == 9:
            raw = buf[value[0]:value[1]]
        elif number in (4, 5, 7, 10) and wire == 2:
            packed[number] = buf[value[0]:value[1]]
        elif number == 14 and value == 1:
            raise ONNXError("a tensor stored as external data")
    if dtype not in DTYPES:
        raise ONNXError(f"tensor {name!r} has unsupported data type {dtype}")
    if raw is not None:
        array = np.frombuffer(raw, DTYPES[dtype])
    elif packed:
        (number, data), = packed.items()
        array = (np.frombuffer(data, {4: "<f4", 10: "<f8"}[number]) if number in (4, 10)
                 else np.asarray([v - (1 << 64) if v >> 63 else v for v in _packed_varints(data, 0, len(data))],
                                 np.int64)).astype(DTYPES[dtype])
    else:
        array = np.zeros(0, DTYPES[dtype])
    if array.size != int(np.prod(dims, dtype=np.int64)):
        raise ONNXError(f"tensor {name!r}: {array.size} values for shape {tuple(dims)}")
    return name, array.reshape(dims).astype(array.dtype.newbyteorder("="))


def _packed_varints(buf, start, end):
    """The varints of a packed repeated field, buf[start:end]."""
    out, i = [], start
    while i < end:
        value, i = _varint(buf, i)
        out.append(value)
    return out


def initializers(data):
    """{name: numpy array} of the initializers of an ONNX model given as bytes."""
    buf = memoryview(data)
    graphs = [value for number, wire, value in fields(buf) if number == 7 and wire == 2]
    if not graphs:
        raise ONNXError("no graph (not an ONNX model)")
    return dict(_tensor(buf, *value) for number, wire, value in fields(buf, *graphs[-1])
                if number == 5 and wire == 2)
