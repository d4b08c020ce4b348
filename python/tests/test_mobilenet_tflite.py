"""data/mobilenet_tflite.py on a small model built here with FlatBuffers' own builder: the
fields it reads, the dequantisation, the layouts, and the bytes of the .npz it writes."""

import hashlib
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")
sys.path.insert(0, DATA)
import mobilenet_tflite  # noqa: E402

try:
    import flatbuffers
except ImportError:  # Debian's python3-flatbuffers; `make test` installs it
    flatbuffers = None

RNG = np.random.default_rng(7)
CONV_W = RNG.integers(0, 256, (2, 3, 3, 3), dtype=np.uint8)  # [out, kh, kw, in]
CONV_B = RNG.integers(-500, 500, 2, dtype=np.int32)
DW_W = RNG.integers(0, 256, (1, 3, 3, 2), dtype=np.uint8)  # [1, kh, kw, channels]
DW_B = RNG.integers(-500, 500, 2, dtype=np.int32)
IN_SCALE, IN_ZERO = 0.0078125, 128
CONV_SCALE, CONV_ZERO = 0.0213, 121
DW_SCALE, DW_ZERO = 0.047, 99


def tiny_model():
    """A 4×4×3 uint8 input, a 3×3 convolution of stride 2 to 2 channels, a 3×3 depthwise one
    of stride 1, and the final average pooling: TensorFlow Lite's schema, field by field."""
    b = flatbuffers.Builder(0)

    def vector(values, dtype):
        return b.CreateNumpyVector(np.asarray(values, dtype))

    def table(fields):  # fields: (slot, kind, value)
        b.StartObject(max(slot for slot, _, _ in fields) + 1)
        for slot, kind, value in fields:
            getattr(b, "Prepend" + kind + "Slot")(slot, value, 0)
        return b.EndObject()

    def tables(offsets):
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    def quantisation(scale, zero):
        return table([(2, "UOffsetTRelative", vector([scale], np.float32)),
                      (3, "UOffsetTRelative", vector([zero], np.int64))])

    # (shape, type, buffer, name, scale, zero point); types: 3 uint8, 2 int32.
    specs = [
        ([1, 4, 4, 3], 3, 0, "input", IN_SCALE, IN_ZERO),
        ([2, 3, 3, 3], 3, 1, "MobilenetV1/Conv2d_0/weights_quant", CONV_SCALE, CONV_ZERO),
        ([2], 2, 2, "MobilenetV1/Conv2d_0/bias", IN_SCALE * CONV_SCALE, 0),
        ([1, 2, 2, 2], 3, 0, "conv", 0.03, 0),
        ([1, 3, 3, 2], 3, 3, "MobilenetV1/Conv2d_1_depthwise/weights_quant", DW_SCALE, DW_ZERO),
        ([2], 2, 4, "MobilenetV1/Conv2d_1_depthwise/bias", 0.03 * DW_SCALE, 0),
        ([1, 2, 2, 2], 3, 0, "depthwise", 0.02, 0),
        ([1, 1, 1, 2], 3, 0, "embedding", 0.02, 0),
    ]
    tensors = []
    for shape, kind, buffer, name, scale, zero in specs:
        fields = [(0, "UOffsetTRelative", vector(shape, np.int32)), (1, "Int8", kind),
                  (2, "Uint32", buffer), (3, "UOffsetTRelative", b.CreateString(name)),
                  (4, "UOffsetTRelative", quantisation(scale, zero))]
        tensors.append(table(fields))
    conv_options = table([(1, "Int32", 2), (2, "Int32", 2), (3, "Int8", 3)])
    dw_options = table([(1, "Int32", 1), (2, "Int32", 1), (3, "Int32", 1), (4, "Int8", 3)])
    operators = []
    for opcode, inputs, output, options_type, options in [
            (0, [0, 1, 2], 3, 1, conv_options), (1, [3, 4, 5], 6, 2, dw_options),
            (2, [6], 7, 0, None)]:
        fields = [(0, "Uint32", opcode), (1, "UOffsetTRelative", vector(inputs, np.int32)),
                  (2, "UOffsetTRelative", vector([output], np.int32))]
        if options is not None:
            fields += [(3, "Uint8", options_type), (4, "UOffsetTRelative", options)]
        operators.append(table(fields))
    graph = table([(0, "UOffsetTRelative", tables(tensors)),
                   (1, "UOffsetTRelative", vector([0], np.int32)),
                   (2, "UOffsetTRelative", vector([7], np.int32)),
                   (3, "UOffsetTRelative", tables(operators))])
    # The convolution by its old one-byte code, the others by the newer int32 one.
    codes = [table([(0, "Int8", 3)]), table([(3, "Int32", 4)]), table([(3, "Int32", 1)])]
    datas = [b"", CONV_W.tobytes(), CONV_B.astype("<i4").tobytes(), DW_W.tobytes(),
             DW_B.astype("<i4").tobytes()]
    buffers = [table([(0, "UOffsetTRelative", vector(np.frombuffer(d, np.uint8), np.uint8))])
               if d else table([(1, "Uint64", 0)]) for d in datas]
    model = table([(0, "Uint32", 3), (1, "UOffsetTRelative", tables(codes)),
                   (2, "UOffsetTRelative", tables([graph])),
                   (4, "UOffsetTRelative", tables(buffers))])
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


