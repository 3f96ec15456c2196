// Fused attention in float32 on the CUDA cores, forward and backward, the same FlashAttention
// algorithm as attention.cu (online softmax; the backward rebuilds P from the saved lse; no T x S
// matrix in device memory) with exact float32 arithmetic (expf, no tensor cores), for head dims 64
// and 128:
//
//   forward:  o = softmax(q k^T * scale + mask) v,   lse = logsumexp of each row of masked scores
//   backward: P = exp(q k^T * scale - lse),  dS = P * (dO V^T - delta),  delta = rowsum(dO * O),
//             dQ = dS K * scale,  dK = dS^T Q * scale,  dV = P^T dO
//
// Every kernel has the same shape: a block of 8 warps owns 32 "rows" (4 per warp) and walks 32
// "columns" at a time through shared memory. A lane computes the dot products of its warp's rows with
// column `lane` (dots), the warp reduces or weights them, then the lanes switch to owning features
// d = lane, lane + 32, ... and accumulate weighted columns (accumulate), the weights passed by shuffle.
//  - forward: rows = queries, columns = keys (K for the dots, V for the sum);
//  - dQ: rows = queries, columns = keys; it also writes delta for the next kernel;
//  - dK, dV: rows = keys, columns = queries (from the first query the causal mask lets see them).
// No atomics: each output row is owned by one warp, so the float32 results are deterministic.
// With dropout (DROPOUT), the probabilities are multiplied by the factors of AttentionDropout: the row
// kernels' four lanes 4b..4b+3 hold the four keys of one counter for each of the warp's 4 rows, so
// each lane makes one row's words and transpose4 deals them out; the dK, dV kernel's lane holds the
// four keys of one counter (its query) and makes them itself.
#include "attention.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int kRows = 4, kWarps = 8, kThreads = 32 * kWarps, kTile = 32;  // rows per warp; block; columns

// rows x D floats from g (row0.., valid up to `end`) into shared memory rows of D + 4; 0 past the end.
template <int D> __device__ void load_rows(float* s, const float* g, int row0, int end, int rows) {
    for (int i = threadIdx.x; i < rows * D / 4; i += kThreads) {
        const int r = i / (D / 4), c = i % (D / 4) * 4;
        const float4 x = row0 + r < end ? *reinterpret_cast<const float4*>(g + int64_t(row0 + r) * D + c)
                                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        *reinterpret_cast<float4*>(s + r * (D + 4) + c) = x;
    }
}

// out[r] = rows[r] . cols[lane] for this warp's kRows rows (shared memory, rows of D + 4: the 16-byte
// reads of 8 consecutive lanes fall in distinct banks).
template <int D> __device__ __forceinline__ void dots(float (&out)[kRows], const float* rows, const float* cols) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int r = 0; r < kRows; r++) out[r] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
        const float4 c = *reinterpret_cast<const float4*>(cols + lane * (D + 4) + d);
#pragma unroll
        for (int r = 0; r < kRows; r++) {
            const float4 x = *reinterpret_cast<const float4*>(rows + r * (D + 4) + d);
            out[r] = fmaf(x.x, c.x, fmaf(x.y, c.y, fmaf(x.z, c.z, fmaf(x.w, c.w, out[r]))));
        }
    }
}

// acc[r][i] += sum over columns c of w[r] (held by lane c) * cols[c][lane + 32 i].
template <int D>
__device__ __forceinline__ void accumulate(float (&acc)[kRows][D / 32], const float (&w)[kRows], const float* cols) {
    const int lane = threadIdx.x % 32;
#pragma unroll 4
    for (int c = 0; c < kTile; c++) {
        float x[D / 32];
#pragma unroll
        for (int i = 0; i < D / 32; i++) x[i] = cols[c * (D + 4) + lane + 32 * i];
#pragma unroll
        for (int r = 0; r < kRows; r++) {
            const float wc = __shfl_sync(0xffffffffu, w[r], c);
#pragma unroll
            for (int i = 0; i < D / 32; i++) acc[r][i] = fmaf(wc, x[i], acc[r][i]);
        }
    }
}

