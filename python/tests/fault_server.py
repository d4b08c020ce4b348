"""An external optimizee for l2l's tests and bench: f(θ) = s‖θ‖² (s = 1 + index mod 3) of
DIM parameters (4 unless given) served through l2l.serve, or one fault on purpose. Usage:
fault_server.py MODE [K [DIM]]

MODE ok answers correctly. The other modes answer correctly until the request for step K (or,
for train-exit, train problem K), then: exit (exits with status 3), hang (never answers),
short (a frame cut short), length (a gradient one value short), nan (a NaN gradient), fail (the
model raises, which l2l.serve sends as FAIL). version answers the handshake with version 2.
A mode applies only while a file named `fault` exists in the folder it runs in, so a test can
take the fault away and resume the same run.
"""

import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import l2l  # noqa: E402

DIM = int(sys.argv[3]) if len(sys.argv) > 3 else 4


def raw(tag, payload):
    out = sys.__stdout__.buffer
    out.write(tag + struct.pack("<I", len(payload)) + payload)
    out.flush()


class Faulty(l2l.Optimizee):
    dim = DIM
    offered = {"train": 64, "validation": 8, "test": 8}

    def __init__(self, mode, k):
        self.mode, self.k = mode, k

    def armed(self):
        return self.mode != "ok" and os.path.exists("fault")

    def initial_point(self, role, index):
        rng = np.random.default_rng([l2l.ROLES.index(role), index])
        return rng.normal(size=DIM).astype(np.float32)

    def loss_and_gradient(self, role, index, step, theta):
        if self.armed():
            hit = index == self.k and role == "train" if self.mode == "train-exit" else step == self.k
            if hit:
                self.fault()
        scale = np.float32(1.0 + (index % 3))
        loss = float(scale) * float(np.dot(theta.astype(np.float64), theta.astype(np.float64)))
        return loss, (np.float32(2.0) * scale) * theta

    def fault(self):
        if self.mode in ("exit", "train-exit"):
            sys.exit(3)
        if self.mode == "hang":
            time.sleep(3600)
        if self.mode == "short":
            out = sys.__stdout__.buffer
            out.write(b"GRAD" + struct.pack("<I", 8 + 4 * DIM) + b"\0\0\0")
            out.flush()
            os._exit(0)
        if self.mode == "length":
            raw(b"GRAD", struct.pack("<d", 1.0) + np.zeros(DIM - 1, "<f4").tobytes())
            os._exit(0)
        if self.mode == "nan":
            raw(b"GRAD", struct.pack("<d", 1.0) + np.full(DIM, np.nan, "<f4").tobytes())
            os._exit(0)
        if self.mode == "fail":
            raise RuntimeError("the model failed on purpose")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "version" and os.path.exists("fault"):
        l2l.PROTOCOL_VERSION = 2
    l2l.serve(Faulty(mode, int(sys.argv[2]) if len(sys.argv) > 2 else 0))
