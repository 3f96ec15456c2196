#!/bin/bash
# The training step on the GPU machine (issue 6): build in place, run the step's CUDA tests, profile
# one step, the kernel rows of the step, then the step benchmark against PyTorch, eager and captured
# in a CUDA graph (each preset in its own process), and captured against torch.compile for gpt2.
# Everything goes to $OUT/run.log (and the screen); JSON rows to $OUT/results (or /tmp/results).
# Usage: cuda/dev_run_step.sh [timed steps, default 10]
source "$(dirname "$0")/dev_build.sh"
LOG=$OUT/run.log RES=/tmp/results
mkdir -p $RES
cat $OUT/gpu.txt >> $LOG
timeout 240 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_step.py tests/test_cuda_engine.py -p no:cacheprovider 2>&1 | tee -a $LOG | tail -30
for preset in gpt2; do
  timeout 60 python3 benchmarks/profile_step_cuda.py --preset $preset --steps 3 --top 30 2>&1 | tee -a $LOG
done
OUT=$RES timeout 60 python3 benchmarks/kernels_cuda.py --only sum_rows,adamw,cast,rope --reps 20 2>&1 | tee -a $LOG
steps=${1:-10}
for preset in gpt2 small medium; do
  for graph in "" --cuda-graph; do
    timeout 120 python3 benchmarks/train.py --device cuda --preset $preset --steps $steps $graph \
      --out $RES/train_${preset}${graph}.json 2>&1 | tee -a $LOG | tail -4
  done
done
timeout 200 python3 benchmarks/train.py --device cuda --preset gpt2 --steps 5 --cuda-graph --torch-compile \
  --out $RES/train_gpt2_compile.json 2>&1 | tee -a $LOG | tail -4
