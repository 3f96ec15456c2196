#!/bin/bash
# The figures of benchmarks/RESULTS.md on the GPU machine, in two phases that each fit one device call
# (the second reuses the first's in-place build on a warm machine):
#   cuda/dev_run_all.sh kernels   build, every cuda-marked test, the kernel rows of issue 6's bar
#   cuda/dev_run_all.sh step      the GPT-2 124M training step: eager and CUDA-graph against PyTorch
#                                 eager, graph against torch.compile; the small preset captured
# Logs and JSON rows go to $OUT (default /tmp).
source "$(dirname "$0")/dev_build.sh"
case ${1:-kernels} in
kernels)
  timeout 240 python3 -m pytest -q --tb=short -m cuda tests -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -15
  timeout 200 python3 benchmarks/kernels_cuda.py --reps 20 --only layernorm,add_norm,softmax,cross_entropy,adamw,matmul,attention \
    2>&1 | tee $OUT/kernels.log ;;
step)
  run() { timeout 150 python3 benchmarks/train.py --device cuda --steps 10 --out $OUT/train_$1.json "${@:2}" 2>&1 | tee -a $OUT/step.log | tail -4; }
  run gpt2 --preset gpt2
  run gpt2_graph --preset gpt2 --cuda-graph
  run small_graph --preset small --cuda-graph
  run gpt2_graph_compile --preset gpt2 --cuda-graph --torch-compile ;;
esac
