#!/bin/bash
# Attention on the GPU machine: build tinyllm._cuda in place, run the attention tests (against the
# float64 reference and against PyTorch SDPA), then the attention rows of the CUDA benchmark (ours
# and SDPA in one process); logs go to $OUT (or /tmp). Usage: cuda/dev_run_attention.sh [reps, default 30]
set -o pipefail
OUT=${OUT:-/tmp}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader | tee $OUT/gpu.txt
start=$(date +%s)
TINYLLM_CUDA_ARCHS=${TINYLLM_CUDA_ARCHS:-90} TINYLLM_BUILD_JOBS=16 python3 setup.py build_ext --inplace --force > $OUT/build.log 2>&1
rc=$?; echo "build: $(( $(date +%s) - start )) s, rc $rc"; grep -E "tinyllm:|error" $OUT/build.log | head -30
python3 -c "import tinyllm._cuda" || exit 1
timeout 300 python3 -m pytest -q --tb=short -m cuda -k attention tests/test_cuda_kernels.py tests/test_cuda_torch.py \
    -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -30
timeout 200 python3 benchmarks/kernels_cuda.py --only attention --reps ${1:-30} 2>&1 | tee $OUT/bench.log
# Where the time goes: each kernel of our fwd+bwd at the benchmark shape (torch.profiler sees every
# launch of the process, CuPy's too).
timeout 100 python3 - <<'PY' 2>&1 | tee $OUT/profile.log
import cupy, torch
from tinyllm import dtypes
from tinyllm.backend import cuda
for D in (64, 128):
    q, k, v, do = (cupy.random.standard_normal((16, 12, 1024, D), dtype=cupy.float32).astype(dtypes.bfloat16) for _ in range(4))
    step = lambda: cuda.attention_backward(do, q, k, v, *cuda.attention_forward(q, k, v, True, D ** -0.5), True, D ** -0.5)
    step(); torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            step()
        torch.cuda.synchronize()
    print(f"D{D}:", prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=60))
PY
