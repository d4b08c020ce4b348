"""Serves the quadratics of an l2l spec (f(θ) = ‖Wθ − y‖², §3.1 of the paper) from numpy, in
the order of operations l2l's own quadratic uses, so that `evaluate` on the external spec
gives the same losses, bit for bit, as on the spec itself (tests/harness checks this).

    sample-optimizee quadratic --count 8 --seed 5 -o q.npz
    sample-optimizee external --command "python3 python/examples/quadratic_spec.py q.npz" \
        --role test --count 8 --seed 0 -o served.npz
    evaluate --spec served.npz -O adam=0.1 -o served.parquet

Every role offers the spec's problems, in its order.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import l2l  # noqa: E402


class SpecQuadratics(l2l.Optimizee):
    def __init__(self, path):
        spec = np.load(path)
        self.w = spec["W"].astype(np.float32)
        self.y = spec["y"].astype(np.float32)
        self.theta0 = spec["theta0"].astype(np.float32)
        count, self.dim = self.theta0.shape
        self.offered = {role: count for role in l2l.ROLES}

    def initial_point(self, role, index):
        return self.theta0[index]

    def loss_and_gradient(self, role, index, step, theta):
        w, y = self.w[index], self.y[index]
        # Each row's residual sums its products from the first column on, in float32.
        s = np.zeros(self.dim, dtype=np.float32)
        for j in range(self.dim):
            s = s + w[:, j] * theta[j]
        r = s - y
        loss = 0.0
        for v in r:
            loss += float(v) * float(v)
        # ∇f = 2 Wᵀ r, row after row.
        g = np.zeros(self.dim, dtype=np.float32)
        for i in range(self.dim):
            g = g + (np.float32(2.0) * w[i]) * r[i]
        return loss, g


if __name__ == "__main__":
    l2l.serve(SpecQuadratics(sys.argv[1]))
