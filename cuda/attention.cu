// Fused attention, forward and backward, FlashAttention-2 style (Dao 2023), on the tensor cores for
// bfloat16 and float16 storage with float32 accumulation, head dim 64 or 128:
//
//   forward:  o = softmax(q k^T * scale + mask) v,   lse = logsumexp of each row of masked scores
//   backward: P = exp(q k^T * scale - lse),  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - delta),
//             dQ = dS K * scale,  dK = dS^T Q * scale,  where delta = rowsum(dO * O)
//
// causal: query i sees key j <= i + (S - T) (the contract's bottom-right convention, for a query
// block at the end of a longer key sequence). No T x S matrix ever reaches device memory: the
// backward rebuilds P from q, k and the saved lse. float32 storage runs attention_fp32.cu.
//
// Forward (Algorithm 1): one block of 8 warps per (128 queries, batch*head); each warp owns 16 query
// rows, keeps its Q fragments in registers and walks the keys 64 at a time. K and V tiles are double
// buffered in shared memory: cp.async fetches tile t+1 while the warps compute on tile t. S = Q K^T
// on the tensor cores (mma.sync m16n8k16), then the online softmax in registers in base 2 (scale *
// log2(e) folded into one FMA before ex2; each thread holds 2 rows, whose running max and sum are
// combined across the 4 threads of a quad); the probabilities are re-packed in registers as the A
// operand of O += P V. Under the causal mask a block stops at the last key its last query sees,
// masks only the tiles that cross the diagonal, a warp skips tiles its rows cannot see, and the
// heaviest query blocks start first.
//
// Backward (Algorithm 2), three launches:
//  1. preprocess: delta = rowsum(dO * O) and lse * log2(e), one pass over O and dO, which also
//     zeroes dQ's float32 accumulator (delta and lse2 stored with each head's rows padded to 4).
//  2. one block of 8 warps per (128 keys, batch*head), each warp owning 16 keys; the heaviest key
//     blocks start first. K and V stay in shared memory; the block walks the query tiles (32 or 64
//     queries, double buffered with cp.async, from the first tile that sees its keys under the
//     causal mask) and, with the keys as rows, computes S^T = K Q^T, P^T, dV += P^T dO,
//     dP^T = V dO^T, dS^T, dK += dS^T Q, all in registers. dS^T goes to shared memory, where the
//     warps read it back transposed (ldmatrix .trans) for this tile's share of dQ = dS K, added to
//     the float32 accumulator with vector atomics (float2 atomicAdd on sm_90, two floats before).
//  3. dQ = scale * accumulator, rounded to the storage type.
// On sm_90a (H100, H200) the forward and step 2 run attention_forward_wgmma_kernel and
// attention_backward_wgmma_kernel instead: the same algorithms with the products on wgmma (see their
// comments); mma.sync stays the sm_80 path (TINYLLM_CUDA_MMA_SYNC=1 forces it on Hopper too).
// Tile sizes and blocks per multiprocessor are chosen by measurement (benchmarks/NOTES-cuda.md).
//
// Dropout (the kernels' DROPOUT variants; kernels.h's AttentionDropout): the forward multiplies each
// tile's probabilities by their factors after the softmax has summed them (O = (P Z) V, lse as
// without), and the backward draws the same factors for dV = (P Z)^T dO and dS = P (dP Z - delta)
// (delta = rowsum(dO O) still: O holds the dropout). The factors come from Philox, four keys of one
// query a counter, made in registers where they are used; nothing of the mask is stored.
#include <cuda_fp16.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "attention.cuh"
#include "hopper.cuh"

namespace tinyllm::cuda {
namespace {

using f16 = __half;
constexpr int kPad = 8;  // shared-memory rows padded by 16 bytes: ldmatrix rows land in distinct banks
constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;

// ---- the two half types: pack two floats, multiply on the tensor cores ---------------------------

template <typename E> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<bf16>(float lo, float hi) { return pack_bf16(lo, hi); }
template <> __device__ __forceinline__ uint32_t pack2<f16>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

template <typename E> __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma<bf16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    mma_bf16(c, a, b0, b1);
}
template <> __device__ __forceinline__ void mma<f16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// An R x D tile from rows row0.. of a (rows, D) matrix into shared memory (rows of D + kPad); rows
// past the end are zero-filled. cp.async moves bytes, so both half types go through the bf16 copy.
template <int R, int D, typename E> __device__ __forceinline__ void copy_tile(E* s, const E* g, int row0, int rows) {
    load_tile<R, D, kThreads, kPad>(reinterpret_cast<bf16*>(s), reinterpret_cast<const bf16*>(g), D, row0, 0, rows, D);
}

// n floats from v[i0..] into shared memory, 4 bytes per cp.async; entries past `end` become 0.
__device__ __forceinline__ void copy_floats(float* s, const float* v, int i0, int end, int n) {
    for (int i = threadIdx.x; i < n; i += kThreads) {
        const bool valid = i0 + i < end;
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(s + i)),
                     "l"(valid ? v + i0 + i : v), "r"(valid ? 4 : 0));
    }
}

__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// p[0..1] += {a, b}, atomically (two adjacent floats of dQ's accumulator).
__device__ __forceinline__ void atomic_add2(float* p, float a, float b) {
#if __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float2*>(p), make_float2(a, b));
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}

// ---- warp-level products on a strip of 16 rows: the three shapes every kernel below is made of ------
// Shared-memory operands are passed as 32-bit shared-space byte addresses of row 0, rows of LD
// elements: each ldmatrix is then one register (the lane's offset, computed once) plus a
// compile-time constant, with no 64-bit pointer arithmetic per load. Lane roles: j = lane / 8 names
// the 8 x 8 matrix whose row r = lane % 8 the lane addresses.

template <bool TRANS> __device__ __forceinline__ void ldmatrix_x4_at(uint32_t (&f)[4], uint32_t addr) {
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(f[0]), "=r"(f[1]), "=r"(f[2]), "=r"(f[3])
                     : "r"(addr));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(f[0]), "=r"(f[1]), "=r"(f[2]), "=r"(f[3])
                     : "r"(addr));
}

// The lane's byte offset in a 16 x 16 block of rows of LD elements: matrices ordered (rows 0-7,
// cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15) when ROW_FIRST, else (0-7, 0-7), (0-7, 8-15), ...
template <typename E, int LD, bool ROW_FIRST> __device__ __forceinline__ uint32_t lane_offset() {
    const int j = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
    const int row = (ROW_FIRST ? j % 2 : j / 2) * 8 + r, col = (ROW_FIRST ? j / 2 : j % 2) * 8;
    return (row * LD + col) * sizeof(E);
}

// A fragments (16 x K) of 16 rows of shared memory, K contiguous.
template <typename E, int K, int LD> __device__ __forceinline__ void load_a(uint32_t (&a)[K / 16][4], uint32_t s) {
    const uint32_t at = s + lane_offset<E, LD, true>();
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) ldmatrix_x4_at<false>(a[kk], at + kk * 16 * sizeof(E));
}

// The A fragment of columns 16kk..16kk+15 of an A operand held either as fragments, or as float
// accumulator tiles (16 x 8 each) rounded to E on the way: a C fragment and an A fragment hold the same
// rows in the same threads, so two adjacent C tiles make one A fragment, without leaving registers.
template <typename E, int K>
__device__ __forceinline__ void a_frag(uint32_t (&f)[4], const uint32_t (&a)[K / 16][4], int kk) {
    f[0] = a[kk][0], f[1] = a[kk][1], f[2] = a[kk][2], f[3] = a[kk][3];
}
template <typename E, int K> __device__ __forceinline__ void a_frag(uint32_t (&f)[4], const float (&c)[K / 8][4], int kk) {
    f[0] = pack2<E>(c[2 * kk][0], c[2 * kk][1]), f[1] = pack2<E>(c[2 * kk][2], c[2 * kk][3]);
    f[2] = pack2<E>(c[2 * kk + 1][0], c[2 * kk + 1][1]), f[3] = pack2<E>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// acc (16 x N) += A B^T, B = N rows of shared memory (K contiguous, as A's): Q K^T, K Q^T, V dO^T.
template <typename E, int N, int K, int LD>
__device__ __forceinline__ void mma_abt(float (&acc)[N / 8][4], const uint32_t (&a)[K / 16][4], uint32_t b) {
    const uint32_t at = b + lane_offset<E, LD, false>();  // rows of B are the "col" operand's columns
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++)
#pragma unroll
        for (int ni = 0; ni < N / 16; ni++) {
            uint32_t f[4];
            ldmatrix_x4_at<false>(f, at + (ni * 16 * LD + kk * 16) * sizeof(E));
            mma<E>(acc[2 * ni], a[kk], f[0], f[1]);
            mma<E>(acc[2 * ni + 1], a[kk], f[2], f[3]);
        }
}

