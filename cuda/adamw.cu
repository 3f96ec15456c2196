// AdamW, one step, in place, in the order PyTorch computes it (so results agree to rounding):
//
//   p *= 1 - lr * wd;  m += (1 - b1) (g - m);  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
// param, m and v are float32 (master weights and optimizer state); the gradient is float32 or
// bfloat16. Purely memory-bound: each element reads 4 values and writes 3, so a grid-stride loop
// over 4 elements per thread per step (16-byte accesses to the float32 buffers). One launch per
// tensor; the bias corrections are computed once on the host, in double.
#include <cmath>

#include "common.cuh"

namespace tinyllm::cuda {
namespace {

template <typename G, int V>
__global__ void adamw_kernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
                             int64_t n, float beta1, float beta2, float eps, float decay, float step_size,
                             float bc2_sqrt) {
    for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V; i < n; i += int64_t(gridDim.x) * blockDim.x * V) {
        float pv[V], gv[V], mv[V], vv[V];
        load<float, V>(p + i, pv);
        load<G, V>(g + i, gv);
        load<float, V>(m + i, mv);
        load<float, V>(v + i, vv);
#pragma unroll
        for (int k = 0; k < V; k++) {
            pv[k] *= decay;
            mv[k] += (1.0f - beta1) * (gv[k] - mv[k]);
            vv[k] = beta2 * vv[k] + (1.0f - beta2) * gv[k] * gv[k];
            pv[k] -= step_size * mv[k] / (sqrtf(vv[k]) / bc2_sqrt + eps);
        }
        store<float, V>(p + i, pv);
        store<float, V>(m + i, mv);
        store<float, V>(v + i, vv);
    }
}

}  // namespace

void adamw_update(uintptr_t param, uintptr_t grad, uintptr_t exp_avg, uintptr_t exp_avg_sq, int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step, DType grad_dt,
                  uintptr_t stream) {
    if (n == 0) return;
    const float step_size = float(lr / (1.0 - std::pow(beta1, double(step))));
    const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(beta2, double(step))));
    dispatch(grad_dt, [&](auto tag) {
        using G = decltype(tag);
        constexpr int kThreads = 256, kMaxBlocks = 132 * 16;
        auto run = [&](auto kernel, int v) {
            const int blocks = std::min(ceil_div(n, int64_t(kThreads) * v), kMaxBlocks);
            kernel<<<blocks, kThreads, 0, as_stream(stream)>>>((float*)param, (const G*)grad, (float*)exp_avg,
                                                               (float*)exp_avg_sq, n, float(beta1),
                                                               float(beta2), float(eps), float(1.0 - lr * weight_decay),
                                                               step_size, bc2_sqrt);
        };
        const bool aligned = n % 4 == 0 && param % 16 == 0 && exp_avg % 16 == 0 && exp_avg_sq % 16 == 0 &&
                             grad % (4 * sizeof(G)) == 0;
        if (aligned) run(adamw_kernel<G, 4>, 4);
        else run(adamw_kernel<G, 1>, 1);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
