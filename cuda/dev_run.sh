#!/bin/bash
# One iteration on the GPU machine: build tinyllm._cuda in place, run the CUDA tests, then the
# CUDA benchmark; logs go to $OUT (or /tmp). Usage: cuda/dev_run.sh [benchmark groups, e.g. layernorm,matmul]
set -o pipefail
OUT=${OUT:-/tmp}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader | tee $OUT/gpu.txt
start=$(date +%s)
TINYLLM_CUDA_ARCHS=${TINYLLM_CUDA_ARCHS:-90} TINYLLM_BUILD_JOBS=16 python3 setup.py build_ext --inplace > $OUT/build.log 2>&1
rc=$?; echo "build: $(( $(date +%s) - start )) s, rc $rc"; grep -E "tinyllm:|error" $OUT/build.log | head -30
python3 -c "import tinyllm._cuda as m; print('tinyllm._cuda ok, cuBLASLt:', m.have_cublaslt())" || exit 1
timeout 300 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_kernels.py tests/test_cuda_torch.py -p no:cacheprovider \
    2>&1 | tee $OUT/tests.log | tail -40
timeout 240 python3 benchmarks/kernels_cuda.py --only ${1:-layernorm,softmax,cross_entropy,gelu,embedding,adamw,matmul,attention} \
    2>&1 | tee $OUT/bench.log
