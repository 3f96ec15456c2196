// Casts between float32 and bfloat16 (autocast's copies of the weights and activations, forward and
// backward). CuPy's astype moves them at about a quarter of the copy bandwidth; here each thread
// moves 8 elements (16 or 32 bytes) at a time. Rounding to bfloat16 is to nearest even, as astype's.
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

template <typename S, typename D, int V> __global__ void cast_kernel(const S* __restrict__ x, D* __restrict__ y, int64_t n) {
    const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    float v[V];
    load<S, V>(x + i, v);
    store<D, V>(y + i, v);
}

}  // namespace

void cast(uintptr_t x, uintptr_t y, int64_t n, DType from, DType to, uintptr_t stream) {
    if (n == 0) return;
    dispatch(from, [&](auto from_tag) {
        dispatch(to, [&](auto to_tag) {
            using S = decltype(from_tag);
            using D = decltype(to_tag);
            constexpr int V = 8;
            if (n % V == 0 && x % (V * sizeof(S)) == 0 && y % (V * sizeof(D)) == 0)
                cast_kernel<S, D, V><<<ceil_div(n, 256 * V), 256, 0, as_stream(stream)>>>((const S*)x, (D*)y, n);
            else
                cast_kernel<S, D, 1><<<ceil_div(n, 256), 256, 0, as_stream(stream)>>>((const S*)x, (D*)y, n);
            CUDA_CHECK_LAUNCH();
        });
    });
}

}  // namespace tinyllm::cuda
