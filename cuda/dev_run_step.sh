#!/bin/bash
# The training step on the GPU machine (issue 6): build in place, run the step's CUDA tests, profile
# one step, then the step benchmark against PyTorch, eager and captured in a CUDA graph (each preset
# in its own process), and the kernel rows of the step's end. Logs go to $OUT (or /tmp).
# Usage: cuda/dev_run_step.sh [timed steps, default 10] [extra train.py flags, e.g. --torch-compile]
set -o pipefail
OUT=${OUT:-/tmp}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
start=$(date +%s)
TINYLLM_CUDA_ARCHS=${TINYLLM_CUDA_ARCHS:-90} TINYLLM_BUILD_JOBS=16 python3 setup.py build_ext --inplace > $OUT/build.log 2>&1
echo "build: $(( $(date +%s) - start )) s, rc $?"; grep -E "tinyllm:|error" $OUT/build.log | head -30
python3 -c "import tinyllm._cuda" || exit 1
timeout 240 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_step.py tests/test_cuda_engine.py -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -30
for preset in gpt2 small; do
  timeout 60 python3 benchmarks/profile_step_cuda.py --preset $preset --steps 3 --top 25 2>&1 | tee $OUT/profile_$preset.log
done
timeout 60 python3 benchmarks/kernels_cuda.py --only sum_rows,adamw --reps 20 2>&1 | tee $OUT/kernels.log
steps=${1:-10}; shift
for preset in gpt2 small medium; do
  for graph in "" --cuda-graph; do
    timeout 120 python3 benchmarks/train.py --device cuda --preset $preset --steps $steps $graph "$@" \
      --out $OUT/train_${preset}${graph}.json 2>&1 | tee $OUT/bench_${preset}${graph}.log | tail -4
  done
done