// The dropout factors z[r] of key n0 + lane (this lane's) for the rows row0 + r of a row kernel.
__device__ __forceinline__ void row_dropout(float (&z)[kRows], const AttentionDropout& drop, uint64_t base, int64_t bh, int T,
                                            int S, int row0, int n0) {
    const int lane = threadIdx.x % 32, m = lane % 4;
    const uint4 w = philox4x32_10(base + uint64_t(bh * T + row0 + m) * (S / 4) + (n0 + lane) / 4, drop.seed);
    keep_factors(z, transpose4<1>(w, m), drop);  // word m (this lane's key) of the counters of rows row0..row0 + 3
}

// Whether query `qi` may see key `kj` (both inside their sequences).
__device__ __forceinline__ bool visible(int qi, int kj, int T, int S, bool causal) {
    return qi < T && kj < S && !(causal && kj > qi + S - T);
}

template <int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads) forward_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                                           const float* __restrict__ v, float* __restrict__ o,
                                                           float* __restrict__ lse, int T, int S, bool causal,
                                                           float scale, AttentionDropout drop) {
    constexpr int LD = D + 4, BM = kWarps * kRows;
    extern __shared__ __align__(16) float smem[];
    float *sQ = smem, *sK = sQ + BM * LD, *sV = sK + kTile * LD;
    const int64_t bh = blockIdx.y;
    q += bh * T * D, k += bh * S * D, v += bh * S * D, o += bh * T * D, lse += bh * T;
    const int m0 = blockIdx.x * BM, lane = threadIdx.x % 32, warp = threadIdx.x / 32, row0 = m0 + warp * kRows;
    const int n_end = causal ? min(S, m0 + BM + S - T) : S;
    const uint64_t base = DROPOUT ? dropout_base(drop) : 0;
    load_rows<D>(sQ, q, m0, T, BM);

    float acc[kRows][D / 32] = {}, m[kRows], l[kRows] = {};
#pragma unroll
    for (int r = 0; r < kRows; r++) m[r] = -INFINITY;
    for (int n0 = 0; n0 < n_end; n0 += kTile) {
        __syncthreads();  // every warp is done with the previous tiles
        load_rows<D>(sK, k, n0, S, kTile);
        load_rows<D>(sV, v, n0, S, kTile);
        __syncthreads();
        float s[kRows];
        dots<D>(s, sQ + warp * kRows * LD, sK);
#pragma unroll
        for (int r = 0; r < kRows; r++) {  // online softmax over this tile's 32 keys, one per lane
            const float x = visible(row0 + r, n0 + lane, T, S, causal) ? s[r] * scale : -INFINITY;
            const float mx = fmaxf(m[r], warp_max(x));
            const float base = mx == -INFINITY ? 0.0f : mx;  // a row with nothing visible yet
            const float corr = expf(m[r] - base);
            s[r] = expf(x - base);
            l[r] = l[r] * corr + warp_sum(s[r]);
            m[r] = mx;
#pragma unroll
            for (int i = 0; i < D / 32; i++) acc[r][i] *= corr;
        }
        if constexpr (DROPOUT) {  // O sums the dropped probabilities; l, the row's normaliser, the kept ones
            float z[kRows];
            row_dropout(z, drop, base, bh, T, S, row0, n0);
#pragma unroll
            for (int r = 0; r < kRows; r++) s[r] *= z[r];
        }
        accumulate<D>(acc, s, sV);
    }
#pragma unroll
    for (int r = 0; r < kRows; r++) {
        if (row0 + r >= T) continue;
#pragma unroll
        for (int i = 0; i < D / 32; i++) o[int64_t(row0 + r) * D + lane + 32 * i] = acc[r][i] / l[r];
        if (lane == 0) lse[row0 + r] = m[r] + logf(l[r]);
    }
}

