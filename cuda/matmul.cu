// Our own bf16 GEMM on the tensor cores: row-major C[b] = op(A[b]) @ op(B[b]), op = optional
// transpose, float32 accumulation, bf16 output.
//
// Parallelisation (the classic Ampere-style tiled kernel, one step below CUTLASS):
// - each block computes a 128x128 tile of C for one batch entry (grid: N tiles, M tiles, batch);
// - its 8 warps form a 2x4 grid, each owning a 64x32 sub-tile = 4x4 mma.m16n8k16 tiles, 64 float
//   accumulators per thread;
// - the K dimension is walked 32 at a time through a 3-stage ring of shared-memory tiles filled by
//   cp.async, so the loads of tile k+2 overlap the tensor-core work on tile k;
// - shared tiles keep the global layout (the contiguous dimension stays contiguous), and ldmatrix
//   (.trans where the operand's contiguous dimension is not the one mma wants) turns them into
//   fragments: that is how all four transpose combinations run at the same speed;
// - rows of shared tiles are padded by 16 bytes, so the 8 row addresses of an ldmatrix fall in
//   different banks.
// Edges: out-of-range 16-byte chunks are zero-filled by cp.async and out-of-range C is not
// written, so any M, N, K works provided each operand's contiguous dimension is a multiple of 8
// and every buffer is 16-byte aligned (matmul_supported). On Hopper, matmul() runs the wgmma
// kernel of matmul_wgmma.cu instead; this one serves other GPUs.
#include <cstdlib>

#include "mma.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int BM = 128, BN = 128, BK = 32, kStages = 3, kThreads = 256, kPad = 8;

// Shared-memory shape of one stage of A (BM x BK, or BK x BM when transposed) and of B.
template <bool TRANS> struct ATile {
    static constexpr int rows = TRANS ? BK : BM, cols = TRANS ? BM : BK, elems = rows * (cols + kPad);
};
template <bool TRANS> struct BTile {
    static constexpr int rows = TRANS ? BN : BK, cols = TRANS ? BK : BN, elems = rows * (cols + kPad);
};

template <bool TA, bool TB> constexpr size_t smem_bytes() {
    return size_t(kStages) * (ATile<TA>::elems + BTile<TB>::elems) * sizeof(bf16);
}

template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads) gemm_kernel(const bf16* __restrict__ A, const bf16* __restrict__ B,
                                                        bf16* __restrict__ Cout, GemmShape s) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* sA = reinterpret_cast<bf16*>(smem_raw);
    bf16* sB = sA + kStages * ATile<TA>::elems;
    const int64_t M = s.M, N = s.N, K = s.K;
    A += blockIdx.z * s.stride_a;
    B += blockIdx.z * s.stride_b;
    Cout += blockIdx.z * s.stride_c;
    const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;  // this warp's sub-tile inside the block tile

    auto load_stage = [&](int stage, int64_t k0) {
        bf16* a = sA + stage * ATile<TA>::elems;
        bf16* b = sB + stage * BTile<TB>::elems;
        if (TA) load_tile<BK, BM, kThreads, kPad>(a, A, M, k0, m0, K, M);  // A stored K x M
        else load_tile<BM, BK, kThreads, kPad>(a, A, K, m0, k0, M, K);     // A stored M x K
        if (TB) load_tile<BN, BK, kThreads, kPad>(b, B, K, n0, k0, N, K);  // B stored N x K
        else load_tile<BK, BN, kThreads, kPad>(b, B, N, k0, n0, K, N);     // B stored K x N
    };

    float acc[4][4][4] = {};
    const int ktiles = static_cast<int>((K + BK - 1) / BK);
