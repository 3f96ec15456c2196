// Elementwise activations, forward y = f(x) and backward dx = dy * f'(x):
//
//   GELU exact: f = x * Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)),  f' = Phi(x) + x * phi(x)
//   GELU tanh:  f = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
//               f' = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(u)
//   SiLU:       f = x * s, s = sigmoid(x),  f' = s (1 + x (1 - s))
//
// Each activation is a small struct with f and df; one forward and one backward kernel template
// serve them all. A grid-stride loop moves 16 bytes per thread per step (scalar when n is not a
// multiple of the vector or a pointer is misaligned).
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2 = 0.7071067811865476f,
                kInvSqrt2Pi = 0.3989422804014327f;

struct GeluExact {
    __device__ static float f(float x) { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); }
    __device__ static float df(float x) {
        return 0.5f * (1.0f + erff(x * kInvSqrt2)) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
    }
};

struct GeluTanh {
    __device__ static float f(float x) { return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x))); }
    __device__ static float df(float x) {
        const float t = tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
    }
};

struct Silu {
    __device__ static float f(float x) { return x / (1.0f + expf(-x)); }
    __device__ static float df(float x) {
        const float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
};

// BACKWARD = false: out = f(in);  BACKWARD = true: out = dy * df(in).
template <typename Op, bool BACKWARD, typename T, int V>
__global__ void activation_kernel(const T* __restrict__ dy, const T* __restrict__ in, T* __restrict__ out, int64_t n) {
    for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V; i < n; i += int64_t(gridDim.x) * blockDim.x * V) {
        float v[V], d[V];
        load<T, V>(in + i, v);
        if (BACKWARD) load<T, V>(dy + i, d);
#pragma unroll
        for (int k = 0; k < V; k++) v[k] = BACKWARD ? d[k] * Op::df(v[k]) : Op::f(v[k]);
        store<T, V>(out + i, v);
    }
}

template <typename Op, bool BACKWARD>
void launch(uintptr_t dy, uintptr_t in, uintptr_t out, int64_t n, DType dt, uintptr_t stream) {
    if (n == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int P = vec16<T>(), kThreads = 256, kMaxBlocks = 132 * 16;
        auto run = [&](auto kernel, int v) {
            const int blocks = std::min(ceil_div(n, int64_t(kThreads) * v), kMaxBlocks);
            kernel<<<blocks, kThreads, 0, as_stream(stream)>>>((const T*)dy, (const T*)in, (T*)out, n);
        };
        if (can_vectorize<T>(n, {dy, in, out})) run(activation_kernel<Op, BACKWARD, T, P>, P);
        else run(activation_kernel<Op, BACKWARD, T, 1>, 1);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace

void gelu_forward(uintptr_t x, uintptr_t y, int64_t n, bool tanh, DType dt, uintptr_t stream) {
    (tanh ? launch<GeluTanh, false> : launch<GeluExact, false>)(0, x, y, n, dt, stream);
}
void gelu_backward(uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, bool tanh, DType dt, uintptr_t stream) {
    (tanh ? launch<GeluTanh, true> : launch<GeluExact, true>)(dy, x, dx, n, dt, stream);
}
void silu_forward(uintptr_t x, uintptr_t y, int64_t n, DType dt, uintptr_t stream) {
    launch<Silu, false>(0, x, y, n, dt, stream);
}
void silu_backward(uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, DType dt, uintptr_t stream) {
    launch<Silu, true>(dy, x, dx, n, dt, stream);
}

}  // namespace tinyllm::cuda
