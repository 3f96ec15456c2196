#!/bin/bash
# `tinyllm train --cuda-graph` on the GPU machine: build, the tests, then the quickstart's training (small preset,
# B16, 400 steps): eager against captured, float32 and bfloat16. DATA: the prepared data (default: the
# quickstart's, runs/quickstart/data). Usage: DATA=... OUT=... bash cuda/dev_run_loop.sh
export OUT=${OUT:-/tmp}
source cuda/dev_build.sh
timeout 200 python3 -m pytest -q --tb=short -p no:cacheprovider -m cuda tests/test_train.py tests/test_cuda_step.py 2>&1 | tail -6
run() {  # name, flags...
  local start=$(date +%s.%N)
  timeout 200 python3 -m tinyllm train --data ${DATA:-runs/quickstart/data} --out $OUT/r_$1 --device cuda --model small --batch-size 16 \
     --lr 2e-3 --min-lr 2e-4 --warmup-steps 50 --max-steps 400 --eval-interval 200 --checkpoint-interval 400 --no-progress "${@:2}" \
     > $OUT/r_$1.log 2>&1 || tail -5 $OUT/r_$1.log
  python3 - $1 $(date +%s.%N) $start <<'PY'
import json, os, sys, statistics
name, end, start = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [json.loads(l) for l in open(f"{os.environ['OUT']}/r_{name}/metrics.jsonl")]
tps = [r["tokens_per_s"] for r in rows[10:] if "val_loss" not in r]
print(f"{name:14s} median {statistics.median(tps):>10,.0f} tok/s  ({1e3 * 16 * 128 / statistics.median(tps):.2f} ms/step)  "
      f"wall {end - start:.0f} s  loss@400 {rows[-1]['loss']:.4f}  val {rows[-1]['val_loss']:.4f}")
PY
}
run eager_fp32
run graph_fp32 --cuda-graph
run eager_bf16 --dtype bfloat16
run graph_bf16 --dtype bfloat16 --cuda-graph
