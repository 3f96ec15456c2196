// Cross-entropy fused with log-softmax, over (N, V) logits and N integer targets.
//
//   forward:  loss[n] = lse(logits[n]) - logits[n, t_n]        (0 where t_n == ignore_index)
//   backward: dlogits[n] = dloss[n] * (softmax(logits[n]) - onehot(t_n)),  softmax = exp(logits - lse)
//
// The log-probabilities are never written out: the forward reads the logits once (one pass with a
// running max, block_logsumexp in common.cuh) and keeps only lse per row (float32, 4 bytes a row);
// the backward rebuilds the probabilities from it while it writes dlogits. One block per row.
// A target outside [0, V) that is not ignore_index gives a NaN loss rather than a silent read.
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

template <typename T, int V>
__global__ void cross_entropy_forward_kernel(const T* __restrict__ logits, const int64_t* __restrict__ targets,
                                             float* __restrict__ losses, float* __restrict__ lse_out, int C,
                                             int64_t ignore_index) {
    __shared__ float scratch[32];
    const T* row = logits + int64_t(blockIdx.x) * C;
    const float lse = block_logsumexp<T, V>(row, C, scratch);
    if (threadIdx.x == 0) {
        const int64_t t = targets[blockIdx.x];
        float loss = 0.0f;
        if (t != ignore_index) loss = (t >= 0 && t < C) ? lse - to_float(row[t]) : NAN;
        losses[blockIdx.x] = loss;
        lse_out[blockIdx.x] = lse;
    }
}

template <typename T, int V>
__global__ void cross_entropy_backward_kernel(const float* __restrict__ dlosses, const T* __restrict__ logits,
                                              const int64_t* __restrict__ targets, const float* __restrict__ lse,
                                              T* __restrict__ dlogits, int C, int64_t ignore_index) {
    const int64_t off = int64_t(blockIdx.x) * C;
    const int64_t t = targets[blockIdx.x];
    const float dl = t == ignore_index ? 0.0f : dlosses[blockIdx.x], l = lse[blockIdx.x];
    for (int c = threadIdx.x * V; c < C; c += blockDim.x * V) {
        float v[V];
        load<T, V>(logits + off + c, v);
#pragma unroll
        for (int i = 0; i < V; i++) v[i] = dl * (expf(v[i] - l) - (c + i == t ? 1.0f : 0.0f));
        store<T, V>(dlogits + off + c, v);
    }
}

}  // namespace

void cross_entropy_forward(uintptr_t logits, uintptr_t targets, uintptr_t losses, uintptr_t lse, int64_t N, int V,
                           int64_t ignore_index, DType dt, uintptr_t stream) {
    if (N == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int P = vec16<T>();
        auto launch = [&](auto kernel, int p) {
            kernel<<<N, row_threads(V, p), 0, as_stream(stream)>>>((const T*)logits, (const int64_t*)targets,
                                                                   (float*)losses, (float*)lse, V, ignore_index);
        };
        if (can_vectorize<T>(V, {logits})) launch(cross_entropy_forward_kernel<T, P>, P);
        else launch(cross_entropy_forward_kernel<T, 1>, 1);
        CUDA_CHECK_LAUNCH();
    });
}

void cross_entropy_backward(uintptr_t dlosses, uintptr_t logits, uintptr_t targets, uintptr_t lse, uintptr_t dlogits,
                            int64_t N, int V, int64_t ignore_index, DType dt, uintptr_t stream) {
    if (N == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int P = vec16<T>();
        auto launch = [&](auto kernel, int p) {
            kernel<<<N, row_threads(V, p), 0, as_stream(stream)>>>((const float*)dlosses, (const T*)logits,
                                                                   (const int64_t*)targets, (const float*)lse,
                                                                   (T*)dlogits, V, ignore_index);
        };
        if (can_vectorize<T>(V, {logits, dlogits})) launch(cross_entropy_backward_kernel<T, P>, P);
        else launch(cross_entropy_backward_kernel<T, 1>, 1);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
