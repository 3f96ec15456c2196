#!/bin/bash
# Nsight Compute on the attention kernels at the bar's shape (B16 H12 T1024 D64, causal, bf16): one
# launch each of the forward and the backward's main kernel, with the stall reasons (cycles per issued
# instruction spent in each) and memory
# sections; the full report goes to $OUT/ncu.txt. Usage: cuda/dev_ncu_attention.sh
source "$(dirname "$0")/dev_build.sh"
cat > /tmp/attn_once.py <<'PY'
import cupy
from tinyllm import dtypes
from tinyllm.backend import cuda
D = 64
q, k, v, do = (cupy.random.standard_normal((16, 12, 1024, D), dtype=cupy.float32).astype(dtypes.bfloat16) for _ in range(4))
for _ in range(2):
    o, lse = cuda.attention_forward(q, k, v, True, D ** -0.5)
    cuda.attention_backward(do, q, k, v, o, lse, True, D ** -0.5)
cupy.cuda.Device().synchronize()
PY
timeout 300 ncu --kernel-name regex:"attention_(forward|backward)_wgmma" --launch-skip 2 --launch-count 2 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
    --section Occupancy --section LaunchStats --metrics lts__t_sectors_op_red.sum,smsp__inst_executed_op_global_red.sum,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio \
    python3 /tmp/attn_once.py > $OUT/ncu.txt 2>&1
grep -E "stalled_.*[0-9]\.[0-9]|attention_|Duration|Throughput|Stall|Warp Cycles|Issued|Eligible|Active Warps|red|atom|Registers|Block Limit|Achieved|L2 Hit|Mem Busy|Max Bandwidth" $OUT/ncu.txt | head -120
