#!/bin/bash
# The engine on the GPU machine: build the extensions in place, run the engine's CUDA tests
# (tests/test_cuda_engine.py), then the training-step benchmark against PyTorch; logs go to $OUT
# (or /tmp). Usage: cuda/dev_run_engine.sh [timed steps, default 5]
set -o pipefail
OUT=${OUT:-/tmp}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/gpu.txt
start=$(date +%s)
TINYLLM_CUDA_ARCHS=${TINYLLM_CUDA_ARCHS:-90} TINYLLM_BUILD_JOBS=16 python3 setup.py build_ext --inplace > $OUT/build.log 2>&1
rc=$?; echo "build: $(( $(date +%s) - start )) s, rc $rc"; grep -E "tinyllm:|error" $OUT/build.log | head -30
python3 -c "import tinyllm._cuda" || exit 1
timeout 300 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_engine.py -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -60
timeout 400 python3 benchmarks/train.py --device cuda --steps ${1:-5} --out $OUT/train_cuda.json 2>&1 | tee $OUT/bench.log
