"""l2l.torch.LearnedOptimizer against the same steps taken by hand (where torch is installed
and l2l's release binaries are built; skipped otherwise)."""

import os
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
EVALUATE = os.path.join(HERE, "..", "..", "target", "release", "evaluate")


class LearnedOptimizerTest(unittest.TestCase):
    def setUp(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            self.skipTest("torch is not installed")
        if not os.path.exists(EVALUATE):
            self.skipTest("target/release/evaluate is not built")

    def test_steps_match_sgd_by_hand_and_a_learned_rule_lowers_the_loss(self):
        import torch
        from l2l.torch import LearnedOptimizer

        torch.manual_seed(0)
        x, y = torch.randn(32, 4), torch.randn(32, 1)
        model = torch.nn.Linear(4, 1)
        by_hand = [p.detach().numpy().copy() for p in model.parameters()]
        optimizer = LearnedOptimizer(model.parameters(), "sgd=0.1", evaluate=EVALUATE)
        for _ in range(5):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            grads = [p.grad.numpy().copy() for p in model.parameters()]
            by_hand = [p - np.float32(0.1) * g for p, g in zip(by_hand, grads)]
            optimizer.step()
            for p, q in zip(model.parameters(), by_hand):
                np.testing.assert_allclose(p.detach().numpy(), q, rtol=0, atol=1e-6)
        optimizer.close()

        model = torch.nn.Linear(4, 1)
        optimizer = LearnedOptimizer(model.parameters(), "adam=0.05", evaluate=EVALUATE)
        first = None
        for _ in range(50):
            def closure():
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss
            loss = optimizer.step(closure).item()
            first = loss if first is None else first
        optimizer.close()
        self.assertLess(loss, 0.9 * first)


if __name__ == "__main__":
    unittest.main()
