// Fused attention forward, FlashAttention-2 style, bf16 with float32 accumulation, head dim 64/128:
//
//   o = softmax(q k^T * scale + mask) v,   lse = logsumexp of each row of masked scores
//
// causal: query i sees key j <= i + (S - T) (the contract's bottom-right convention, for a query
// block at the end of a longer key sequence). No T x S matrix ever reaches device memory.
// Parallelisation: one block of 4 warps per (64 queries, batch*head); each warp owns 16 query rows,
// keeps its Q fragments in registers and walks the keys 64 at a time: K and V tiles go to shared
// memory (cp.async), S = Q K^T on the tensor cores (mma.sync m16n8k16), then the online softmax in
// registers (each thread holds 2 rows; the running max and sum are combined across the 4 threads of
// a quad), whose probabilities are re-packed as bf16 A fragments for O += P V without touching
// shared memory. Causal blocks stop at the last key their last query can see. The backward pass
// still runs the CuPy fallback (tinyllm/backend/cuda.py).
#include "mma.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int BM = 64, BN = 64, kThreads = 128, kPad = 8;

template <int D>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                                     const bf16* __restrict__ v, bf16* __restrict__ o,
                                                                     float* __restrict__ lse, int T, int S, bool causal,
                                                                     float scale) {
    constexpr int LD = D + kPad;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
    bf16* sK = sQ + BM * LD;
    bf16* sV = sK + BN * LD;
    const int64_t bh = blockIdx.y;
    q += bh * T * D, k += bh * S * D, v += bh * S * D, o += bh * T * D, lse += bh * T;
    const int m0 = blockIdx.x * BM, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane / 4, qd = lane % 4, j = lane / 8, r = lane % 8;  // fragment and ldmatrix roles

    load_tile<BM, D, kThreads, kPad>(sQ, q, D, m0, 0, T, D);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        ldmatrix_x4<false>(qf[kk], sQ + (warp * 16 + (j % 2) * 8 + r) * LD + kk * 16 + (j / 2) * 8);

    float acc[D / 8][4] = {}, row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
    const int n_end = causal ? min(S, m0 + BM + S - T) : S;
    for (int n0 = 0; n0 < n_end; n0 += BN) {
        __syncthreads();  // every warp is done with the previous K and V tiles
        load_tile<BN, D, kThreads, kPad>(sK, k, D, n0, 0, S, D);
        load_tile<BN, D, kThreads, kPad>(sV, v, D, n0, 0, S, D);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();

        float s[BN / 8][4] = {};  // this warp's 16 x 64 scores
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
            for (int ni = 0; ni < BN / 16; ni++) {
                uint32_t kf[4];  // K stored (key, d) is the "col" B operand of S = Q K^T as it stands
                ldmatrix_x4<false>(kf, sK + (ni * 16 + (j / 2) * 8 + r) * LD + kk * 16 + (j % 2) * 8);
                mma_bf16(s[2 * ni], qf[kk], kf[0], kf[1]);
                mma_bf16(s[2 * ni + 1], qf[kk], kf[2], kf[3]);
            }

        // Online softmax: rows g and g + 8 of this warp's 16; columns 2qd, 2qd+1 of each 8-key tile.
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = m0 + warp * 16 + g + h * 8;
            float mx = row_max[h];
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int col = n0 + nt * 8 + 2 * qd + e;
                    const bool hidden = col >= S || (causal && col > row + S - T);
                    const float x = hidden ? -INFINITY : s[nt][2 * h + e] * scale;
                    s[nt][2 * h + e] = x;
                    mx = fmaxf(mx, x);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float corr = mx == -INFINITY ? 1.0f : expf(row_max[h] - mx);
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float p = mx == -INFINITY ? 0.0f : expf(s[nt][2 * h + e] - mx);
                    s[nt][2 * h + e] = p;
                    sum += p;
                }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            row_sum[h] = row_sum[h] * corr + sum;
            row_max[h] = mx;
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) acc[dt][2 * h] *= corr, acc[dt][2 * h + 1] *= corr;
        }

        // O += P V: two adjacent 8-key score tiles are exactly one 16-key A fragment.
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                uint32_t vf[4];  // V stored (key, d): the B operand wants it transposed
                ldmatrix_x4<true>(vf, sV + (kk * 16 + (j % 2) * 8 + r) * LD + dn * 16 + (j / 2) * 8);
                mma_bf16(acc[2 * dn], pa, vf[0], vf[1]);
                mma_bf16(acc[2 * dn + 1], pa, vf[2], vf[3]);
            }
        }
    }

#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = m0 + warp * 16 + g + h * 8;
        if (row >= T) continue;
        const float inv = 1.0f / row_sum[h];
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
            *reinterpret_cast<__nv_bfloat162*>(o + int64_t(row) * D + dt * 8 + 2 * qd) =
                __floats2bfloat162_rn(acc[dt][2 * h] * inv, acc[dt][2 * h + 1] * inv);
        if (qd == 0) lse[row] = row_max[h] + logf(row_sum[h]);
    }
}

template <int D> void launch(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, int64_t BH, int T, int S,
                             bool causal, float scale, cudaStream_t st) {
    auto kernel = attention_forward_kernel<D>;
    constexpr int smem = (BM + 2 * BN) * (D + kPad) * sizeof(bf16);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<dim3(ceil_div(T, BM), static_cast<unsigned>(BH)), kThreads, smem, st>>>(
        (const bf16*)q, (const bf16*)k, (const bf16*)v, (bf16*)o, (float*)lse, T, S, causal, scale);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_forward(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, int64_t BH, int T, int S,
                       int D, bool causal, float scale, DType dt, uintptr_t stream) {
    if (dt != DType::bf16 || (D != 64 && D != 128))
        throw std::invalid_argument("tinyllm._cuda.attention_forward: bf16 with head dim 64 or 128");
    if (BH == 0 || T == 0) return;
    (D == 64 ? launch<64> : launch<128>)(q, k, v, o, lse, BH, T, S, causal, scale, as_stream(stream));
}

}  // namespace tinyllm::cuda
