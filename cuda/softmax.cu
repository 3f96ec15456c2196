// Softmax and log-softmax over the last axis of an (N, C) matrix, forward and backward.
//
//   softmax:      y = exp(x - lse),   dx = y * (dy - sum(dy * y))
//   log-softmax:  y = x - lse,        dx = dy - exp(y) * sum(dy)
//
// Two kernels for each direction (LOG picks the variant):
// - rows of up to a few thousand elements (kWarpFwdFloats / kWarpBwdFloats per lane): one warp per
//   row, 4 rows per block. Each lane loads its PACKS packs of V elements (pack p of lane l starts at
//   column (32 p + l) V, so every load is coalesced) into registers once, the row's max and sum
//   are warp shuffles, and the output is written from the same registers: device memory sees each
//   input once and the output once, with no shared memory and no block barrier. PACKS is the
//   smallest power of two that covers the row (a template argument, so the arrays stay in
//   registers); the missing tail of the last packs is masked (-inf for the max, 0 for the sums).
// - longer rows: one block per row. Forward: one pass computes the row's logsumexp with a running
//   max (block_logsumexp in common.cuh), a second pass writes y; the row is re-read from cache, so
//   device memory sees x once and y once. Backward: one pass for the block-wide sum, one to write dx.
#include <type_traits>

#include "common.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int kRowsPerBlock = 4;                      // warps per block in the warp-per-row kernels
constexpr int kWarpFwdFloats = 128, kWarpBwdFloats = 64;  // per lane and input array: the register budget

template <typename T, int V, int PACKS, bool LOG>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    softmax_forward_warp(const T* __restrict__ x, T* __restrict__ y, int64_t N, int C) {
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= N) return;
    const T* xr = x + row * C;
    T* yr = y + row * C;
    float v[PACKS][V];
    float m = -INFINITY;
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * V;
        if (c < C) load<T, V>(xr + c, v[p]);
#pragma unroll
        for (int i = 0; i < V; i++) {
            if (c >= C) v[p][i] = -INFINITY;
            m = fmaxf(m, v[p][i]);
        }
    }
    m = warp_max(m);
    float s = 0.0f;
#pragma unroll
    for (int p = 0; p < PACKS; p++)
#pragma unroll
        for (int i = 0; i < V; i++) {
            const float e = expf(v[p][i] - m);  // 0 for the -inf padding
            s += e;
            if (!LOG) v[p][i] = e;
        }
    s = warp_sum(s);
    const float shift = m + logf(s), inv = 1.0f / s;
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * V;
        if (c >= C) break;
#pragma unroll
        for (int i = 0; i < V; i++) v[p][i] = LOG ? v[p][i] - shift : v[p][i] * inv;
        store<T, V>(yr + c, v[p]);
    }
}

template <typename T, int V, int PACKS, bool LOG>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    softmax_backward_warp(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, int64_t N, int C) {
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= N) return;
    const int64_t off = row * C;
    float d[PACKS][V], v[PACKS][V];
    float s = 0.0f;
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * V;
        if (c >= C) break;
        load<T, V>(dy + off + c, d[p]);
        load<T, V>(y + off + c, v[p]);
#pragma unroll
        for (int i = 0; i < V; i++) s += LOG ? d[p][i] : d[p][i] * v[p][i];
    }
    s = warp_sum(s);
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * V;
        if (c >= C) break;
#pragma unroll
        for (int i = 0; i < V; i++) d[p][i] = LOG ? d[p][i] - expf(v[p][i]) * s : v[p][i] * (d[p][i] - s);
        store<T, V>(dx + off + c, d[p]);
    }
}

template <typename T, int V, bool LOG>
__global__ void softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int C) {
    __shared__ float scratch[32];
    const T* xr = x + int64_t(blockIdx.x) * C;
    T* yr = y + int64_t(blockIdx.x) * C;
    const float lse = block_logsumexp<T, V>(xr, C, scratch);
    for (int c = threadIdx.x * V; c < C; c += blockDim.x * V) {
        float v[V];
        load<T, V>(xr + c, v);
#pragma unroll
        for (int i = 0; i < V; i++) v[i] = LOG ? v[i] - lse : expf(v[i] - lse);
        store<T, V>(yr + c, v);
    }
}

