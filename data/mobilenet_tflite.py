#!/usr/bin/env python3
"""MobileNet v1's weights for neural art (docs/neural_art.md, "Data"): Coral's uint8-quantised
embedding extractor (.tflite) dequantised to float32 arrays in the .npz layout that
`--features` reads (docs/formats.md).

Usage: python3 data/mobilenet_tflite.py MODEL.tflite OUT.npz

The .tflite file is a FlatBuffer (TensorFlow Lite's schema.fbs); this reads only the fields the
conversion needs. Each convolution's weights become w = scale·(q − zero point) and its bias
b = scale·q, computed in float64 and stored as float32, in the layouts [out, in, kh, kw]
(convolution) and [channels, 1, kh, kw] (depthwise), followed by the layer table. The .npz is
written with fixed timestamps and zip64 local headers, so that the same model gives the same
bytes with any Python 3 and numpy (data/neural_art.sha256 checks them).
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from numpy.lib import format as npy_format

# TensorFlow Lite's enums, as schema.fbs numbers them.
CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D = 3, 4, 1
RELU6, SAME = 3, 0
TENSOR_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8, 4: np.int64}


class Table:
    """A FlatBuffer table at `pos` in `buf`: fields by their index in the schema."""

    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_len = struct.unpack_from("<H", buf, vtable)[0]
        self.vtable = vtable

    def _field(self, index):
        at = 4 + 2 * index
        if at >= self.vtable_len:
            return 0
        return struct.unpack_from("<H", self.buf, self.vtable + at)[0]

    def scalar(self, index, fmt, default=0):
        offset = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + offset)[0] if offset else default

    def _target(self, index):
        offset = self._field(index)
        if not offset:
            return None
        at = self.pos + offset
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, index):
        at = self._target(index)
        return None if at is None else Table(self.buf, at)

    def vector(self, index, dtype):
        """A vector of scalars as a numpy array (empty where the field is absent)."""
        at = self._target(index)
        if at is None:
            return np.zeros(0, dtype)
        n = struct.unpack_from("<I", self.buf, at)[0]
        return np.frombuffer(self.buf, np.dtype(dtype).newbyteorder("<"), n, at + 4)

    def tables(self, index):
        at = self._target(index)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        slots = (at + 4 + 4 * i for i in range(n))
        return [Table(self.buf, s + struct.unpack_from("<I", self.buf, s)[0]) for s in slots]

    def string(self, index):
        return bytes(self.vector(index, np.uint8)).decode()


def quantisation(tensor):
    """(scale, zero point) of a tensor quantised per tensor."""
    q = tensor.table(4)
    scale, zero = (q.vector(2, np.float32), q.vector(3, np.int64)) if q else ((), ())
    if len(scale) != 1 or len(zero) != 1:
        raise ValueError(f"tensor {tensor.string(3)!r} is not quantised per tensor")
    return float(scale[0]), int(zero[0])


def tensor_values(model, tensor):
    shape = tuple(int(d) for d in tensor.vector(0, np.int32))
    kind = tensor.scalar(1, "b")
    if kind not in TENSOR_TYPES:
        raise ValueError(f"tensor {tensor.string(3)!r} has unsupported type {kind}")
    data = model.tables(4)[tensor.scalar(2, "I")].vector(0, np.uint8)
    return np.frombuffer(data.tobytes(), np.dtype(TENSOR_TYPES[kind]).newbyteorder("<")).reshape(shape)


def convert(buf):
    """The arrays of the .npz, in order, from the .tflite file's bytes."""
    if buf[4:8] != b"TFL3":
        raise ValueError("not a TensorFlow Lite model (no TFL3 identifier)")
    model = Table(buf, struct.unpack_from("<I", buf, 0)[0])
    (graph,) = model.tables(2)
    tensors, codes = graph.tables(0), model.tables(1)
    arrays, layers = {}, []
    for op in graph.tables(3):
        code = codes[op.scalar(0, "I")]
        kind = max(code.scalar(0, "b"), code.scalar(3, "i"))
        if kind == AVERAGE_POOL_2D:
            continue
        if kind not in (CONV_2D, DEPTHWISE_CONV_2D):
            raise ValueError(f"operator {kind} is neither a convolution nor the final pooling")
        x, w, b = (tensors[int(i)] for i in op.vector(1, np.int32)[:3])
        y = tensors[int(op.vector(2, np.int32)[0])]
        # Conv2DOptions: padding, stride_w, stride_h, activation, dilation_w, dilation_h;
        # DepthwiseConv2DOptions: the same with depth_multiplier before the activation.
        options = op.table(4)
        depthwise = int(kind == DEPTHWISE_CONV_2D)
        stride_w, stride_h = options.scalar(1, "i"), options.scalar(2, "i")
        activation = options.scalar(3 + depthwise, "b")
        dilations = options.scalar(4 + depthwise, "i", 1), options.scalar(5 + depthwise, "i", 1)
        if stride_w != stride_h:
            raise ValueError("a convolution with different strides across and down")
        if options.scalar(0, "b") != SAME or dilations != (1, 1):
            raise ValueError("a convolution without SAME padding, or dilated")
        if depthwise and options.scalar(3, "i") != 1:
            raise ValueError("a depthwise convolution with a depth multiplier other than 1")
        w_scale, w_zero = quantisation(w)
        b_scale, b_zero = quantisation(b)
        weights = w_scale * (tensor_values(model, w).astype(np.float64) - w_zero)
        bias = b_scale * (tensor_values(model, b).astype(np.float64) - b_zero)
        # [out, kh, kw, in] -> [out, in, kh, kw]; depthwise [1, kh, kw, c] -> [c, 1, kh, kw].
        weights = weights.transpose((0, 3, 1, 2) if kind == CONV_2D else (3, 0, 1, 2))
        name = f"conv{len(layers):02d}"
        arrays[name + "_w"] = weights.astype(np.float32)
        arrays[name + "_b"] = bias.astype(np.float32)
        layers.append((depthwise, stride_h, int(activation == RELU6),
                       int(x.vector(0, np.int32)[3]), int(y.vector(0, np.int32)[3]),
                       weights.shape[2]))
    columns = ("layer_kind", "layer_stride", "layer_relu6", "layer_in_channels",
               "layer_out_channels", "layer_kernel")
    for i, column in enumerate(columns):
        arrays[column] = np.array([layer[i] for layer in layers], np.int32)
    scale, zero = quantisation(tensors[int(graph.vector(1, np.int32)[0])])
    arrays["input_scale"] = np.array(scale, np.float32)
    arrays["input_zero_point"] = np.array(zero, np.int32)
    return arrays