// dQ over a block of queries; writes delta = rowsum(dO * O) for the dK, dV kernel.
template <int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads) backward_dq_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                                               const float* __restrict__ v, const float* __restrict__ o,
                                                               const float* __restrict__ dout,
                                                               const float* __restrict__ lse, float* __restrict__ delta,
                                                               float* __restrict__ dq, int T, int S, bool causal,
                                                               float scale, AttentionDropout drop) {
    constexpr int LD = D + 4, BM = kWarps * kRows;
    extern __shared__ __align__(16) float smem[];
    float *sQ = smem, *sdO = sQ + BM * LD, *sK = sdO + BM * LD, *sV = sK + kTile * LD;
    const int64_t bh = blockIdx.y;
    q += bh * T * D, o += bh * T * D, dout += bh * T * D, dq += bh * T * D, lse += bh * T, delta += bh * T;
    k += bh * S * D, v += bh * S * D;
    const int m0 = blockIdx.x * BM, lane = threadIdx.x % 32, warp = threadIdx.x / 32, row0 = m0 + warp * kRows;
    const int n_end = causal ? min(S, m0 + BM + S - T) : S;
    const uint64_t base = DROPOUT ? dropout_base(drop) : 0;
    load_rows<D>(sQ, q, m0, T, BM);
    load_rows<D>(sdO, dout, m0, T, BM);

    float row_lse[kRows], row_delta[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
        const int row = min(row0 + r, T - 1);  // rows past the end compute on a real row, unwritten
        float x = 0.0f;
#pragma unroll
        for (int i = 0; i < D / 32; i++) x += dout[int64_t(row) * D + lane + 32 * i] * o[int64_t(row) * D + lane + 32 * i];
        row_delta[r] = warp_sum(x);
        row_lse[r] = lse[row];
        if (lane == 0 && row0 + r < T) delta[row] = row_delta[r];
    }

    float acc[kRows][D / 32] = {};
    for (int n0 = 0; n0 < n_end; n0 += kTile) {
        __syncthreads();
        load_rows<D>(sK, k, n0, S, kTile);
        load_rows<D>(sV, v, n0, S, kTile);
        __syncthreads();
        float s[kRows], dp[kRows];
        dots<D>(s, sQ + warp * kRows * LD, sK);
        dots<D>(dp, sdO + warp * kRows * LD, sV);
        if constexpr (DROPOUT) {  // dP = (dO V^T) Z
            float z[kRows];
            row_dropout(z, drop, base, bh, T, S, row0, n0);
#pragma unroll
            for (int r = 0; r < kRows; r++) dp[r] *= z[r];
        }
#pragma unroll
        for (int r = 0; r < kRows; r++) {
            const float p = visible(row0 + r, n0 + lane, T, S, causal) ? expf(s[r] * scale - row_lse[r]) : 0.0f;
            s[r] = p * (dp[r] - row_delta[r]);
        }
        accumulate<D>(acc, s, sK);
    }
#pragma unroll
    for (int r = 0; r < kRows; r++)
        if (row0 + r < T)
#pragma unroll
            for (int i = 0; i < D / 32; i++) dq[int64_t(row0 + r) * D + lane + 32 * i] = acc[r][i] * scale;
}