// The same with A = 16 rows of shared memory at address a.
template <typename E, int N, int K, int LD>
__device__ __forceinline__ void mma_abt(float (&acc)[N / 8][4], uint32_t a, uint32_t b) {
    uint32_t af[K / 16][4];
    load_a<E, K, LD>(af, a);
    mma_abt<E, N, K, LD>(acc, af, b);
}

// acc (16 x N) += A B, B = K rows of shared memory (N contiguous): P V, P^T dO, dS^T Q, dS K. A is
// fragments or float accumulator tiles (see a_frag).
template <typename E, int N, int K, int LD, typename A>
__device__ __forceinline__ void mma_ab(float (&acc)[N / 8][4], const A& a, uint32_t b) {
    const uint32_t at = b + lane_offset<E, LD, true>();  // the "col" operand wants B transposed
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t af[4];
        a_frag<E, K>(af, a, kk);
#pragma unroll
        for (int dn = 0; dn < N / 16; dn++) {
            uint32_t f[4];
            ldmatrix_x4_at<true>(f, at + (kk * 16 * LD + dn * 16) * sizeof(E));
            mma<E>(acc[2 * dn], af, f[0], f[1]);
            mma<E>(acc[2 * dn + 1], af, f[2], f[3]);
        }
    }
}

// ---- forward --------------------------------------------------------------------------------------

// The forward's per-tile steps, shared by its mma.sync and wgmma kernels. A thread holds 16 x N
// scores (or outputs) in the mma accumulator layout, flat: x[4j + 2h + c] is row `row + 8h`,
// column 8j + 2qd + c of the tile, so R = N / 2 values.

// The mma.sync kernels' (N / 8) x 4 tiles, seen flat.
template <int M> __device__ __forceinline__ float (&flat(float (&x)[M][4]))[4 * M] {
    return reinterpret_cast<float (&)[4 * M]>(x);
}

// Scores of keys past S or past the causal diagonal (key > query + shift) become -inf.
template <int R> __device__ __forceinline__ void mask_scores(float (&s)[R], int row, int n0, int qd, int S, bool causal, int shift) {
#pragma unroll
    for (int j = 0; j < R / 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = row + (e / 2) * 8, col = n0 + 8 * j + 2 * qd + e % 2;
            if (col >= S || (causal && col > r + shift)) s[4 * j + e] = -INFINITY;
        }
}

// Online softmax over one tile of scores: the running max and (this thread's partial) sum of the
// thread's two rows are updated, s becomes exp2(s sl2 - max), and corr[h] is the factor that
// rescales row h's earlier output (exp of the old max minus the new one).
template <int R>
__device__ __forceinline__ void online_softmax(float (&s)[R], float (&row_max)[2], float (&row_sum)[2], float (&corr)[2], float sl2) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float mx = row_max[h];
#pragma unroll
        for (int j = 0; j < R / 4; j++) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mx_l2 = mx == -INFINITY ? 0.0f : mx * sl2;  // a row with nothing visible yet
        corr[h] = exp2_approx(row_max[h] * sl2 - mx_l2);
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < R / 4; j++) {
            float* x = s + 4 * j + 2 * h;
            x[0] = exp2_approx(fmaf(x[0], sl2, -mx_l2));
            x[1] = exp2_approx(fmaf(x[1], sl2, -mx_l2));
            sum += x[0] + x[1];
        }
        row_sum[h] = row_sum[h] * corr[h] + sum;  // each thread's partial sum; the quad adds them at the end
        row_max[h] = mx;
    }
}

// Dropout of the probabilities in the forward layout (above; rows are queries): the lanes qd and qd ^ 1
// hold the same four keys, one counter, of both their rows. The even lane makes the words of row
// `row`, the odd one those of row + 8, and each hands the other the two it needs. counter: this
// lane's row's counter of key 0, base + (bh T + row + 8 (qd & 1)) S / 4.
template <int R>
__device__ __forceinline__ void drop_probabilities(float (&x)[R], const AttentionDropout& drop, uint64_t counter, int n0, int qd) {
    const bool odd = qd & 1;
    const uint32_t threshold = keep_threshold(drop.p);
#pragma unroll
    for (int j = 0; j < R / 4; j++) {
        const uint4 w = philox4x32_10(counter + (n0 + 8 * j + 2 * qd) / 4, drop.seed);
        const uint32_t a = __shfl_xor_sync(0xffffffffu, odd ? w.x : w.z, 1);  // row + 8's words 0, 1 (to the even
        const uint32_t b = __shfl_xor_sync(0xffffffffu, odd ? w.y : w.w, 1);  // lane), row's words 2, 3 (to the odd)
        x[4 * j] *= keep_factor(odd ? a : w.x, threshold, drop.scale);
        x[4 * j + 1] *= keep_factor(odd ? b : w.y, threshold, drop.scale);
        x[4 * j + 2] *= keep_factor(odd ? w.z : a, threshold, drop.scale);
        x[4 * j + 3] *= keep_factor(odd ? w.w : b, threshold, drop.scale);
    }
}

// Dropout factors in the backward layout (keys as rows): x[4j + 2h + c] is key key0 + g + 8h, query
// m0 + 8j + 2qd + c, key0 a multiple of 16. A counter's four keys (of one query) lie in the lanes
// g = 4a..4a + 3 of one qd; the one with g % 4 = 2h + c makes the words of its (h, c), and transpose4
// gives each lane its word g % 4 of all four. z[2h + c]: the factors of column group j.
__device__ __forceinline__ void dropout_factors_t(float (&z)[4], const AttentionDropout& drop, uint64_t base, int64_t bhT,
                                                  int S, int key0, int m0, int j, int g, int qd) {
    const int m = g % 4, h = m / 2, c = m % 2;
    const uint64_t counter = base + uint64_t(bhT + m0 + 8 * j + 2 * qd + c) * (S / 4) + (key0 + g - m + 8 * h) / 4;
    keep_factors(z, transpose4<4>(philox4x32_10(counter, drop.seed), m), drop);
}

// O = acc / (the quad's row sum) for the thread's rows below T, and lse = max * scale + log(sum).
template <typename E, int R>
__device__ __forceinline__ void store_output(E* o, float* lse, const float (&acc)[R], const float (&row_max)[2],
                                             const float (&row_sum)[2], int row, int qd, int T, float scale) {
    constexpr int D = 2 * R;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float sum = row_sum[h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int r = row + h * 8;
        if (r >= T) continue;
        const float inv = 1.0f / sum;
#pragma unroll
        for (int j = 0; j < D / 8; j++)
            *reinterpret_cast<uint32_t*>(o + int64_t(r) * D + 8 * j + 2 * qd) = pack2<E>(acc[4 * j + 2 * h] * inv, acc[4 * j + 2 * h + 1] * inv);
        if (qd == 0) lse[r] = row_max[h] * scale + logf(sum);
    }
}

// 128 queries per block, 16 per warp, 64 keys per step. Two blocks (16 warps) per multiprocessor for
// D = 64: at most 128 registers a thread, which its fragments fit without spilling (32 keys per step
// and three blocks spill and run slower: 0.176 ms against 0.148); D = 128 needs ~220 (one block).
constexpr int kFwdBM = 128, kFwdBN = 64;
template <int D> constexpr int kFwdBlocksPerSM = D == 64 ? 2 : 1;