template <typename T, int V, bool LOG>
__global__ void softmax_backward_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, int C) {
    __shared__ float scratch[32];
    const int64_t off = int64_t(blockIdx.x) * C;
    float s = 0.0f;
    for (int c = threadIdx.x * V; c < C; c += blockDim.x * V) {
        float d[V], v[V];
        load<T, V>(dy + off + c, d);
        load<T, V>(y + off + c, v);
#pragma unroll
        for (int i = 0; i < V; i++) s += LOG ? d[i] : d[i] * v[i];
    }
    s = block_reduce<false>(s, scratch);
    for (int c = threadIdx.x * V; c < C; c += blockDim.x * V) {
        float d[V], v[V];
        load<T, V>(dy + off + c, d);
        load<T, V>(y + off + c, v);
#pragma unroll
        for (int i = 0; i < V; i++) d[i] = LOG ? d[i] - expf(v[i]) * s : v[i] * (d[i] - s);
        store<T, V>(dx + off + c, d);
    }
}

// Calls f(std::integral_constant<int, P>{}) with P the smallest power of two >= packs, if P <= MAX.
template <int MAX, int P = 1, typename F> bool with_packs(int64_t packs, F&& f) {
    if (packs <= P) return f(std::integral_constant<int, P>{}), true;
    if constexpr (P < MAX) return with_packs<MAX, 2 * P>(packs, f);
    return false;
}

unsigned warp_blocks(int64_t N) { return static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock); }

template <typename T, int V, bool LOG> void forward_v(const T* x, T* y, int64_t N, int C, cudaStream_t st) {
    const bool warp = with_packs<std::min(32, kWarpFwdFloats / V)>((C + 32 * V - 1) / (32 * V), [&](auto packs) {
        softmax_forward_warp<T, V, decltype(packs)::value, LOG><<<warp_blocks(N), 32 * kRowsPerBlock, 0, st>>>(x, y, N, C);
    });
    if (!warp) softmax_forward_kernel<T, V, LOG><<<N, row_threads(C, V), 0, st>>>(x, y, C);
    CUDA_CHECK_LAUNCH();
}

template <typename T, int V, bool LOG>
void backward_v(const T* dy, const T* y, T* dx, int64_t N, int C, cudaStream_t st) {
    const bool warp = with_packs<std::min(32, kWarpBwdFloats / V)>((C + 32 * V - 1) / (32 * V), [&](auto packs) {
        softmax_backward_warp<T, V, decltype(packs)::value, LOG>
            <<<warp_blocks(N), 32 * kRowsPerBlock, 0, st>>>(dy, y, dx, N, C);
    });
    if (!warp) softmax_backward_kernel<T, V, LOG><<<N, row_threads(C, V), 0, st>>>(dy, y, dx, C);
    CUDA_CHECK_LAUNCH();
}

template <typename T, bool LOG> void forward(uintptr_t x, uintptr_t y, int64_t N, int C, cudaStream_t st) {
    if (can_vectorize<T>(C, {x, y})) forward_v<T, vec16<T>(), LOG>((const T*)x, (T*)y, N, C, st);
    else forward_v<T, 1, LOG>((const T*)x, (T*)y, N, C, st);
}

template <typename T, bool LOG>
void backward(uintptr_t dy, uintptr_t y, uintptr_t dx, int64_t N, int C, cudaStream_t st) {
    if (can_vectorize<T>(C, {dy, y, dx})) backward_v<T, vec16<T>(), LOG>((const T*)dy, (const T*)y, (T*)dx, N, C, st);
    else backward_v<T, 1, LOG>((const T*)dy, (const T*)y, (T*)dx, N, C, st);
}

}  // namespace

void softmax_forward(uintptr_t x, uintptr_t y, int64_t N, int C, bool log, DType dt, uintptr_t stream) {
    if (N == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        (log ? forward<T, true> : forward<T, false>)(x, y, N, C, as_stream(stream));
    });
}

void softmax_backward(uintptr_t dy, uintptr_t y, uintptr_t dx, int64_t N, int C, bool log, DType dt, uintptr_t stream) {
    if (N == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        (log ? backward<T, true> : backward<T, false>)(dy, y, dx, N, C, as_stream(stream));
    });
}

}  // namespace tinyllm::cuda
