"""The helper's side of the protocol, without l2l: frames in, frames out (run by `make test`)."""

import io
import os
import struct
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import l2l  # noqa: E402


class Square(l2l.Optimizee):
    dim = 3
    offered = {"train": 5, "test": 2}
    groups = {"a": [(0, 1)], "b": [(1, 3)]}

    def initial_point(self, role, index):
        return np.full(3, index, dtype=np.float32)

    def loss_and_gradient(self, role, index, step, theta):
        if step == 99:
            raise ValueError("step 99 is refused")
        return float(np.sum(theta.astype(np.float64) ** 2)), 2 * theta


def frame(tag, payload):
    return tag + struct.pack("<I", len(payload)) + payload


def frames(data):
    out, at = [], 0
    while at < len(data):
        tag, n = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        out.append((tag, data[at + 8:at + 8 + n]))
        at += 8 + n
    return out


class ServeTest(unittest.TestCase):
    def answers(self, *requests):
        stdout = io.BytesIO()
        saved = sys.stdout
        try:
            l2l.serve(Square(), io.BytesIO(b"".join(requests)), stdout)
        finally:
            sys.stdout = saved
        return frames(stdout.getvalue())

    def test_handshake_init_grad_and_fail(self):
        theta = np.array([1.0, 2.0, 3.0], "<f4").tobytes()
        hello, init, grad, fail = self.answers(
            frame(b"HELO", struct.pack("<I", 1)),
            frame(b"INIT", struct.pack("<IQ", 2, 1)),
            frame(b"GRAD", struct.pack("<IQQ", 0, 4, 7) + theta),
            frame(b"GRAD", struct.pack("<IQQ", 0, 4, 99) + theta),
        )
        self.assertEqual(hello[0], b"HELO")
        version, dim, train, validation, test, groups = struct.unpack("<IQQQQI", hello[1][:40])
        self.assertEqual((version, dim, train, validation, test, groups), (1, 3, 5, 0, 2, 2))
        self.assertEqual(hello[1][40:44], struct.pack("<I", 1))
        self.assertEqual(hello[1][44:45], b"a")
        self.assertEqual(len(hello[1]), 40 + (4 + 1 + 4 + 16) + (4 + 1 + 4 + 16))
        self.assertEqual(np.frombuffer(init[1], "<f4").tolist(), [1.0, 1.0, 1.0])
        self.assertEqual(struct.unpack("<d", grad[1][:8])[0], 14.0)
        self.assertEqual(np.frombuffer(grad[1][8:], "<f4").tolist(), [2.0, 4.0, 6.0])
        self.assertEqual(fail, (b"FAIL", b"ValueError: step 99 is refused"))

    def test_a_wrong_length_is_a_fail_not_a_short_frame(self):
        class Short(Square):
            def initial_point(self, role, index):
                return np.zeros(2, np.float32)

        stdout = io.BytesIO()
        saved = sys.stdout
        try:
            l2l.serve(Short(), io.BytesIO(frame(b"INIT", struct.pack("<IQ", 0, 0))), stdout)
        finally:
            sys.stdout = saved
        (tag, body), = frames(stdout.getvalue())
        self.assertEqual(tag, b"FAIL")
        self.assertIn(b"3 parameters", body)


class DigitsGradientTest(unittest.TestCase):
    """The example model's hand-written backward pass against central differences."""

    def test_gradient(self):
        try:
            import digits_mlp
        except ImportError as e:
            self.skipTest(f"the digits example needs scikit-learn: {e}")
        model = digits_mlp.DigitsMlp()
        theta = model.initial_point("train", 3).astype(np.float64)
        _, grad = model.loss_and_gradient("train", 3, 5, theta)
        for i in np.random.default_rng(0).integers(0, model.dim, 20):
            plus, minus = theta.copy(), theta.copy()
            plus[i] += 1e-3
            minus[i] -= 1e-3
            fd = (model.loss_and_gradient("train", 3, 5, plus)[0]
                  - model.loss_and_gradient("train", 3, 5, minus)[0]) / 2e-3
            self.assertLess(abs(fd - grad[i]), 1e-5 + 1e-3 * abs(fd), f"coordinate {i}")


if __name__ == "__main__":
    unittest.main()
