#!/bin/bash
# Attention on the GPU machine: build tinyllm._cuda in place, a quick error check of each kernel
# pair (wgmma and mma.sync), the attention rows of the CUDA benchmark (ours and SDPA in one process;
# once as built, once with TINYLLM_CUDA_MMA_SYNC=1), the attention tests (against the float64
# reference and against PyTorch SDPA), then a kernel profile; logs go to $OUT (or /tmp).
# Usage: cuda/dev_run_attention.sh [reps, default 30]
BUILD_FLAGS=--force source "$(dirname "$0")/dev_build.sh"
# Largest error of dq, dk, dv (relative to the largest reference value) at a few small shapes, per kernel.
timeout 60 python3 - <<'PY' 2>&1 | tee $OUT/check.log
import os
import cupy
import numpy as np
from tinyllm import dtypes
from tinyllm.backend import cuda, reference

print("attention on wgmma:", cuda._cuda.attention_uses_wgmma())
f64 = lambda a: cupy.asnumpy(a).astype(np.float64)
rnd = lambda shape: cupy.random.standard_normal(shape, dtype=np.float32).astype(dtypes.bfloat16)
for force in ("0", "1"):
    os.environ["TINYLLM_CUDA_MMA_SYNC"] = force
    for T, S, D, causal in [(128, 128, 64, False), (128, 128, 64, True), (200, 200, 64, True), (130, 130, 128, True),
                            (64, 200, 128, False), (1000, 1000, 64, True)]:
        q, do, k, v = rnd((1, 2, T, D)), rnd((1, 2, T, D)), rnd((1, 2, S, D)), rnd((1, 2, S, D))
        o, lse = cuda.attention_forward(q, k, v, causal, D ** -0.5)
        ro, rlse = reference.attention_forward(f64(q), f64(k), f64(v), causal, D ** -0.5)
        err_o = np.abs(f64(o) - ro).max() / np.abs(ro).max()
        err_lse = np.abs(f64(lse) - rlse).max()
        grads = cuda.attention_backward(do, q, k, v, o, lse, causal, D ** -0.5)
        refs = reference.attention_backward(f64(do), f64(q), f64(k), f64(v), f64(o), rlse, causal, D ** -0.5)
        errs = [np.abs(f64(g) - r).max() / np.abs(r).max() for g, r in zip(grads, refs)]
        print(f"MMA_SYNC={force} T{T} S{S} D{D} causal={causal}: o {err_o:.1e} lse {err_lse:.1e} dq {errs[0]:.1e} dk {errs[1]:.1e} dv {errs[2]:.1e}")
PY
timeout 70 python3 benchmarks/kernels_cuda.py --only attention --reps ${1:-30} 2>&1 | tee $OUT/bench.log
TINYLLM_CUDA_MMA_SYNC=1 timeout 70 python3 benchmarks/kernels_cuda.py --only attention --reps ${1:-30} 2>&1 \
    | tee $OUT/bench_mma_sync.log
timeout ${TEST_TIMEOUT:-150} python3 -m pytest -q --tb=short -m cuda -k attention tests/test_cuda_kernels.py \
    tests/test_cuda_torch.py -p no:cacheprovider 2>&1 | tee $OUT/tests.log | tail -30
# Where the time goes: the GPU kernels of one fwd+bwd at the benchmark shape, ours and SDPA's, summed
# per call (torch.profiler sees every launch of the process, CuPy's too), with our kernels listed.
timeout 60 python3 - <<'PY' 2>&1 | tee $OUT/profile.log
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