template <typename E, int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads, kFwdBlocksPerSM<D>) attention_forward_kernel(const E* __restrict__ q, const E* __restrict__ k,
                                                                     const E* __restrict__ v, E* __restrict__ o,
                                                                     float* __restrict__ lse, int T, int S, bool causal,
                                                                     float scale, AttentionDropout drop) {
    constexpr int BM = kFwdBM, BN = kFwdBN, LD = D + kPad;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    E* sQ = reinterpret_cast<E*>(smem_raw);
    E* sK = sQ + BM * LD;      // two buffers of BN rows
    E* sV = sK + 2 * BN * LD;  // two buffers of BN rows
    // Blocks start in order of blockIdx, x fastest: x runs over batch*head, y over query blocks, the
    // last (under the causal mask the longest) first, so that the short ones fill the tail.
    const int64_t bh = blockIdx.x;
    q += bh * T * D, k += bh * S * D, v += bh * S * D, o += bh * T * D, lse += bh * T;
    const int mb = causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
    const int m0 = mb * BM, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane / 4, qd = lane % 4;  // this thread's rows g, g + 8 and columns 2qd, 2qd + 1 of each tile
    const int shift = S - T, row0 = m0 + warp * 16;                     // this warp's first query row
    const int n_end = causal ? min(S, m0 + BM + shift) : S;
    const int tiles = n_end > 0 ? (n_end + BN - 1) / BN : 0;

    copy_tile<BM, D>(sQ, q, m0, T);
    cp_async_commit();
    if (tiles > 0) copy_tile<BN, D>(sK, k, 0, S), copy_tile<BN, D>(sV, v, 0, S);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_a<E, D, LD>(qf, smem_addr(sQ + warp * 16 * LD));

    const float sl2 = scale * kLog2e;  // scores are kept unscaled; exp(x * scale) = exp2(x * sl2)
    const uint64_t counter = DROPOUT ? dropout_base(drop) + uint64_t(bh * T + row0 + g + 8 * (qd & 1)) * (S / 4) : 0;
    float acc[D / 8][4] = {}, row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
    for (int t = 0; t < tiles; t++) {
        const int n0 = t * BN;
        const uint32_t cK = smem_addr(sK + (t % 2) * BN * LD), cV = smem_addr(sV + (t % 2) * BN * LD);
        cp_async_wait<0>();
        __syncthreads();  // tile t has landed, and every warp is done with tile t - 1's buffers
        if (t + 1 < tiles) {
            copy_tile<BN, D>(sK + ((t + 1) % 2) * BN * LD, k, n0 + BN, S);
            copy_tile<BN, D>(sV + ((t + 1) % 2) * BN * LD, v, n0 + BN, S);
            cp_async_commit();
        }
        if (causal && n0 > row0 + 15 + shift) continue;  // every row of this warp precedes the tile

        float s[BN / 8][4] = {};  // this warp's 16 x BN scores
        mma_abt<E, BN, D, LD>(s, qf, cK);

        // Tiles across the end of the keys or the causal diagonal: hidden scores become -inf. (A
        // separate, warp-uniform branch: the other tiles run no index arithmetic.)
        if (n0 + BN > S || (causal && n0 + BN - 1 > row0 + shift)) mask_scores(flat(s), row0 + g, n0, qd, S, causal, shift);
        float corr[2];
        online_softmax(flat(s), row_max, row_sum, corr, sl2);
        if constexpr (DROPOUT) drop_probabilities(flat(s), drop, counter, n0, qd);
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[dt][e] *= corr[e / 2];

        mma_ab<E, D, BN, LD>(acc, s, cV);  // O += P V
    }
    store_output<E>(o, lse, flat(acc), row_max, row_sum, row0 + g, qd, T, scale);
}

// ---- backward -------------------------------------------------------------------------------------

// 128 keys per block, 16 per warp. For D = 64, 32 queries per step keep a thread within 128 registers
// (dK, dV and the S, dP tiles), so two blocks (16 warps) share a multiprocessor: 0.59 ms fwd+bwd
// against 0.62 with 64 queries and one block (H200, notes). D = 128 needs ~250 registers either way,
// and 64 queries per step is then faster than 32 (1.09 ms against 1.18).
constexpr int kBwdBN = 128;
template <int D> constexpr int kBwdBM = D == 64 ? 32 : 64;
template <int D> constexpr int kBwdBlocksPerSM = D == 64 ? 2 : 1;

// Rows of delta and lse2 per (batch, head): T rounded up to 4, so that each head's run of them starts
// 16-byte aligned (the wgmma backward moves them by TMA, whose boxes must start aligned).
__host__ __device__ inline int padded_rows(int T) { return (T + 3) / 4 * 4; }

// delta = rowsum(dO * O), lse2 = lse * log2(e), and dQ's accumulator zeroed: D / 8 threads a row,
// 16 bytes each, kPreRows rows per thread group so that their loads are in flight together.
constexpr int kPreRows = 4;