#pragma unroll
    for (int st = 0; st < kStages - 1; st++) {
        if (st < ktiles) load_stage(st, int64_t(st) * BK);
        cp_async_commit();
    }
    // ldmatrix lane roles: matrix j = lane / 8, row r = lane % 8 inside it.
    const int j = lane / 8, r = lane % 8;
    for (int kt = 0; kt < ktiles; kt++) {
        cp_async_wait<kStages - 2>();
        __syncthreads();  // tile kt has landed for every thread; every warp is done with tile kt - 1
        if (kt + kStages - 1 < ktiles) load_stage((kt + kStages - 1) % kStages, int64_t(kt + kStages - 1) * BK);
        cp_async_commit();
        const bf16* a = sA + (kt % kStages) * ATile<TA>::elems;
        const bf16* b = sB + (kt % kStages) * BTile<TB>::elems;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t af[4][4], bfr[2][4];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                // matrix j covers rows (j % 2) * 8.. and k (j / 2) * 8.. of the 16x16 A tile
                const int m = wm + mi * 16 + (j % 2) * 8, k = kk + (j / 2) * 8;
                if (TA) ldmatrix_x4<true>(af[mi], a + (k + r) * (BM + kPad) + m);
                else ldmatrix_x4<false>(af[mi], a + (m + r) * (BK + kPad) + k);
            }
#pragma unroll
            for (int ni = 0; ni < 2; ni++) {
                // matrix j covers n (j / 2) * 8.. and k (j % 2) * 8..: regs {0,1} feed n-tile 2ni, {2,3} n-tile 2ni+1
                const int n = wn + ni * 16 + (j / 2) * 8, k = kk + (j % 2) * 8;
                if (TB) ldmatrix_x4<false>(bfr[ni], b + (n + r) * (BK + kPad) + k);
                else ldmatrix_x4<true>(bfr[ni], b + (k + r) * (BN + kPad) + n);
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    mma_bf16(acc[mi][ni], af[mi], bfr[ni / 2][(ni % 2) * 2], bfr[ni / 2][(ni % 2) * 2 + 1]);
        }
    }
    cp_async_wait<0>();

    // Epilogue: each thread holds C[g][2q..2q+1] and C[g+8][2q..2q+1] of every 16x8 tile.
    const int g = lane / 4, q = lane % 4;
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int64_t row = m0 + wm + mi * 16 + g + h * 8, col = n0 + wn + ni * 8 + 2 * q;
                if (row >= M) continue;
                const float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
                bf16* out = Cout + row * N + col;
                if (col + 1 < N) *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v0, v1);
                else if (col < N) *out = __float2bfloat16(v0);
            }
}

template <bool TA, bool TB> void launch(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, cudaStream_t st) {
    auto kernel = gemm_kernel<TA, TB>;
    constexpr size_t smem = smem_bytes<TA, TB>();
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const dim3 grid(ceil_div(s.N, BN), ceil_div(s.M, BM), static_cast<unsigned>(s.batch));
    kernel<<<grid, kThreads, smem, st>>>((const bf16*)a, (const bf16*)b, (bf16*)c, s);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

bool matmul_supported(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt) {
    const int64_t a_contig = s.trans_a ? s.M : s.K, b_contig = s.trans_b ? s.K : s.N;
    return dt == DType::bf16 && a % 16 == 0 && b % 16 == 0 && c % 4 == 0 && a_contig % 8 == 0 && b_contig % 8 == 0 &&
           s.N % 2 == 0 && s.stride_a % 8 == 0 && s.stride_b % 8 == 0 && s.stride_c % 2 == 0 && s.batch <= 65535;
}

void matmul(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt, uintptr_t workspace,
            int64_t workspace_bytes, uintptr_t stream) {
    if (!matmul_supported(a, b, c, s, dt))
        throw std::invalid_argument("tinyllm._cuda.matmul: needs bf16, 16-byte aligned operands, contiguous dims % 8");
    if (s.batch == 0 || s.M == 0 || s.N == 0) return;
    // The Hopper kernel where it runs, unless TINYLLM_CUDA_MMA_SYNC=1 asks for this one (tests, benchmarks).
    const char* force = std::getenv("TINYLLM_CUDA_MMA_SYNC");
    if (!(force && std::string(force) == "1") && matmul_wgmma(a, b, c, s, workspace, workspace_bytes, stream)) return;
    const cudaStream_t st = as_stream(stream);
    if (s.trans_a) (s.trans_b ? launch<true, true> : launch<true, false>)(a, b, c, s, st);
    else (s.trans_b ? launch<false, true> : launch<false, false>)(a, b, c, s, st);
}

}  // namespace tinyllm::cuda