@unittest.skipIf(flatbuffers is None, "no flatbuffers module (Debian's python3-flatbuffers)")
class Conversion(unittest.TestCase):
    def test_weights_biases_and_layer_table(self):
        arrays = mobilenet_tflite.convert(tiny_model())
        self.assertEqual(list(arrays), [
            "conv00_w", "conv00_b", "conv01_w", "conv01_b", "layer_kind", "layer_stride",
            "layer_relu6", "layer_in_channels", "layer_out_channels", "layer_kernel",
            "input_scale", "input_zero_point"])
        def scale(x):  # as the model stores it, in float32
            return float(np.float32(x))

        conv = scale(CONV_SCALE) * (CONV_W.astype(np.float64) - CONV_ZERO)
        dw = scale(DW_SCALE) * (DW_W.astype(np.float64) - DW_ZERO)
        for name, want in [("conv00_w", conv.transpose(0, 3, 1, 2)),
                           ("conv01_w", dw.transpose(3, 0, 1, 2)),
                           ("conv00_b", scale(IN_SCALE * CONV_SCALE) * CONV_B.astype(np.float64)),
                           ("conv01_b", scale(0.03 * DW_SCALE) * DW_B.astype(np.float64))]:
            got = arrays[name]
            self.assertEqual(got.dtype, np.float32, name)
            np.testing.assert_array_equal(got, want.astype(np.float32), name)
        self.assertEqual(arrays["conv01_w"].shape, (2, 1, 3, 3))
        table = {k: arrays[k].tolist() for k in arrays if k.startswith("layer_")}
        self.assertEqual(table, {"layer_kind": [0, 1], "layer_stride": [2, 1],
                                 "layer_relu6": [1, 1], "layer_in_channels": [3, 2],
                                 "layer_out_channels": [2, 2], "layer_kernel": [3, 3]})
        self.assertEqual(arrays["input_scale"].dtype, np.float32)
        self.assertEqual((float(arrays["input_scale"]), int(arrays["input_zero_point"])),
                         (IN_SCALE, IN_ZERO))

    def test_the_command_writes_an_npz_numpy_reads(self):
        with tempfile.TemporaryDirectory() as d:
            model, out = os.path.join(d, "m.tflite"), os.path.join(d, "m.npz")
            with open(model, "wb") as f:
                f.write(tiny_model())
            script = os.path.join(DATA, "mobilenet_tflite.py")
            subprocess.run([sys.executable, script, model, out], check=True)
            with np.load(out) as npz:
                arrays = mobilenet_tflite.convert(tiny_model())
                self.assertEqual(list(npz.keys()), list(arrays))
                for k in arrays:
                    np.testing.assert_array_equal(npz[k], arrays[k])


class NpzBytes(unittest.TestCase):
    def test_the_same_bytes_whatever_python_and_numpy(self):
        # This input's bytes as numpy 2.4's savez writes them on Python 3.11.7, and as this
        # writer gives on Debian's Python 3.11.2 with numpy 1.24 (whose savez differs).
        arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.array(3, np.int32)}
        digest = hashlib.sha256(mobilenet_tflite.npz_bytes(arrays)).hexdigest()
        self.assertEqual(digest, GOLDEN)

    def test_a_file_that_is_no_model_is_refused_in_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            model, out = os.path.join(d, "m.tflite"), os.path.join(d, "m.npz")
            with open(model, "wb") as f:
                f.write(b"\0" * 64)
            script = os.path.join(DATA, "mobilenet_tflite.py")
            run = subprocess.run([sys.executable, script, model, out], capture_output=True,
                                 text=True)
            self.assertNotEqual(run.returncode, 0)
            self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
            self.assertIn("TFL3", run.stderr)
            self.assertEqual(os.listdir(d), ["m.tflite"])


GOLDEN = "dcc9039d6aaa0ba2fedcf5bf51775a6f34bf32c7159d8520afd7d01bf53d759c"

if __name__ == "__main__":
    unittest.main()
