#!/bin/bash
# Residual + norm fusion on the GPU machine, in one call of under 400 s: build in place, the fused
# kernels' tests, their benchmark rows (and the plain layernorm rows beside them), the GPT-2 124M
# step eager and captured against PyTorch, then the rest of the CUDA suite with the time left.
# Everything goes to $OUT/run.log (and the screen); JSON rows to $OUT.
set -o pipefail
OUT=${OUT:-/tmp}
LOG=$OUT/run.log
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a $LOG
start=$(date +%s)
TINYLLM_CUDA_ARCHS=${TINYLLM_CUDA_ARCHS:-90} TINYLLM_BUILD_JOBS=16 python3 setup.py build_ext --inplace > $OUT/build.log 2>&1
echo "build: $(( $(date +%s) - start )) s, rc $?" | tee -a $LOG; grep -E "tinyllm:|error" $OUT/build.log | head -30
python3 -c "import tinyllm._cuda" || exit 1
timeout 60 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_kernels.py -k "norm" -p no:cacheprovider 2>&1 | tee -a $LOG | tail -15
OUT=$OUT timeout 45 python3 benchmarks/kernels_cuda.py --only add_norm,layernorm --reps 20 2>&1 | tee -a $LOG
for graph in "" --cuda-graph; do
  timeout 75 python3 benchmarks/train.py --device cuda --preset gpt2 --steps 10 $graph \
    --out $OUT/train_gpt2${graph}.json 2>&1 | tee -a $LOG | tail -4
done
echo "before the suite: $(( $(date +%s) - start )) s" | tee -a $LOG
timeout 200 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_kernels.py tests/test_cuda_engine.py tests/test_cuda_step.py \
  -p no:cacheprovider 2>&1 | tee -a $LOG | tail -30
echo "total: $(( $(date +%s) - start )) s" | tee -a $LOG
