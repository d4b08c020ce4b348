#!/usr/bin/env bash
# l2l against the paper's recipe in PyTorch, on this machine and its threads: seconds per
# meta-training epoch (one 100-step trajectory in unrolls of 20) of the MNIST base network and
# of 128 quadratics, with 1 and 2 threads (docs/performance.md, "Against PyTorch").
#
# Run by hand from the repository's root, not by CI:  bash docs/side-by-side/run.sh
# It needs `make build` and `make data` done, and PyTorch and numpy in python3 (pip install
# torch numpy). It writes nothing but out/side-by-side/.
set -euo pipefail
cd "$(dirname "$0")/../.."
MNIST=${MNIST:-out/data/mnist_5k.csv.gz}
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-5}
OUT=out/side-by-side
mkdir -p "$OUT"
for need in target/release/l2l-bench "$MNIST"; do
  [ -e "$need" ] || { echo "run.sh: $need is missing; run make build and make data first" >&2; exit 1; }
done
"$PYTHON" -c "import torch, numpy" 2>/dev/null \
  || { echo "run.sh: python3 lacks torch or numpy (pip install torch numpy)" >&2; exit 1; }

echo "run.sh: l2l-bench (the same epochs, every thread count; a few minutes)" >&2
target/release/l2l-bench --data "$MNIST" --repeats "$EPOCHS" -o "$OUT/bench.parquet" > "$OUT/bench.txt"
l2l_row() { # task prefix, threads word -> seconds per epoch
  grep -E "^$1" "$OUT/bench.txt" | grep "seconds per epoch, $2 " | awk '{print $(NF-1)}' | head -1
}
torch_time() { # task, threads -> seconds per epoch
  "$PYTHON" docs/side-by-side/pytorch_reference.py "$1" --data "$MNIST" --threads "$2" \
    --epochs "$EPOCHS" 2>/dev/null | sed -n 's/.*seconds_per_epoch=//p'
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'); $(head -1 "$OUT/bench.txt")"
printf '%-10s %-8s %12s %12s %8s\n' task threads "l2l s/epoch" "torch s/epoch" "ratio"
for threads in 1 2; do
  word=$([ "$threads" = 1 ] && echo "1 thread" || echo "2 threads")
  for task in mnist quadratic; do
    prefix=$([ "$task" = mnist ] && echo "meta-train MNIST MLP" || echo "meta-train quadratic")
    l2l=$(l2l_row "$prefix" "$word")
    torch=$(torch_time "$task" "$threads")
    awk -v t="$task" -v n="$threads" -v a="$l2l" -v b="$torch" \
      'BEGIN { printf "%-10s %-8s %12.4f %12.4f %8.2f\n", t, n, a, b, b / a }'
  done
done