template <typename E, int D>
__global__ void attention_backward_preprocess_kernel(const E* __restrict__ dout, const E* __restrict__ o,
                                                     const float* __restrict__ lse, float* __restrict__ delta,
                                                     float* __restrict__ lse2, float* __restrict__ dq_acc,
                                                     int64_t rows, int T) {
    constexpr int L = D / 8;  // threads per row
    const int64_t row0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / L * kPreRows;
    const int c = threadIdx.x % L * 8;
    uint4 a[kPreRows], b[kPreRows];
#pragma unroll
    for (int i = 0; i < kPreRows; i++)
        if (row0 + i < rows) {
            a[i] = *reinterpret_cast<const uint4*>(dout + (row0 + i) * D + c);
            b[i] = *reinterpret_cast<const uint4*>(o + (row0 + i) * D + c);
        }
#pragma unroll
    for (int i = 0; i < kPreRows; i++) {
        const int64_t row = row0 + i;
        float sum = 0.0f;
        if (row < rows) {
            const E* x = reinterpret_cast<const E*>(&a[i]);
            const E* y = reinterpret_cast<const E*>(&b[i]);
#pragma unroll
            for (int e = 0; e < 8; e++) sum += float(x[e]) * float(y[e]);
            const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            reinterpret_cast<float4*>(dq_acc + row * D + c)[0] = zero;
            reinterpret_cast<float4*>(dq_acc + row * D + c)[1] = zero;
        }
#pragma unroll
        for (int off = L / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (row < rows && c == 0) {
            const int64_t at = row / T * padded_rows(T) + row % T;  // (batch*head, query) in the padded layout
            delta[at] = sum, lse2[at] = lse[row] * kLog2e;
        }
    }
}

template <typename E, int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads, kBwdBlocksPerSM<D>) attention_backward_kernel(
    const E* __restrict__ q, const E* __restrict__ k, const E* __restrict__ v, const E* __restrict__ dout,
    const float* __restrict__ lse2, const float* __restrict__ delta, float* __restrict__ dq_acc, E* __restrict__ dk,
    E* __restrict__ dv, int T, int S, bool causal, float scale, AttentionDropout drop) {
    constexpr int BN = kBwdBN, BM = kBwdBM<D>, LD = D + kPad, LDS = BM + kPad;
    // dQ = dS K: the warps split the BM x D tile into WR row groups of 16 and WC column groups of DC.
    constexpr int WR = BM / 16, WC = kWarps / WR, DC = D / WC;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    E* sK = reinterpret_cast<E*>(smem_raw);
    E* sV = sK + BN * LD;
    E* sQ = sV + BN * LD;    // two buffers of BM rows
    E* sdO = sQ + 2 * BM * LD;  // two buffers of BM rows
    E* sdS = sdO + 2 * BM * LD;  // dS^T: BN keys x BM queries
    float* sL = reinterpret_cast<float*>(sdS + BN * LDS);  // lse2, two buffers of BM
    float* sDelta = sL + 2 * BM;                           // delta, two buffers of BM
    const int64_t bh = blockIdx.x;  // x over batch*head, y over key blocks: the longest first (causal)
    q += bh * T * D, dout += bh * T * D, dq_acc += bh * T * D, lse2 += bh * padded_rows(T), delta += bh * padded_rows(T);
    k += bh * S * D, v += bh * S * D, dk += bh * S * D, dv += bh * S * D;
    const int n0 = blockIdx.y * BN, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane / 4, qd = lane % 4;
    const int shift = S - T, key0 = n0 + warp * 16;  // this warp's first key
    // Under the causal mask query i sees key n0 from i = n0 - shift on: start at that query's tile.
    const int m_begin = causal ? max(0, n0 - shift) / BM * BM : 0;
    const int tiles = (T - m_begin + BM - 1) / BM;

    auto fetch = [&](int t) {  // query tile t into buffer t % 2
        const int m0 = m_begin + t * BM, b = t % 2;
        copy_tile<BM, D>(sQ + b * BM * LD, q, m0, T);
        copy_tile<BM, D>(sdO + b * BM * LD, dout, m0, T);
        copy_floats(sL + b * BM, lse2, m0, T, BM);
        copy_floats(sDelta + b * BM, delta, m0, T, BM);
        cp_async_commit();
    };
    copy_tile<BN, D>(sK, k, n0, S);
    copy_tile<BN, D>(sV, v, n0, S);
    fetch(0);

    const float sl2 = scale * kLog2e;
    const uint64_t base = DROPOUT ? dropout_base(drop) : 0;
    float dk_acc[D / 8][4] = {}, dv_acc[D / 8][4] = {};
    for (int t = 0; t < tiles; t++) {
        const int m0 = m_begin + t * BM;
        const uint32_t cQ = smem_addr(sQ + (t % 2) * BM * LD), cdO = smem_addr(sdO + (t % 2) * BM * LD);
        const float* cL = sL + (t % 2) * BM;
        const float* cDelta = sDelta + (t % 2) * BM;
        cp_async_wait<0>();
        __syncthreads();  // tile t has landed; every warp is done with tile t - 1 (its buffers and sdS)
        if (t + 1 < tiles) fetch(t + 1);

        // S^T = K Q^T: this warp's 16 keys as rows, the tile's BM queries as columns.
        float s[BM / 8][4] = {};
        mma_abt<E, BM, D, LD>(s, smem_addr(sK + warp * 16 * LD), cQ);
        // P^T = exp2(S^T * scale * log2(e) - lse2); hidden (key, query) pairs and padding get 0 (a
        // separate, warp-uniform branch for the tiles that have any).
#pragma unroll
        for (int nt = 0; nt < BM / 8; nt++) {
            const float2 l = *reinterpret_cast<const float2*>(cL + nt * 8 + 2 * qd);
#pragma unroll
            for (int e = 0; e < 4; e++) s[nt][e] = exp2_approx(fmaf(s[nt][e], sl2, -(e % 2 ? l.y : l.x)));
        }
        if (key0 + 16 > S || m0 + BM > T || (causal && key0 + 15 > m0 + shift)) {
#pragma unroll
            for (int nt = 0; nt < BM / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = key0 + g + (e / 2) * 8, query = m0 + nt * 8 + 2 * qd + e % 2;
                    if (key >= S || query >= T || (causal && key > query + shift)) s[nt][e] = 0.0f;
                }
        }
        uint32_t kept = 0;  // DROPOUT: bit 4 nt + e set where element (nt, e) is kept (BM / 2 <= 32 bits)
        if constexpr (DROPOUT) {
            float pz[BM / 8][4];  // P^T Z for dV; P^T itself stays for dS^T
#pragma unroll
            for (int nt = 0; nt < BM / 8; nt++) {
                float z[4];
                dropout_factors_t(z, drop, base, bh * T, S, key0, m0, nt, g, qd);
#pragma unroll
                for (int e = 0; e < 4; e++) pz[nt][e] = s[nt][e] * z[e], kept |= uint32_t(z[e] != 0.0f) << (4 * nt + e);
            }
            mma_ab<E, D, BM, LD>(dv_acc, pz, cdO);  // dV += (P^T Z) dO
        } else {
            mma_ab<E, D, BM, LD>(dv_acc, s, cdO);  // dV += P^T dO
        }

        // dP^T = V dO^T (times Z), then dS^T = P^T * (dP^T - delta), in place of P^T.
        {
            float dp[BM / 8][4] = {};
            mma_abt<E, BM, D, LD>(dp, smem_addr(sV + warp * 16 * LD), cdO);
#pragma unroll
            for (int nt = 0; nt < BM / 8; nt++) {
                const float2 d = *reinterpret_cast<const float2*>(cDelta + nt * 8 + 2 * qd);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float dpz = DROPOUT ? (kept >> (4 * nt + e) & 1u ? dp[nt][e] * drop.scale : 0.0f) : dp[nt][e];
                    s[nt][e] *= dpz - (e % 2 ? d.y : d.x);
                }
            }
        }
        mma_ab<E, D, BM, LD>(dk_acc, s, cQ);  // dK += dS^T Q

        // dS^T to shared memory (rounded as dK saw it), where dQ = dS K reads it transposed.
#pragma unroll
        for (int nt = 0; nt < BM / 8; nt++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                *reinterpret_cast<uint32_t*>(sdS + (warp * 16 + g + 8 * h) * LDS + nt * 8 + 2 * qd) =
                    pack2<E>(s[nt][2 * h], s[nt][2 * h + 1]);
        __syncthreads();  // the block's dS^T is complete

        // dQ tile += dS K over the block's BN keys; the A fragments of dS (query, key) are sdS's
        // 8 x 8 matrices transposed on the way (ldmatrix .trans). A warp's share is only DC / 8
        // accumulator tiles, so the two halves of the keys go to two sets of accumulators: two
        // independent chains of mma, each half as long.
        const int qr = (warp % WR) * 16, dc0 = (warp / WR) * DC;
        const uint32_t ds_at = smem_addr(sdS + qr) + lane_offset<E, LDS, false>();
        uint32_t ds[2][BN / 32][4];
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
            ldmatrix_x4_at<true>(ds[kk / (BN / 32)][kk % (BN / 32)], ds_at + kk * 16 * LDS * sizeof(E));
        float dq[DC / 8][4] = {}, dq_hi[DC / 8][4] = {};
        mma_ab<E, DC, BN / 2, LD>(dq, ds[0], smem_addr(sK + dc0));
        mma_ab<E, DC, BN / 2, LD>(dq_hi, ds[1], smem_addr(sK + BN / 2 * LD + dc0));
#pragma unroll
        for (int dt = 0; dt < DC / 8; dt++)
#pragma unroll
            for (int e = 0; e < 4; e++) dq[dt][e] += dq_hi[dt][e];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = m0 + qr + g + h * 8;
            if (row >= T) continue;
#pragma unroll
            for (int dt = 0; dt < DC / 8; dt++)
                atomic_add2(dq_acc + int64_t(row) * D + dc0 + dt * 8 + 2 * qd, dq[dt][2 * h], dq[dt][2 * h + 1]);
        }
    }

#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int key = key0 + g + h * 8;
        if (key >= S) continue;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
            const int64_t at = int64_t(key) * D + dt * 8 + 2 * qd;
            *reinterpret_cast<uint32_t*>(dk + at) = pack2<E>(dk_acc[dt][2 * h] * scale, dk_acc[dt][2 * h + 1] * scale);
            *reinterpret_cast<uint32_t*>(dv + at) = pack2<E>(dv_acc[dt][2 * h], dv_acc[dt][2 * h + 1]);
        }
    }
}

// ---- backward on wgmma (sm_90a: H100, H200) --------------------------------------------------------
// The same algorithm as attention_backward_kernel, on Hopper's warpgroup-wide tensor-core instruction.
// One block of 2 warpgroups (8 warps) per (128 keys, batch*head); warpgroup w owns keys 64w..64w+63
// (wgmma's M = 64 rows: the keys), and the block walks the query tiles 64 at a time:
//   S^T = K Q^T and dP^T = V dO^T   wgmma m64n64k16, K and Q (V and dO) both from shared memory
//   P^T, dS^T                       in registers, as in the mma.sync kernel
//   dV += P^T dO, dK += dS^T Q      wgmma m64nDk16 with A (P^T, dS^T) from registers, B (dO, Q)
//                                   read from the same tiles as above, now MN-major (transposed)
//   dQ += dS K                      dS^T to shared memory; warpgroup w computes dQ's columns
//                                   wD/2..wD/2+D/2-1 over all 128 keys (A = dS^T MN-major, B = K
//                                   MN-major) and adds them to the float32 accumulator (float2 atomics)
// Every tile (K, V: 128 rows; Q, dO: 64 rows; dS^T: 128 keys x 64 queries) is stored in the
// 128-byte-swizzle layout: D / 64 chunks of rows x 128 bytes, 16-byte unit u of row r at unit
// u ^ (r % 8), so one copy serves as a K-major operand (walk K by moving 32 bytes) and as an
// MN-major one (walk K by 16 rows = 2 KB). K and V arrive once, by cp.async. The query tiles (Q, dO,
// and the tile's lse2 and delta) arrive by TMA, kWgStages of them in flight: thread 0 issues tile
// t + 2 at the top of iteration t, once every warp has released the stage (an "empty" mbarrier,
// one arrival per warp after its last wgmma on the tile), and the warps wait for tile t on the
// stage's "full" mbarrier (the copy's byte count). So no block-wide barrier, and no proxy fence,
// guards the loads (with cp.async they took ~12% of the kernel's stall samples, ncu); one
// __syncthreads a tile remains, for dS^T (written by every warp, read by both warpgroups' dQ; two
// buffers, so that tile t + 1's writes need no second barrier after tile t's dQ).
constexpr int kWgBN = 128, kWgBM = 64, kWgStages = 3;
// dQ's float32 tile for the TMA reduction: D = 64 only (at D = 128 its two buffers do not fit beside
// the rest, and dQ goes by float2 atomics).
template <int D> constexpr int kWgDqBytes = D == 64 ? kWgBM * D * 4 : 0;
template <int D> constexpr int kWgSmem = 1024 /* alignment */ + 2 * kWgBN * D * 2 + 2 * kWgStages * kWgBM * D * 2 +
                                         2 * kWgBN * kWgBM * 2 + 2 * kWgStages * kWgBM * sizeof(float) + 1024 /* barriers, then
                                         dQ aligned */ + 2 * kWgDqBytes<D>;

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
__device__ int attention_wgmma_compiled = 1;  // which cubin the driver loaded: read by attention_uses_wgmma()

