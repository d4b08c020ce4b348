"""Serve a model to l2l as an external optimizee.

l2l starts your script and asks it, over standard input and output, for each problem's
initial parameters and for the loss and gradient at the parameters it chose. The protocol is
documented in l2l's docs/formats.md ("External optimizees"); this module speaks version 1 of
it, in pure Python with numpy.

    import l2l

    class Model(l2l.Optimizee):
        dim = 10
        offered = {"train": 10_000, "validation": 100, "test": 100}

        def initial_point(self, role, index):
            return np.random.default_rng([role_seed[role], index]).normal(size=10)

        def loss_and_gradient(self, role, index, step, theta):
            ...
            return loss, grad

    if __name__ == "__main__":
        l2l.serve(Model())

Every answer must be a pure function of (role, index, step, theta): l2l starts one process
per thread and sends any problem to any of them.
"""

import struct
import subprocess
import sys

import numpy as np

PROTOCOL_VERSION = 1
ROLES = ("train", "validation", "test")

__all__ = ["Optimizee", "serve", "LearnedUpdates", "PROTOCOL_VERSION", "ROLES"]


class Optimizee:
    """What `serve` answers for. Subclass it, or give any object with these attributes.

    dim: parameters per problem.
    offered: how many problems each role has, e.g. {"train": 10000, "validation": 50,
        "test": 50}; a missing role offers none.
    groups: optional {name: [(start, end), ...]} covering every parameter once (a learned
        optimizer with one network per group serves each with its own, as the paper's §3.3
        does for conv and fully connected layers). None: one group, "all".
    """

    dim = 0
    offered = {}
    groups = None

    def initial_point(self, role, index):
        """theta0 of problem `index` of `role` ("train", "validation" or "test")."""
        raise NotImplementedError

    def loss_and_gradient(self, role, index, step, theta):
        """(loss, gradient) of problem `index` of `role` at optimization step `step` (pick
        its minibatch from it) and parameters `theta` (float32 array of `dim`)."""
        raise NotImplementedError


def _handshake(model):
    counts = [int(model.offered.get(role, 0)) for role in ROLES]
    return _hello(int(model.dim), counts, getattr(model, "groups", None))


def _hello(dim, counts, groups):
    out = struct.pack("<IQQQQ", PROTOCOL_VERSION, dim, *counts)
    groups = groups or {}
    out += struct.pack("<I", len(groups))
    for name, ranges in groups.items():
        encoded = name.encode("utf-8")
        out += struct.pack("<I", len(encoded)) + encoded
        out += struct.pack("<I", len(ranges))
        for start, end in ranges:
            out += struct.pack("<QQ", int(start), int(end))
    return out


def _vector(values, dim, what):
    array = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    if array.size != dim:
        raise ValueError(f"{what} has {array.size} values; the model has {dim} parameters")
    return array.tobytes()


def _read_exact(stream, n):
    data = stream.read(n)
    if data is None or len(data) < n:
        return None
    return data


def serve(model, stdin=None, stdout=None):
    """Answers l2l's requests for `model` until l2l closes the input. A Python exception in
    the model is sent to l2l as a FAIL frame (which l2l reports with the problem and step),
    and its traceback goes to standard error."""
    import traceback

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    # Anything the model prints would corrupt the protocol: send print() to standard error.
    sys.stdout = sys.stderr
    dim = int(model.dim)
    while True:
        header = _read_exact(stdin, 8)
        if header is None:
            return
        tag, length = header[:4], struct.unpack("<I", header[4:])[0]
        body = _read_exact(stdin, length) if length else b""
        if body is None:
            return
        try:
            if tag == b"HELO":
                answer = _handshake(model)
            elif tag == b"INIT":
                role, index = struct.unpack("<IQ", body)
                theta0 = model.initial_point(ROLES[role], index)
                answer = _vector(theta0, dim, "theta0")
            elif tag == b"GRAD":
                role, index, step = struct.unpack("<IQQ", body[:20])
                theta = np.frombuffer(body[20:], dtype="<f4")
                loss, grad = model.loss_and_gradient(ROLES[role], index, step, theta)
                answer = struct.pack("<d", float(loss)) + _vector(grad, dim, "the gradient")
            else:
                raise ValueError(f"unknown request {tag!r}")
        except Exception as e:  # the model's failure, reported to l2l
            traceback.print_exc(file=sys.stderr)
            tag, answer = b"FAIL", f"{type(e).__name__}: {e}".encode("utf-8")
        stdout.write(tag + struct.pack("<I", len(answer)) + answer)
        stdout.flush()


class LearnedUpdates:
    """A learned optimizer (or a baseline) of l2l stepping your own training loop.

    `optimizer` is what `evaluate -O` takes ("lstm:out/mnist-paper/LSTM.npz", "adam=0.01").
    l2l's `evaluate --serve-updates` keeps the optimizer's state (the LSTM's cells) between
    steps; `step(theta, grad)` returns the parameters it steps to, the same bits `evaluate`
    computes on a spec. `dim` is the number of parameters, `groups` as in `Optimizee`.
    """

    def __init__(self, optimizer, dim, groups=None, evaluate="evaluate"):
        self.dim = int(dim)
        self.process = subprocess.Popen(
            [evaluate, "--serve-updates", "-O", optimizer, "--threads", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        answer = self._ask(b"HELO", _hello(self.dim, [0, 0, 0], groups))
        if struct.unpack("<I", answer)[0] != PROTOCOL_VERSION:
            raise RuntimeError("l2l speaks another protocol version")

    def _ask(self, tag, payload):
        try:
            self.process.stdin.write(tag + struct.pack("<I", len(payload)) + payload)
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        header = _read_exact(self.process.stdout, 8)
        if header is None or header[:4] != tag:
            raise RuntimeError("l2l's evaluate --serve-updates stopped; its message is above")
        return _read_exact(self.process.stdout, struct.unpack("<I", header[4:])[0])

    def step(self, theta, grad):
        payload = _vector(theta, self.dim, "theta") + _vector(grad, self.dim, "the gradient")
        return np.frombuffer(self._ask(b"STEP", payload), dtype="<f4").copy()

    def close(self):
        """Ends `evaluate --serve-updates` and closes both pipes."""
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if not pipe.closed:
                pipe.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
