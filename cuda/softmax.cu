// Softmax and log-softmax over the last axis of an (N, C) matrix, forward and backward.
//
//   softmax:      y = exp(x - lse),   dx = y * (dy - sum(dy * y))
//   log-softmax:  y = x - lse,        dx = dy - exp(y) * sum(dy)
//
// One block per row (LOG picks the variant). Forward: one pass computes the row's logsumexp with a
// running max (block_logsumexp in common.cuh), a second pass writes y; the row is re-read from
// cache, so device memory sees x once and y once. Backward: one pass for the block-wide sum, one
// to write dx.
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

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

template <typename T, bool LOG> void forward(uintptr_t x, uintptr_t y, int64_t N, int C, cudaStream_t st) {
    constexpr int V = vec16<T>();
    if (can_vectorize<T>(C, {x, y}))
        softmax_forward_kernel<T, V, LOG><<<N, row_threads(C, V), 0, st>>>((const T*)x, (T*)y, C);
    else
        softmax_forward_kernel<T, 1, LOG><<<N, row_threads(C, 1), 0, st>>>((const T*)x, (T*)y, C);
    CUDA_CHECK_LAUNCH();
}

template <typename T, bool LOG>
void backward(uintptr_t dy, uintptr_t y, uintptr_t dx, int64_t N, int C, cudaStream_t st) {
    constexpr int V = vec16<T>();
    if (can_vectorize<T>(C, {dy, y, dx}))
        softmax_backward_kernel<T, V, LOG><<<N, row_threads(C, V), 0, st>>>((const T*)dy, (const T*)y, (T*)dx, C);
    else
        softmax_backward_kernel<T, 1, LOG><<<N, row_threads(C, 1), 0, st>>>((const T*)dy, (const T*)y, (T*)dx, C);
    CUDA_CHECK_LAUNCH();
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