// Byte offset of 16-byte unit u (elements 8u..8u+7) of row r in a 128-byte-swizzled tile of R rows.
template <int R> __device__ __forceinline__ uint32_t swizzled(int r, int u) {
    return (u / 8) * (R * 128) + r * 128 + (((u % 8) ^ (r % 8)) << 4);
}

// An R x D tile from rows row0.. of a (rows, D) matrix into the swizzled layout; rows past the end are 0.
template <int R, int D, typename E> __device__ __forceinline__ void copy_tile_swizzled(unsigned char* s, const E* g, int row0, int rows) {
    constexpr int U = D / 8;
#pragma unroll
    for (int i = threadIdx.x; i < R * U; i += kThreads) {
        const int r = i / U, u = i % U;
        const bool valid = row0 + r < rows;
        cp_async16(s + swizzled<R>(r, u), valid ? g + int64_t(row0 + r) * D + u * 8 : g, valid);
    }
}

// The mma A fragment (16 x 16) of columns 16kk.. of a 64 x N accumulator tile (R = N / 2 floats a
// thread), rounded to E: columns 16kk.. are the accumulator's 8-column groups 2kk and 2kk + 1.
template <typename E, int R> __device__ __forceinline__ void acc_to_a(uint32_t (&f)[4], const float (&c)[R], int kk) {
    f[0] = pack2<E>(c[8 * kk], c[8 * kk + 1]), f[1] = pack2<E>(c[8 * kk + 2], c[8 * kk + 3]);
    f[2] = pack2<E>(c[8 * kk + 4], c[8 * kk + 5]), f[3] = pack2<E>(c[8 * kk + 6], c[8 * kk + 7]);
}
#else
__device__ int attention_wgmma_compiled = 0;
#endif

template <typename E, int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads, 1) attention_backward_wgmma_kernel(
    const __grid_constant__ CUtensorMap map_q, const __grid_constant__ CUtensorMap map_dout,
    const __grid_constant__ CUtensorMap map_lse2, const __grid_constant__ CUtensorMap map_delta,
    const __grid_constant__ CUtensorMap map_dq, const E* __restrict__ k,
    const E* __restrict__ v, float* __restrict__ dq_acc, E* __restrict__ dk, E* __restrict__ dv, int T, int S, bool causal,
    float scale, AttentionDropout drop) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    constexpr int BN = kWgBN, BM = kWgBM, KV = BN * D * 2, QB = BM * D * 2;  // tile bytes
    constexpr uint32_t kStageBytes = 2 * QB + 2 * BM * sizeof(float);      // Q, dO, lse2, delta of one tile
    extern __shared__ unsigned char smem_raw[];
    unsigned char* sK = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    unsigned char* sV = sK + KV;
    unsigned char* sQ = sV + KV;                 // kWgStages buffers
    unsigned char* sdO = sQ + kWgStages * QB;    // kWgStages buffers
    unsigned char* sdS = sdO + kWgStages * QB;   // dS^T: BN keys x BM queries, two buffers
    float* sL = reinterpret_cast<float*>(sdS + 2 * BN * BM * 2);  // lse2, kWgStages buffers of BM
    float* sDelta = sL + kWgStages * BM;                       // delta, kWgStages buffers of BM
    uint64_t* full = reinterpret_cast<uint64_t*>(sDelta + kWgStages * BM);  // a tile's bytes have landed
    uint64_t* empty = full + kWgStages;                                      // every warp is done with a tile
    // dQ's tile in float32 for the TMA reduction (D = 64: two buffers of 64 queries x 64 columns, each
    // warpgroup's 32 columns a 128-byte-swizzled chunk of 8 KB).
    unsigned char* sdQ = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(empty + kWgStages) + 1023) & ~uintptr_t(1023));
    const int bh = blockIdx.x;
    dq_acc += int64_t(bh) * T * D;
    k += int64_t(bh) * S * D, v += int64_t(bh) * S * D, dk += int64_t(bh) * S * D, dv += int64_t(bh) * S * D;
    const int n0 = blockIdx.y * BN, wg = threadIdx.x / 128, warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, qd = lane % 4;
    const int shift = S - T, key_wg = n0 + 64 * wg, key0 = key_wg + 16 * warp;  // first key of the warpgroup, warp
    const int m_begin = causal ? max(0, n0 - shift) / BM * BM : 0;
    const int tiles = (T - m_begin + BM - 1) / BM;

    if (threadIdx.x == 0) {
        for (int i = 0; i < kWgStages; i++) mbar_init(&full[i], 1), mbar_init(&empty[i], kWarps);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");  // visible to the TMA unit
    }
    copy_tile_swizzled<BN, D>(sK, k, n0, S);
    copy_tile_swizzled<BN, D>(sV, v, n0, S);
    cp_async_commit();
    __syncthreads();  // the barriers are initialised
    // Query tile t into stage t % kWgStages, by TMA, issued by thread 0 once every warp has released
    // the tile that used the stage before (t - kWgStages); rows past T arrive as zeros.
    auto fetch = [&](int t) {
        const int b = t % kWgStages, m0 = m_begin + t * BM;
        if (t >= kWgStages) mbar_wait(&empty[b], (t / kWgStages - 1) & 1);
        mbar_expect_tx(&full[b], kStageBytes);
#pragma unroll
        for (int c = 0; c < D / 64; c++) {
            tma_load(sQ + b * QB + c * BM * 128, &map_q, &full[b], 64 * c, m0, bh);
            tma_load(sdO + b * QB + c * BM * 128, &map_dout, &full[b], 64 * c, m0, bh);
        }
        tma_load_2d(sL + b * BM, &map_lse2, &full[b], m0, bh);
        tma_load_2d(sDelta + b * BM, &map_delta, &full[b], m0, bh);
    };
    if (threadIdx.x == 0)
        for (int t = 0; t < min(tiles, kWgStages - 1); t++) fetch(t);
    cp_async_wait<0>();
    fence_proxy_async();  // K and V, visible to wgmma
    __syncthreads();

    // Descriptor addresses: the warpgroup's 64 key rows of K and V (K-major, D / 64 chunks of BN
    // rows); for dQ, K's columns wg * D / 2.. (MN-major, inside one chunk) and dS^T.
    const uint32_t aK = smem_addr(sK) + wg * 64 * 128, aV = smem_addr(sV) + wg * 64 * 128;
    const uint32_t bKq = smem_addr(sK) + (wg * D / 2) / 64 * (BN * 128) + (wg * D / 2) % 64 * 2;
    const float sl2 = scale * kLog2e;
    const uint64_t base = DROPOUT ? dropout_base(drop) : 0;
    float dk_acc[D / 2], dv_acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dk_acc[i] = dv_acc[i] = 0.0f;
    fence_operands(dk_acc), fence_operands(dv_acc);
    for (int t = 0; t < tiles; t++) {
        const int m0 = m_begin + t * BM, b = t % kWgStages;
        const uint32_t cQ = smem_addr(sQ + b * QB), cdO = smem_addr(sdO + b * QB);
        const float* cL = sL + b * BM;
        const float* cDelta = sDelta + b * BM;
        unsigned char* cdS = sdS + t % 2 * (BN * BM * 2);  // (two buffers: no barrier between tile t's dQ and t + 1's dS^T)
        if (threadIdx.x == 0 && t + kWgStages - 1 < tiles) fetch(t + kWgStages - 1);
        mbar_wait(&full[b], (t / kWgStages) & 1);  // tile t has landed
        __syncwarp();  // the warp converged again (after thread 0's copies and each lane's wait) for wgmma

        uint32_t da[4][4];  // dS^T as 4 A fragments of 16 queries
        // Under the causal mask a warpgroup whose first key follows the tile's last query has P = 0.
        if (!(causal && key_wg > m0 + BM - 1 + shift)) {
            float s[32], dp[32];  // set by their first wgmma (scale_d = 0)
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const uint32_t off = kk / 4 * (BN * 128) + kk % 4 * 32, qoff = kk / 4 * (BM * 128) + kk % 4 * 32;
                wgmma_ss<E, 0, 0>(s, smem_desc(aK + off, 16), smem_desc(cQ + qoff, 16), kk > 0);
            }
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const uint32_t off = kk / 4 * (BN * 128) + kk % 4 * 32, qoff = kk / 4 * (BM * 128) + kk % 4 * 32;
                wgmma_ss<E, 0, 0>(dp, smem_desc(aV + off, 16), smem_desc(cdO + qoff, 16), kk > 0);
            }
            wgmma_commit();
            wgmma_wait<0>();
            fence_operands(s), fence_operands(dp);
            // P^T = exp2(S^T * scale * log2(e) - lse2): row 16 warp + g + 8h (key), column 8j + 2qd + i (query).
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float2 l = *reinterpret_cast<const float2*>(cL + 8 * j + 2 * qd);
#pragma unroll
                for (int e = 0; e < 4; e++) s[4 * j + e] = exp2_approx(fmaf(s[4 * j + e], sl2, -(e % 2 ? l.y : l.x)));
            }
            if (key0 + 16 > S || m0 + BM > T || (causal && key0 + 15 > m0 + shift)) {
#pragma unroll
                for (int j = 0; j < 8; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int key = key0 + g + (e / 2) * 8, query = m0 + 8 * j + 2 * qd + e % 2;
                        if (key >= S || query >= T || (causal && key > query + shift)) s[4 * j + e] = 0.0f;
                    }
            }
            // dS^T = P^T * (dP^T Z - delta), in place of dP^T; then P^T Z, in place of P^T, for dV.
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float2 d = *reinterpret_cast<const float2*>(cDelta + 8 * j + 2 * qd);
                float z[4] = {1.0f, 1.0f, 1.0f, 1.0f};
                if constexpr (DROPOUT) dropout_factors_t(z, drop, base, int64_t(bh) * T, S, key0, m0, j, g, qd);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    dp[4 * j + e] = s[4 * j + e] * (dp[4 * j + e] * z[e] - (e % 2 ? d.y : d.x));
                    if constexpr (DROPOUT) s[4 * j + e] *= z[e];
                }
            }
            uint32_t pa[4][4];
