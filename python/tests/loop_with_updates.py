"""A training loop of its own on problem 0 of an l2l quadratic spec, stepped by
`l2l.LearnedUpdates`; prints the loss at each step as the bits of the float64, one per line,
for tests/external.rs to compare with `evaluate` on the spec. Usage:
loop_with_updates.py SPEC OPTIMIZER EVALUATE STEPS"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import l2l  # noqa: E402
from quadratic_spec import SpecQuadratics  # noqa: E402

spec, optimizer, evaluate, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = SpecQuadratics(spec)
theta = model.initial_point("test", 0)
with l2l.LearnedUpdates(optimizer, model.dim, evaluate=evaluate) as updates:
    for step in range(steps + 1):
        loss, grad = model.loss_and_gradient("test", 0, step, theta)
        print(struct.unpack("<Q", struct.pack("<d", loss))[0])
        if step < steps:
            theta = updates.step(theta, grad)
