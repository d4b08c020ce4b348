"""`LearnedOptimizer`: an l2l optimizer as a `torch.optim.Optimizer` (import it only where
torch is installed). Each step sends every parameter and its gradient, flattened in the order
of `params`, to `evaluate --serve-updates` and copies back what it answers."""

import torch

from . import LearnedUpdates


class LearnedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, optimizer, evaluate="evaluate"):
        super().__init__(params, {})
        self._params = [p for group in self.param_groups for p in group["params"]]
        dim = sum(p.numel() for p in self._params)
        self._updates = LearnedUpdates(optimizer, dim, evaluate=evaluate)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        flat = lambda ts: torch.cat([t.detach().reshape(-1).float().cpu() for t in ts]).numpy()
        theta = flat(self._params)
        grad = flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params])
        new = torch.from_numpy(self._updates.step(theta, grad))
        at = 0
        for p in self._params:
            p.copy_(new[at:at + p.numel()].view_as(p))
            at += p.numel()
        return loss

    def close(self):
        self._updates.close()
