"""A model that is none of l2l's families, served to l2l from numpy: a 64-32-10 tanh MLP with
a softmax cross-entropy loss on scikit-learn's 8×8 digits, trained on minibatches of 64.

Roles (docs/formats.md, "External optimizees"): train and validation problems draw their
minibatches from the first 1,200 digits, test problems from the other 597, which meta-training
and tuning never see. Problem i of a role has its own θ0 (iid N(0, 0.1²)) and its own sequence
of minibatches, both from the seed (role, i). run_digits.sh meta-trains on it and compares the
learned optimizer with tuned Adam.

Needs numpy and scikit-learn (pip install numpy scikit-learn).
"""

import os
import sys

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import l2l  # noqa: E402

HIDDEN, CLASSES, BATCH, TRAIN_IMAGES = 32, 10, 64, 1200


class DigitsMlp(l2l.Optimizee):
    def __init__(self):
        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)
        y = digits.target.astype(np.int64)
        self.images = {"train": (x[:TRAIN_IMAGES], y[:TRAIN_IMAGES]),
                       "test": (x[TRAIN_IMAGES:], y[TRAIN_IMAGES:])}
        self.images["validation"] = self.images["train"]
        self.inputs = x.shape[1]
        self.shapes = [(self.inputs, HIDDEN), (HIDDEN,), (HIDDEN, CLASSES), (CLASSES,)]
        self.dim = sum(int(np.prod(s)) for s in self.shapes)
        self.offered = {"train": 1_000_000, "validation": 1_000, "test": 1_000}
        self.groups = None

    def unpack(self, theta):
        out, at = [], 0
        for s in self.shapes:
            n = int(np.prod(s))
            out.append(theta[at:at + n].reshape(s))
            at += n
        return out

    def initial_point(self, role, index):
        rng = np.random.default_rng([l2l.ROLES.index(role), index, 0])
        return (0.1 * rng.standard_normal(self.dim)).astype(np.float32)

    def loss_and_gradient(self, role, index, step, theta):
        x, y = self.images[role]
        rng = np.random.default_rng([l2l.ROLES.index(role), index, 1, step])
        pick = rng.integers(0, len(y), BATCH)
        x, y = x[pick], y[pick]
        w1, b1, w2, b2 = self.unpack(theta.astype(np.float64))
        h = np.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(BATCH), y] + 1e-12))
        d_logits = p
        d_logits[np.arange(BATCH), y] -= 1.0
        d_logits /= BATCH
        d_h = (d_logits @ w2.T) * (1.0 - h * h)
        grad = np.concatenate([(x.T @ d_h).ravel(), d_h.sum(0), (h.T @ d_logits).ravel(),
                               d_logits.sum(0)])
        return float(loss), grad.astype(np.float32)


if __name__ == "__main__":
    l2l.serve(DigitsMlp())