#pragma unroll
            for (int kk = 0; kk < 4; kk++) acc_to_a<E>(pa[kk], s, kk), acc_to_a<E>(da[kk], dp, kk);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wgmma_rs<E, 1>(dv_acc, pa[kk], smem_desc(cdO + kk * 16 * 128, BM * 128));
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wgmma_rs<E, 1>(dk_acc, da[kk], smem_desc(cQ + kk * 16 * 128, BM * 128));
            wgmma_commit();
        } else {
#pragma unroll
            for (int kk = 0; kk < 4; kk++) da[kk][0] = da[kk][1] = da[kk][2] = da[kk][3] = 0u;
        }
        // dS^T to shared memory: fragment kk holds rows g, g + 8 at columns 16kk + 2qd (units 2kk) and
        // 16kk + 8 + 2qd (unit 2kk + 1).
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int r = 64 * wg + 16 * warp + g + 8 * h;
                *reinterpret_cast<uint32_t*>(cdS + swizzled<BN>(r, 2 * kk) + 4 * qd) = da[kk][h];
                *reinterpret_cast<uint32_t*>(cdS + swizzled<BN>(r, 2 * kk + 1) + 4 * qd) = da[kk][2 + h];
            }
        fence_proxy_async();
        if (kWgDqBytes<D> > 0 && threadIdx.x % 128 == 0) bulk_wait_read<1>();  // tile t - 2's dQ left its staging buffer
        __syncthreads();  // the block's dS^T is complete

        // dQ (64 queries x this warpgroup's D / 2 columns) = dS K over the block's 128 keys.
        float dq[D / 4];  // set by the first wgmma (scale_d = 0)
        const uint32_t aS = smem_addr(cdS);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
            wgmma_ss<E, 1, 1>(dq, smem_desc(aS + kk * 16 * 128, BN * 128), smem_desc(bKq + kk * 16 * 128, BN * 128), kk > 0);
        wgmma_commit();
        wgmma_wait<0>();  // (dV's and dK's too: this warp is done with tile t's stage)
        fence_operands(dq), fence_operands(dk_acc), fence_operands(dv_acc);
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[b]);
        if constexpr (kWgDqBytes<D> > 0) {
            // Into the staging chunk (its previous reduction, of tile t - 2, was waited for before
            // the barrier above), then one thread of the warpgroup adds it to dQ's accumulator by TMA.
            unsigned char* chunk = sdQ + t % 2 * kWgDqBytes<D> + wg * (BM * 128);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int r = 16 * warp + g + 8 * h;
#pragma unroll
                for (int j = 0; j < D / 16; j++)
                    *reinterpret_cast<float2*>(chunk + swizzled<BM>(r, 2 * j + qd / 2) + qd % 2 * 8) =
                        make_float2(dq[4 * j + 2 * h], dq[4 * j + 2 * h + 1]);
            }
            fence_proxy_async();
            warpgroup_sync(1 + wg);
            if (threadIdx.x % 128 == 0) {
                tma_reduce_add(&map_dq, chunk, wg * D / 2, m0, bh);
                bulk_commit();
            }
        } else {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = m0 + 16 * warp + g + 8 * h;
                if (row >= T) continue;
#pragma unroll
                for (int j = 0; j < D / 16; j++)
                    atomic_add2(dq_acc + int64_t(row) * D + wg * D / 2 + 8 * j + 2 * qd, dq[4 * j + 2 * h], dq[4 * j + 2 * h + 1]);
            }
        }
    }
    if (kWgDqBytes<D> > 0 && threadIdx.x % 128 == 0) bulk_wait_read();  // (the block's shared memory outlives the reads)

#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int key = key0 + g + h * 8;
        if (key >= S) continue;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            const int64_t at = int64_t(key) * D + 8 * j + 2 * qd;
            *reinterpret_cast<uint32_t*>(dk + at) = pack2<E>(dk_acc[4 * j + 2 * h] * scale, dk_acc[4 * j + 2 * h + 1] * scale);
            *reinterpret_cast<uint32_t*>(dv + at) = pack2<E>(dv_acc[4 * j + 2 * h], dv_acc[4 * j + 2 * h + 1]);
        }
    }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// ---- forward on wgmma (sm_90a: H100, H200) ---------------------------------------------------------
// The forward's algorithm on Hopper's warpgroup-wide tensor-core instruction. One block of 2
// warpgroups per (128 queries, batch*head); warpgroup w owns queries 64w..64w+63 (wgmma's M) and
// walks the keys BN (64 or 128) at a time:
//   S = Q K^T      wgmma m64nBNk16, Q and K both from shared memory (K-major)
//   softmax        online, in registers (online_softmax, shared with the mma.sync kernel)
//   O += P V       wgmma m64nDk16, A = P from registers, B = V from shared memory (MN-major)
// Why it is faster: each warpgroup reads a K or V tile from shared memory once for its 64 rows,
// where each mma.sync warp reads it for 16; and P V of one tile runs on the tensor cores while the
// softmax of the next one runs on the other units: iteration t issues S(t), then P(t-1) V(t-1), waits
// for S(t) only, computes the softmax of tile t, and waits for P(t-1) V(t-1) before rescaling O
// (FlashAttention-3's intra-warpgroup overlap). Q, K and V arrive by TMA (128-byte swizzle, the
// backward's layout), issued by thread 0 one tile ahead; K has 2 buffers and V 3 (V(t-1) is still
// read during iteration t), each with a "full" mbarrier (the copy's bytes) and an "empty" one (every
// warp's release after its last wgmma on it). No block-wide barrier is left in the loop, so the
// two warpgroups drift apart and one's softmax overlaps the other's products: 111 -> 89 us at the
// bar's shape against the same kernel fed by cp.async and __syncthreads.
// D = 64 takes 64 keys a step, so that a thread stays within 128 registers and two blocks share a
// multiprocessor (one block's softmax and loads then overlap the other's products); D = 128 needs
// ~200 registers either way and takes 128 keys.
constexpr int kWgFwdBM = 128;
template <int D> constexpr int kWgFwdBN = D == 64 ? 64 : 128;
template <int D> constexpr int kWgFwdBlocksPerSM = D == 64 ? 2 : 1;
template <int D> constexpr int kWgFwdSmem = 1024 /* alignment */ + (kWgFwdBM + 5 * kWgFwdBN<D>) * D * 2 + 11 * 8 /* mbarriers */;

