// Rotary position embedding (RoPE) in the "rotate_half" layout of Llama, forward and backward.
//
// x and y are (rows, D) with rows = (..., T) flattened, so row r sits at position t = r % T; cos and
// sin are (T, D/2). Feature i is rotated together with feature i + D/2:
//   y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin.
// The rotation is orthogonal, so the backward is the same kernel with -sin (sign = -1).
// One thread per pair; memory-bound (each element of x read once, of y written once; cos and sin
// are small and stay in L2).
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

template <typename T>
__global__ void rope_kernel(const T* __restrict__ x, const T* __restrict__ cos, const T* __restrict__ sin,
                            T* __restrict__ y, int64_t pairs, int T_len, int half, float sign) {
    const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (k >= pairs) return;
    const int64_t r = k / half;
    const int i = int(k % half);
    const int64_t angle = int64_t(r % T_len) * half + i;
    const float c = to_float(cos[angle]), s = sign * to_float(sin[angle]);
    const float x1 = to_float(x[r * 2 * half + i]), x2 = to_float(x[r * 2 * half + half + i]);
    y[r * 2 * half + i] = from_float<T>(x1 * c - x2 * s);
    y[r * 2 * half + half + i] = from_float<T>(x2 * c + x1 * s);
}

}  // namespace

void rope(uintptr_t x, uintptr_t cos, uintptr_t sin, uintptr_t y, int64_t rows, int T, int D, bool backward, DType dt,
          uintptr_t stream) {
    const int64_t pairs = rows * (D / 2);
    if (pairs == 0) return;
    dispatch(dt, [&](auto tag) {
        using E = decltype(tag);
        rope_kernel<E><<<ceil_div(pairs, 256), 256, 0, as_stream(stream)>>>(
            (const E*)x, (const E*)cos, (const E*)sin, (E*)y, pairs, T, D / 2, backward ? -1.0f : 1.0f);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
