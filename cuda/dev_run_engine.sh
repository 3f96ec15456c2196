#!/bin/bash
# The engine on the GPU machine: build the extensions in place, run the engine's CUDA tests
# (tests/test_cuda_engine.py), then the training-step benchmark against PyTorch; logs go to $OUT
# (or /tmp). Usage: cuda/dev_run_engine.sh [timed steps, default 5]
source "$(dirname "$0")/dev_build.sh"
timeout 300 python3 -m pytest -q --tb=short -m cuda tests/test_cuda_engine.py -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -60
timeout 400 python3 benchmarks/train.py --device cuda --steps ${1:-5} --out $OUT/train_cuda.json 2>&1 | tee $OUT/bench.log