template <typename E, int D, bool DROPOUT>
__global__ void __launch_bounds__(kThreads, kWgFwdBlocksPerSM<D>) attention_forward_wgmma_kernel(
    const __grid_constant__ CUtensorMap map_q, const __grid_constant__ CUtensorMap map_k,
    const __grid_constant__ CUtensorMap map_v, E* __restrict__ o, float* __restrict__ lse, int T, int S, bool causal,
    float scale, AttentionDropout drop) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    constexpr int BM = kWgFwdBM, BN = kWgFwdBN<D>, KB = BN * D * 2;  // KB: bytes of a K or V tile
    extern __shared__ unsigned char smem_raw[];
    unsigned char* sQ = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    unsigned char* sK = sQ + BM * D * 2;  // two buffers
    unsigned char* sV = sK + 2 * KB;      // three buffers
    uint64_t* q_full = reinterpret_cast<uint64_t*>(sV + 3 * KB);
    uint64_t *k_full = q_full + 1, *k_empty = k_full + 2, *v_full = k_empty + 2, *v_empty = v_full + 3;
    const int bh = blockIdx.x;  // x over batch*head, y over query blocks: the longest first (causal)
    o += int64_t(bh) * T * D, lse += int64_t(bh) * T;
    const int m0 = (causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y) * BM;
    const int wg = threadIdx.x / 128, warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, qd = lane % 4;
    const int shift = S - T, row_wg = m0 + 64 * wg, row0 = row_wg + 16 * warp + g;  // this thread's rows: row0, row0 + 8
    const int n_end = causal ? min(S, m0 + BM + shift) : S;
    const int tiles = n_end > 0 ? (n_end + BN - 1) / BN : 0;

    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int i = 0; i < 2; i++) mbar_init(&k_full[i], 1), mbar_init(&k_empty[i], kWarps);
        for (int i = 0; i < 3; i++) mbar_init(&v_full[i], 1), mbar_init(&v_empty[i], kWarps);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");  // visible to the TMA unit
    }
    __syncthreads();
    // Key tile t, by TMA (rows past S arrive as zeros), issued by thread 0: K into buffer t % 2 once
    // every warp has released K(t - 2) (its S is done), V into buffer t % 3 once every warp has
    // released V(t - 3) (its P V is done).
    auto fetch = [&](int t) {
        const int bk = t % 2, bv = t % 3;
        if (t >= 2) mbar_wait(&k_empty[bk], (t / 2 - 1) & 1);
        mbar_expect_tx(&k_full[bk], KB);
#pragma unroll
        for (int c = 0; c < D / 64; c++) tma_load(sK + bk * KB + c * BN * 128, &map_k, &k_full[bk], 64 * c, t * BN, bh);
        if (t >= 3) mbar_wait(&v_empty[bv], (t / 3 - 1) & 1);
        mbar_expect_tx(&v_full[bv], KB);
#pragma unroll
        for (int c = 0; c < D / 64; c++) tma_load(sV + bv * KB + c * BN * 128, &map_v, &v_full[bv], 64 * c, t * BN, bh);
    };
    if (threadIdx.x == 0) {
        mbar_expect_tx(q_full, BM * D * 2);
#pragma unroll
        for (int c = 0; c < D / 64; c++) tma_load(sQ + c * BM * 128, &map_q, q_full, 64 * c, m0, bh);
        if (tiles > 0) fetch(0);
    }
    // A warp's release of a buffer: after its last read of it (lanes converge first).
    auto release = [&](uint64_t* bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive(bar);
    };

    const uint32_t aQ = smem_addr(sQ) + wg * 64 * 128;  // the warpgroup's 64 rows of each D chunk
    const float sl2 = scale * kLog2e;  // scores are kept unscaled; exp(x * scale) = exp2(x * sl2)
    const uint64_t counter = DROPOUT ? dropout_base(drop) + uint64_t(int64_t(bh) * T + row0 + 8 * (qd & 1)) * (S / 4) : 0;
    float acc[D / 2], row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.0f;
    uint32_t pa[BN / 16][4];  // P of the previous tile, as A fragments of 16 keys
    fence_operands(acc);
    // O += P V of tile t (V in buffer t % 3), issued, not waited for.
    auto issue_pv = [&](int t) {
        const uint32_t bV = smem_addr(sV + t % 3 * KB);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) wgmma_rs<E, 1>(acc, pa[kk], smem_desc(bV + kk * 16 * 128, BN * 128));
        wgmma_commit();
    };
    mbar_wait(q_full, 0);
    for (int t = 0; t < tiles; t++) {
        const int n0 = t * BN;
        if (threadIdx.x == 0 && t + 1 < tiles) fetch(t + 1);
        mbar_wait(&k_full[t % 2], (t / 2) & 1);
        __syncwarp();  // the warp converged again (after thread 0's copies and each lane's wait) for wgmma

        float s[BN / 2];  // this warpgroup's 64 x BN scores, set by the first wgmma (scale_d = 0)
        wgmma_fence();
        const uint32_t bK = smem_addr(sK + t % 2 * KB);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const uint32_t off = kk % 4 * 32;
            wgmma_ss<E, 0, 0>(s, smem_desc(aQ + kk / 4 * (BM * 128) + off, 16), smem_desc(bK + kk / 4 * (BN * 128) + off, 16),
                              kk > 0);
        }
        wgmma_commit();
        if (t > 0) {
            issue_pv(t - 1);
            wgmma_wait<1>();  // S is done; P V may still run
        } else {
            wgmma_wait<0>();
        }
        fence_operands(s);
        release(&k_empty[t % 2]);

        // Tiles across the end of the keys or the causal diagonal: hidden scores become -inf (a
        // warpgroup-uniform branch: the other tiles run no index arithmetic).
        if (n0 + BN > S || (causal && n0 + BN - 1 > row_wg + shift)) mask_scores(s, row0, n0, qd, S, causal, shift);
        float corr[2];
        online_softmax(s, row_max, row_sum, corr, sl2);
        if constexpr (DROPOUT) drop_probabilities(s, drop, counter, n0, qd);
        wgmma_wait<0>();  // P V of tile t - 1 has reached acc, and is done with pa and V(t - 1)
        fence_operands(acc), fence_operands(pa);
        if (t > 0) release(&v_empty[(t - 1) % 3]);
#pragma unroll
        for (int i = 0; i < D / 2; i++) acc[i] *= corr[i / 2 % 2];
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) acc_to_a<E>(pa[kk], s, kk);
        mbar_wait(&v_full[t % 3], (t / 3) & 1);  // V(t), for the next iteration's P V
        __syncwarp();
    }
    if (tiles > 0) {
        wgmma_fence();
        issue_pv(tiles - 1);
        wgmma_wait<0>();
        fence_operands(acc);
    }
    store_output<E>(o, lse, acc, row_max, row_sum, row0, qd, T, scale);
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// dq = scale * dq_acc in the storage type, 8 elements per thread.
template <typename E>
__global__ void attention_dq_convert_kernel(const float* __restrict__ acc, E* __restrict__ dq, float scale, int64_t n8) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const float4 a = reinterpret_cast<const float4*>(acc)[2 * i], b = reinterpret_cast<const float4*>(acc)[2 * i + 1];
    const uint4 out = {pack2<E>(a.x * scale, a.y * scale), pack2<E>(a.z * scale, a.w * scale),
                       pack2<E>(b.x * scale, b.y * scale), pack2<E>(b.z * scale, b.w * scale)};
    reinterpret_cast<uint4*>(dq)[i] = out;
}

// ---- launches -------------------------------------------------------------------------------------

