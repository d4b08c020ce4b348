#!/bin/sh
# Meta-trains l2l's LSTM on the numpy MLP of digits_mlp.py with the recipe of Figure 4's MNIST
# LSTM (100 steps in unrolls of 20, Appendix A's preprocessing, meta-Adam 1e-3; SEED picks the
# meta-training draw), then runs it and Adam (its rate tuned on validation problems)
# on 40 held-out test problems, and prints the paired difference of their losses at step 100.
# Run from the repository root after `make build`: sh python/examples/run_digits.sh [OUT].
# SERVE="python3 python/examples/torch_digits.py" serves the same model written in PyTorch.
set -eu
B=target/release
OUT=${1:-out/digits}
SEED=${SEED:-1}
SERVE=${SERVE:-python3 python/examples/digits_mlp.py}
mkdir -p "$OUT"
$B/sample-optimizee external --command "$SERVE" --role train --count 1000000 --seed 0 -o "$OUT/train.npz"
$B/sample-optimizee external --command "$SERVE" --role validation --count 10 --seed 0 -o "$OUT/validation.npz"
$B/sample-optimizee external --command "$SERVE" --role test --count 40 --seed 0 -o "$OUT/test.npz"
$B/meta-train --train "$OUT/train.npz" --validation "$OUT/validation.npz" --epochs "${EPOCHS:-260}" \
  --preprocessing log-sign --p 10 --output-scale 0.1 --meta-lr 1e-3 --steps 100 --unroll 20 \
  --batch 1 --eval-every 20 --seed "$SEED" -o "$OUT/LSTM.npz"
$B/evaluate --spec "$OUT/test.npz" --steps 100 -O "lstm:$OUT/LSTM.npz" -O adam --tune \
  --validation "$OUT/validation.npz" -o "$OUT/trajectories.parquet"
$B/plot --panel "$OUT/trajectories.parquet=Digits MLP (numpy), held-out runs" -o "$OUT/digits.png"
python3 - "$OUT/trajectories.parquet" <<'PY'
import sys
import pandas as pd
d = pd.read_parquet(sys.argv[1])
last = d[d.step == 100].pivot(index="problem", columns="optimizer", values="loss")
diff = last["lstm"] - last["adam"]
se = diff.std(ddof=1) / len(diff) ** 0.5
verdict = "lower" if diff.mean() < -2 * se else "higher" if diff.mean() > 2 * se else "a tie"
print(f"step 100, {len(diff)} held-out runs: LSTM {last['lstm'].mean():.4f}, tuned Adam "
      f"{last['adam'].mean():.4f}; LSTM - Adam {diff.mean():+.4f} ± {se:.4f} ({verdict})")
PY
