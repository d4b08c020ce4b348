"""The paper's meta-training recipe in PyTorch, timed per epoch, for docs/side-by-side/run.sh.

Andrychowicz et al. (NIPS 2016), as the usual PyTorch ports write it and as l2l-bench times it:
a coordinatewise LSTM of 2 layers and 20 units, one optimizee trajectory of 100 steps per epoch
in unrolls of 20, the meta-loss the sum of the optimizee's losses over an unroll, truncated BPTT
with the optimizee's gradient an input (no second derivatives), meta-Adam at 1e-3.

  mnist:     the base network 784-20-10 with sigmoid units, minibatches of 128 from 5,000
             digits (docs/method.md, section 3.2), the log/sign preprocessing with p = 10
             (Appendix A) and an output scale of 0.1; one problem per epoch.
  quadratic: f(theta) = ||W theta - y||^2 in 10 dimensions (section 3.1), 128 problems a batch,
             the gradient scaled by 1/128 as input, output scale 1.

Prints one line per measured epoch and a last line: "<task> threads=<T> seconds_per_epoch=<s>",
the median over the measured epochs after one warm-up epoch. Run by hand, not by CI.
"""

import argparse
import gzip
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn


class CoordinatewiseLSTM(nn.Module):
    """Two LSTM layers over every coordinate at once (coordinates are the batch), then a
    linear output per coordinate."""

    def __init__(self, inputs, hidden=20, output_scale=0.1):
        super().__init__()
        self.cells = nn.ModuleList([nn.LSTMCell(inputs, hidden), nn.LSTMCell(hidden, hidden)])
        self.out = nn.Linear(hidden, 1)
        self.output_scale = output_scale
        self.hidden = hidden

    def initial_state(self, coordinates):
        zeros = lambda: torch.zeros(coordinates, self.hidden)
        return [(zeros(), zeros()) for _ in self.cells]

    def forward(self, x, state):
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        return self.out(x).squeeze(1) * self.output_scale, new_state


def log_sign(grad, p=10.0):
    """Appendix A: (log|g|/p, sign g) where |g| >= e^-p, else (-1, e^p g)."""
    a = grad.abs()
    big = a >= np.exp(-p)
    first = torch.where(big, torch.log(a.clamp_min(1e-38)) / p, torch.full_like(grad, -1.0))
    second = torch.where(big, torch.sign(grad), grad * np.exp(p))
    return torch.stack([first, second], 1)


def load_mnist(path):
    """The digits l2l fetches (out/data/mnist_5k.csv.gz: 784 pixels 0-255, then the label),
    scaled to [0, 1]."""
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(rows[:, :-1] / 255.0)
    return images, torch.from_numpy(rows[:, -1].astype(np.int64))


class MnistProblem:
    """The base network's loss as a function of its flat parameter vector."""

    def __init__(self, images, labels, generator):
        self.images, self.labels, self.generator = images, labels, generator
        self.sizes = [(784, 20), (20,), (20, 10), (10,)]
        self.dim = sum(int(np.prod(s)) for s in self.sizes)

    def theta0(self):
        return torch.randn(self.dim, generator=self.generator) * 0.1

    def loss(self, theta):
        pick = torch.randint(0, len(self.labels), (128,), generator=self.generator)
        x, y = self.images[pick], self.labels[pick]
        parts, at = [], 0
        for s in self.sizes:
            n = int(np.prod(s))
            parts.append(theta[at : at + n].view(*s))
            at += n
        w1, b1, w2, b2 = parts
        logits = torch.sigmoid(x @ w1 + b1) @ w2 + b2
        return nn.functional.cross_entropy(logits, y)


class QuadraticBatch:
    """128 quadratics of 10 dimensions; the loss is their mean, so each one's gradient is
    scaled by 1/128, which the input scale undoes."""

    def __init__(self, generator, count=128, dims=10):
        self.w = torch.randn(count, dims, dims, generator=generator)
        self.y = torch.randn(count, dims, generator=generator)
        self.generator, self.count, self.dims = generator, count, dims
        self.dim = count * dims

    def theta0(self):
        return torch.randn(self.dim, generator=self.generator)

    def loss(self, theta):
        t = theta.view(self.count, self.dims, 1)
        r = (self.w @ t).squeeze(2) - self.y
        return (r * r).sum(1).mean()


def epoch(problem, lstm, meta_opt, preprocess, steps=100, unroll=20):
    theta = problem.theta0().requires_grad_(True)
    state = lstm.initial_state(problem.dim)
    for _ in range(steps // unroll):
        meta_loss = 0.0
        for _ in range(unroll):
            loss = problem.loss(theta)
            (grad,) = torch.autograd.grad(loss, theta, retain_graph=True)
            meta_loss = meta_loss + loss
            update, state = lstm(preprocess(grad.detach()), state)
            theta = theta + update
        meta_opt.zero_grad()
        meta_loss.backward()
        meta_opt.step()
        theta = theta.detach().requires_grad_(True)
        state = [(h.detach(), c.detach()) for h, c in state]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["mnist", "quadratic"])
    parser.add_argument("--data", help="out/data/mnist_5k.csv.gz (for mnist)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5, help="measured epochs, after one warm-up")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    if args.task == "mnist":
        if not args.data:
            sys.exit("pytorch_reference.py: mnist needs --data out/data/mnist_5k.csv.gz")
        images, labels = load_mnist(args.data)
        make = lambda: MnistProblem(images, labels, generator)
        lstm, preprocess = CoordinatewiseLSTM(2, output_scale=0.1), log_sign
    else:
        make = lambda: QuadraticBatch(generator)
        lstm = CoordinatewiseLSTM(1, output_scale=1.0)
        preprocess = lambda g: (g * 128.0).unsqueeze(1)
    meta_opt = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    seconds = []
    for e in range(args.epochs + 1):
        start = time.perf_counter()
        epoch(make(), lstm, meta_opt, preprocess)
        took = time.perf_counter() - start
        print(f"epoch {e}{' (warm-up)' if e == 0 else ''}: {took:.3f} s", file=sys.stderr)
        if e > 0:
            seconds.append(took)
    print(f"{args.task} threads={args.threads} seconds_per_epoch={statistics.median(seconds):.4f}")


if __name__ == "__main__":
    main()