struct Forward {
template <typename E, int D, bool DROPOUT> static void run(const AttentionArgs& a, cudaStream_t st) {
    if (attention_uses_wgmma()) {
        auto kernel = attention_forward_wgmma_kernel<E, D, DROPOUT>;
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgFwdSmem<D>));
        const CUtensorMap map_q = tensor_map(a.q, D, a.T, a.BH, int64_t(a.T) * D, kWgFwdBM);
        const CUtensorMap map_k = tensor_map(a.k, D, a.S, a.BH, int64_t(a.S) * D, kWgFwdBN<D>);
        const CUtensorMap map_v = tensor_map(a.v, D, a.S, a.BH, int64_t(a.S) * D, kWgFwdBN<D>);
        kernel<<<dim3(static_cast<unsigned>(a.BH), ceil_div(a.T, kWgFwdBM)), kThreads, kWgFwdSmem<D>, st>>>(
            map_q, map_k, map_v, (E*)a.o, (float*)a.lse, a.T, a.S, a.causal, a.scale, a.drop);
        CUDA_CHECK_LAUNCH();
        return;
    }
    auto kernel = attention_forward_kernel<E, D, DROPOUT>;
    constexpr int smem = (kFwdBM + 4 * kFwdBN) * (D + kPad) * sizeof(E);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<dim3(static_cast<unsigned>(a.BH), ceil_div(a.T, kFwdBM)), kThreads, smem, st>>>(
        (const E*)a.q, (const E*)a.k, (const E*)a.v, (E*)a.o, (float*)a.lse, a.T, a.S, a.causal, a.scale, a.drop);
    CUDA_CHECK_LAUNCH();
}
};

struct Backward {
template <typename E, int D, bool DROPOUT> static void run(const AttentionArgs& a, cudaStream_t st) {
    const int64_t rows = a.BH * a.T;
    float* dq_acc = reinterpret_cast<float*>(a.scratch);
    const int64_t padded = a.BH * padded_rows(a.T);
    float* delta = dq_acc + rows * D;  // (16-byte aligned: D is)
    float* lse2 = delta + padded;
    attention_backward_preprocess_kernel<E, D><<<ceil_div(ceil_div(rows, kPreRows) * (D / 8), 256), 256, 0, st>>>(
        (const E*)a.dout, (const E*)a.o, (const float*)a.lse, delta, lse2, dq_acc, rows, a.T);
    CUDA_CHECK_LAUNCH();

    if (attention_uses_wgmma()) {
        auto kernel = attention_backward_wgmma_kernel<E, D, DROPOUT>;
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgSmem<D>));
        const CUtensorMap map_q = tensor_map(a.q, D, a.T, a.BH, int64_t(a.T) * D, kWgBM);
        const CUtensorMap map_dout = tensor_map(a.dout, D, a.T, a.BH, int64_t(a.T) * D, kWgBM);
        const CUtensorMap map_lse2 = rows_map(uintptr_t(lse2), a.T, a.BH, padded_rows(a.T), kWgBM);
        const CUtensorMap map_delta = rows_map(uintptr_t(delta), a.T, a.BH, padded_rows(a.T), kWgBM);
        kernel<<<dim3(static_cast<unsigned>(a.BH), ceil_div(a.S, kWgBN)), kThreads, kWgSmem<D>, st>>>(
            map_q, map_dout, map_lse2, map_delta, tensor_map(uintptr_t(dq_acc), D, a.T, a.BH, int64_t(a.T) * D, kWgBM, true),
            (const E*)a.k, (const E*)a.v, dq_acc, (E*)a.dk, (E*)a.dv, a.T, a.S,
            a.causal, a.scale, a.drop);
        CUDA_CHECK_LAUNCH();
    } else {
    auto kernel = attention_backward_kernel<E, D, DROPOUT>;
    constexpr int BM = kBwdBM<D>;
    constexpr int smem = (2 * kBwdBN + 4 * BM) * (D + kPad) * sizeof(E) + kBwdBN * (BM + kPad) * sizeof(E) +
                         4 * BM * sizeof(float);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<dim3(static_cast<unsigned>(a.BH), ceil_div(a.S, kBwdBN)), kThreads, smem, st>>>(
        (const E*)a.q, (const E*)a.k, (const E*)a.v, (const E*)a.dout, lse2, delta, dq_acc, (E*)a.dk, (E*)a.dv, a.T,
        a.S, a.causal, a.scale, a.drop);
    CUDA_CHECK_LAUNCH();
    }

    const int64_t n8 = rows * D / 8;
    attention_dq_convert_kernel<E><<<ceil_div(n8, 256), 256, 0, st>>>(dq_acc, (E*)a.dq, a.scale, n8);
    CUDA_CHECK_LAUNCH();
}
};

// Op::run<E, D, DROPOUT> for the storage type, head dim and dropout: where run-time values become
// template arguments.
template <typename Op, typename E, int D> void dispatch_dropout(const AttentionArgs& a, cudaStream_t st) {
    a.drop.p > 0.0f ? Op::template run<E, D, true>(a, st) : Op::template run<E, D, false>(a, st);
}
template <typename Op> void dispatch_half(const AttentionArgs& a, cudaStream_t st) {
    if (a.dt == DType::bf16)
        a.D == 64 ? dispatch_dropout<Op, bf16, 64>(a, st) : dispatch_dropout<Op, bf16, 128>(a, st);
    else
        a.D == 64 ? dispatch_dropout<Op, f16, 64>(a, st) : dispatch_dropout<Op, f16, 128>(a, st);
}

void validate(const AttentionArgs& a, const char* name) {
    if (a.D != 64 && a.D != 128) throw std::invalid_argument(std::string(name) + ": head dim must be 64 or 128");
    if (!(a.scale > 0.0f)) throw std::invalid_argument(std::string(name) + ": scale must be positive");
    if (a.dt != DType::f32 && a.dt != DType::bf16 && a.dt != DType::f16)
        throw std::invalid_argument(std::string(name) + ": dtype must be float32, bfloat16 or float16");
    if (a.drop.p > 0.0f && a.S % 4 != 0)
        throw std::invalid_argument(std::string(name) + ": dropout needs the number of keys to be a multiple of 4, got " +
                                    std::to_string(a.S));
}

}  // namespace

void attention_forward(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, int64_t BH, int T, int S,
                       int D, bool causal, float scale, const AttentionDropout& drop, DType dt, uintptr_t stream) {
    const AttentionArgs a{q, k, v, o, lse, 0, 0, 0, 0, 0, BH, T, S, D, causal, scale, dt, drop};
    validate(a, "tinyllm._cuda.attention_forward");
    if (BH == 0 || T == 0) return;
    if (dt == DType::f32) return attention_forward_f32(a, as_stream(stream));
    dispatch_half<Forward>(a, as_stream(stream));
}

// The forward and the backward's main kernel on the current device: wgmma where it runs, else
// mma.sync; the environment variable TINYLLM_CUDA_MMA_SYNC=1 forces mma.sync (to compare the two).
bool attention_uses_wgmma() {
    static std::mutex lock;
    static std::map<int, bool> known;  // per device
    const char* env = std::getenv("TINYLLM_CUDA_MMA_SYNC");
    if (env && env[0] == '1') return false;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> guard(lock);
    auto it = known.find(dev);
    return it != known.end() ? it->second : known[dev] = sm90a_cubin_runs(dev, &attention_wgmma_compiled);
}

int64_t attention_backward_scratch_floats(int64_t BH, int T, int D) { return BH * (int64_t(T) * D + 2 * padded_rows(T)); }

void attention_backward(uintptr_t dout, uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, uintptr_t dq,
                        uintptr_t dk, uintptr_t dv, uintptr_t scratch, int64_t BH, int T, int S, int D, bool causal,
                        float scale, const AttentionDropout& drop, DType dt, uintptr_t stream) {
    const AttentionArgs a{q, k, v, o, lse, dout, dq, dk, dv, scratch, BH, T, S, D, causal, scale, dt, drop};
    validate(a, "tinyllm._cuda.attention_backward");
    if (BH == 0 || S == 0) return;
    if (T == 0) {  // no queries: the keys and values get zero gradients
        const size_t bytes = BH * S * D * (dt == DType::f32 ? sizeof(float) : sizeof(bf16));
        CUDA_CHECK(cudaMemsetAsync(reinterpret_cast<void*>(dk), 0, bytes, as_stream(stream)));
        CUDA_CHECK(cudaMemsetAsync(reinterpret_cast<void*>(dv), 0, bytes, as_stream(stream)));
        return;
    }
    if (dt == DType::f32) return attention_backward_f32(a, as_stream(stream));
    dispatch_half<Backward>(a, as_stream(stream));
}

}  // namespace tinyllm::cuda