def npz_bytes(arrays):
    """An uncompressed .npz: one .npy entry per array, with zip64 local headers and the date
    1980-01-01, as numpy's savez writes it on Python 3.11.4 and later."""
    out, directory = bytearray(), bytearray()
    for name, value in arrays.items():
        entry = npy_bytes(value)
        filename = (name + ".npy").encode()
        crc, size, offset = zlib.crc32(entry), len(entry), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(filename), 20)
        out += filename + struct.pack("<HHQQ", 1, 16, size, size) + entry
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x032D, 45, 0, 0, 0, 0x21,
                                 crc, size, size, len(filename), 0, 0, 0, 0, 0o600 << 16,
                                 offset)
        directory += filename
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(arrays), len(arrays), len(directory),
                      len(out), 0)
    return bytes(out + directory + end)


def npy_bytes(value):
    buf = io.BytesIO()
    npy_format.write_array(buf, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: mobilenet_tflite.py MODEL.tflite OUT.npz")
    model, out = argv[1], argv[2]
    try:
        with open(model, "rb") as f:
            arrays = convert(f.read())
        with open(out + ".tmp", "wb") as f:
            f.write(npz_bytes(arrays))
        os.replace(out + ".tmp", out)
    except OSError as e:
        sys.exit(f"mobilenet_tflite.py: {e.filename}: {e.strerror}")
    except (ValueError, struct.error, IndexError) as e:
        sys.exit(f"mobilenet_tflite.py: {model}: {e}")


if __name__ == "__main__":
    main(sys.argv)
