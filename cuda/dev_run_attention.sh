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
# Where the time goes: the GPU kernels of one fwd+bwd at the benchmark shape, ours and SDPA's, summed
# per call (torch.profiler sees every launch of the process, CuPy's too), with our kernels listed.
timeout 100 python3 - <<'PY' 2>&1 | tee $OUT/profile.log
import cupy, torch
from tinyllm import dtypes
from tinyllm.backend import cuda

def kernels(step, calls=10):
    step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
    rows = [(e.key, e.self_device_time_total / calls) for e in prof.key_averages() if e.self_device_time_total > 0]
    return sorted(rows, key=lambda r: -r[1])

for D in (64, 128):
    q, k, v, do = (cupy.random.standard_normal((16, 12, 1024, D), dtype=cupy.float32).astype(dtypes.bfloat16)
                   for _ in range(4))
    tq, tk, tv = (torch.from_dlpack(a).requires_grad_() for a in (q, k, v))
    tdo = torch.from_dlpack(do)

    def theirs():
        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tdo)
        tq.grad = tk.grad = tv.grad = None

    ours = kernels(lambda: cuda.attention_backward(do, q, k, v, *cuda.attention_forward(q, k, v, True, D ** -0.5),
                                                   True, D ** -0.5))
    sdpa = kernels(theirs)
    a, b = sum(t for _, t in ours), sum(t for _, t in sdpa)
    print(f"D{D} kernel time per fwd+bwd: ours {a:.1f} us, SDPA {b:.1f} us, x{b / a:.2f}")
    for name, t in ours + [("-- SDPA: " + n, t) for n, t in sdpa]:
        print(f"   {t:8.1f} us  {name[:90]}")
PY
