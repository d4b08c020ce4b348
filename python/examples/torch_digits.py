"""The digits MLP of digits_mlp.py written in PyTorch: the same data, roles, minibatches and θ0,
its loss and gradient by autograd. `SERVE="python3 python/examples/torch_digits.py" sh
python/examples/run_digits.sh` meta-trains on it and compares with tuned Adam.

Needs torch and scikit-learn.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_mlp import BATCH, CLASSES, HIDDEN, DigitsMlp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import l2l  # noqa: E402

# l2l starts one process per thread: each keeps to one core.
torch.set_num_threads(1)


class TorchDigits(DigitsMlp):
    def __init__(self):
        super().__init__()
        self.model = torch.nn.Sequential(
            torch.nn.Linear(self.inputs, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, CLASSES)
        ).double()
        self.data = {role: (torch.from_numpy(x).double(), torch.from_numpy(y))
                     for role, (x, y) in self.images.items()}

    def set_parameters(self, theta):
        # θ's layout is digits_mlp's: W1 as [in, out] row-major, b1, W2, b2; torch keeps W^T.
        w1, b1, w2, b2 = (torch.from_numpy(np.array(a, dtype=np.float64)) for a in self.unpack(theta))
        layers = [self.model[0], self.model[2]]
        with torch.no_grad():
            for layer, w, b in zip(layers, (w1, w2), (b1, b2)):
                layer.weight.copy_(w.T)
                layer.bias.copy_(b)
        return layers

    def loss_and_gradient(self, role, index, step, theta):
        x, y = self.data[role]
        rng = np.random.default_rng([l2l.ROLES.index(role), index, 1, step])
        pick = torch.from_numpy(rng.integers(0, len(y), BATCH))
        layers = self.set_parameters(theta)
        self.model.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(x[pick]), y[pick])
        loss.backward()
        grad = [layers[0].weight.grad.T, layers[0].bias.grad, layers[1].weight.grad.T,
                layers[1].bias.grad]
        return loss.item(), torch.cat([g.reshape(-1) for g in grad]).float().numpy()


if __name__ == "__main__":
    l2l.serve(TorchDigits())
