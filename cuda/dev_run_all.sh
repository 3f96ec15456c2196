#!/bin/bash
# The figures of benchmarks/RESULTS.md on the GPU machine: build, then the phases named (in that order):
#   step      the GPT-2 124M training step, eager and CUDA-graph, against PyTorch eager in the same process;
#             the small preset captured; with COMPILE=1 also gpt2 captured against torch.compile
#   kernels   the kernel rows of issue 6's bar (ours, PyTorch, ratio, TFLOP/s or GB/s)
#   tests     every cuda-marked test
# Usage: cuda/dev_run_all.sh [phase ...] (default: step kernels tests). Logs and JSON rows go to $OUT (default /tmp).
source "$(dirname "$0")/dev_build.sh"
train() { timeout 120 python3 benchmarks/train.py --device cuda --steps ${STEPS:-10} --out $OUT/train_$1.json "${@:2}" \
            2>&1 | tee -a $OUT/step.log | tail -3; }
for phase in ${*:-step kernels tests}; do
  case $phase in
  step)
    train gpt2 --preset gpt2
    train gpt2_graph --preset gpt2 --cuda-graph
    train small_graph --preset small --cuda-graph
    [ -n "$COMPILE" ] && train gpt2_graph_compile --preset gpt2 --cuda-graph --torch-compile ;;
  kernels)
    timeout 200 python3 benchmarks/kernels_cuda.py --reps ${REPS:-20} \
      --only attention,matmul,layernorm,add_norm,softmax,cross_entropy,adamw 2>&1 | tee $OUT/kernels.log ;;
  tests)
    timeout 240 python3 -m pytest -q --tb=short -m cuda tests -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -15 ;;
  esac
done