// dK and dV over a block of keys.
template <int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads) backward_dkv_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                                                const float* __restrict__ v,
                                                                const float* __restrict__ dout,
                                                                const float* __restrict__ lse,
                                                                const float* __restrict__ delta, float* __restrict__ dk,
                                                                float* __restrict__ dv, int T, int S, bool causal,
                                                                float scale, AttentionDropout drop) {
    constexpr int LD = D + 4, BN = kWarps * kRows;
    extern __shared__ __align__(16) float smem[];
    float *sK = smem, *sV = sK + BN * LD, *sQ = sV + BN * LD, *sdO = sQ + kTile * LD;
    float *sL = sdO + kTile * LD, *sD = sL + kTile;
    const int64_t bh = blockIdx.y;
    q += bh * T * D, dout += bh * T * D, lse += bh * T, delta += bh * T;
    k += bh * S * D, v += bh * S * D, dk += bh * S * D, dv += bh * S * D;
    const int n0 = blockIdx.x * BN, lane = threadIdx.x % 32, warp = threadIdx.x / 32, key0 = n0 + warp * kRows;
    const int m_begin = causal ? max(0, n0 - (S - T)) / kTile * kTile : 0;  // the first query that sees key n0
    const uint64_t base = DROPOUT ? dropout_base(drop) : 0;
    load_rows<D>(sK, k, n0, S, BN);
    load_rows<D>(sV, v, n0, S, BN);

    float dk_acc[kRows][D / 32] = {}, dv_acc[kRows][D / 32] = {};
    for (int m0 = m_begin; m0 < T; m0 += kTile) {
        __syncthreads();
        load_rows<D>(sQ, q, m0, T, kTile);
        load_rows<D>(sdO, dout, m0, T, kTile);
        if (threadIdx.x < kTile) {
            const bool in = m0 + threadIdx.x < T;
            sL[threadIdx.x] = in ? lse[m0 + threadIdx.x] : 0.0f;
            sD[threadIdx.x] = in ? delta[m0 + threadIdx.x] : 0.0f;
        }
        __syncthreads();
        float p[kRows], ds[kRows];
        dots<D>(p, sK + warp * kRows * LD, sQ);
        dots<D>(ds, sV + warp * kRows * LD, sdO);
        float z[kRows] = {1.0f, 1.0f, 1.0f, 1.0f};  // dropout's factors of keys key0..key0 + 3: one counter
        if constexpr (DROPOUT)
            keep_factors(z, philox4x32_10(base + uint64_t(bh * T + m0 + lane) * (S / 4) + key0 / 4, drop.seed), drop);
#pragma unroll
        for (int r = 0; r < kRows; r++) {  // dS = P (dP Z - delta); dV takes P Z
            p[r] = visible(m0 + lane, key0 + r, T, S, causal) ? expf(p[r] * scale - sL[lane]) : 0.0f;
            ds[r] = p[r] * (ds[r] * z[r] - sD[lane]);
            p[r] *= z[r];
        }
        accumulate<D>(dv_acc, p, sdO);
        accumulate<D>(dk_acc, ds, sQ);
    }
#pragma unroll
    for (int r = 0; r < kRows; r++)
        if (key0 + r < S)
#pragma unroll
            for (int i = 0; i < D / 32; i++) {
                dk[int64_t(key0 + r) * D + lane + 32 * i] = dk_acc[r][i] * scale;
                dv[int64_t(key0 + r) * D + lane + 32 * i] = dv_acc[r][i];
            }
}

// One of the kernels above over the row blocks of `rows` rows x BH, with its shared memory: `tiles`
// blocks of 32 rows of D + 4 floats, and `extra` floats.
template <typename K, typename... Args>
void launch(K kernel, int64_t rows, int64_t BH, int tiles, int D, int extra, cudaStream_t st, Args... args) {
    const int smem = (tiles * kTile * (D + 4) + extra) * sizeof(float);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<dim3(ceil_div(rows, kWarps * kRows), static_cast<unsigned>(BH)), kThreads, smem, st>>>(args...);
    CUDA_CHECK_LAUNCH();
}

template <int D, bool DROPOUT> void forward(const AttentionArgs& a, cudaStream_t st) {
    launch(forward_kernel<D, DROPOUT>, a.T, a.BH, 3, D, 0, st, (const float*)a.q, (const float*)a.k, (const float*)a.v,
           (float*)a.o, (float*)a.lse, a.T, a.S, a.causal, a.scale, a.drop);
}

template <int D, bool DROPOUT> void backward(const AttentionArgs& a, cudaStream_t st) {
    const auto *q = (const float*)a.q, *k = (const float*)a.k, *v = (const float*)a.v, *dout = (const float*)a.dout;
    const auto* lse = (const float*)a.lse;
    float* delta = reinterpret_cast<float*>(a.scratch);
    launch(backward_dq_kernel<D, DROPOUT>, a.T, a.BH, 4, D, 0, st, q, k, v, (const float*)a.o, dout, lse, delta,
           (float*)a.dq, a.T, a.S, a.causal, a.scale, a.drop);
    launch(backward_dkv_kernel<D, DROPOUT>, a.S, a.BH, 4, D, 2 * kTile, st, q, k, v, dout, lse, (const float*)delta,
           (float*)a.dk, (float*)a.dv, a.T, a.S, a.causal, a.scale, a.drop);
}

}  // namespace

void attention_forward_f32(const AttentionArgs& a, cudaStream_t st) {
    const bool drop = a.drop.p > 0.0f;
    (a.D == 64 ? (drop ? forward<64, true> : forward<64, false>) : (drop ? forward<128, true> : forward<128, false>))(a, st);
}

void attention_backward_f32(const AttentionArgs& a, cudaStream_t st) {
    const bool drop = a.drop.p > 0.0f;
    (a.D == 64 ? (drop ? backward<64, true> : backward<64, false>) : (drop ? backward<128, true> : backward<128, false>))(a, st);
}

}  // namespace tinyllm::cuda
