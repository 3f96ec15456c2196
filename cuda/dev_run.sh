#!/bin/bash
# One iteration on the GPU machine: build tinyllm._cuda in place, run the CUDA tests, then the
# CUDA benchmark; logs go to $OUT (or /tmp). Usage: cuda/dev_run.sh [benchmark groups, e.g. layernorm,matmul]
source "$(dirname "$0")/dev_build.sh"
python3 -c "import tinyllm._cuda as m; print('cuBLASLt:', m.have_cublaslt())"
timeout 300 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_kernels.py tests/test_cuda_torch.py -p no:cacheprovider \
    2>&1 | tee $OUT/tests.log | tail -40
timeout 240 python3 benchmarks/kernels_cuda.py --only ${1:-layernorm,softmax,cross_entropy,gelu,embedding,adamw,matmul,attention} \
    2>&1 | tee $OUT/bench.log
