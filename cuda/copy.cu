// A strided array made contiguous: y (row-major, shape n0 x n1 x n2 x n3) = x read through its
// strides (in elements; fewer dimensions are padded in front with size 1). The transposes of
// attention ((B, T, H, D) <-> (B, H, T, D)) and the reshapes that need a copy come here: CuPy's
// generic copy moves them at under 1 TB/s. Where the last axis is contiguous in x and every pack
// starts 16-byte aligned, each thread moves 16 bytes; else one element.
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

struct Dims {
    int64_t n[4], s[4];
};

template <typename T, int V> __global__ void strided_copy_kernel(const T* __restrict__ x, T* __restrict__ y, Dims d, int64_t total) {
    const int64_t o = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
    if (o >= total) return;
    int64_t rest = o, src = 0;
#pragma unroll
    for (int k = 3; k >= 0; k--) {
        src += (rest % d.n[k]) * d.s[k];
        rest /= d.n[k];
    }
    if constexpr (V == 1) {
        y[o] = x[src];
    } else {
        *reinterpret_cast<Pack<T, V>*>(y + o) = *reinterpret_cast<const Pack<T, V>*>(x + src);
    }
}

}  // namespace

void strided_copy(uintptr_t x, uintptr_t y, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                  DType dt, uintptr_t stream) {
    if (shape.size() != strides.size() || shape.size() > 4 || shape.empty())
        throw std::invalid_argument("tinyllm._cuda.strided_copy: 1 to 4 dimensions, one stride each");
    Dims d;
    const size_t pad = 4 - shape.size();
    int64_t total = 1;
    for (int k = 0; k < 4; k++) {
        d.n[k] = k < int(pad) ? 1 : shape[k - pad];
        d.s[k] = k < int(pad) ? 0 : strides[k - pad];
        total *= d.n[k];
    }
    if (total == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int V = vec16<T>();
        bool packs = d.s[3] == 1 && d.n[3] % V == 0 && x % 16 == 0 && y % 16 == 0;
        for (int k = 0; k < 3; k++) packs &= d.s[k] % V == 0;
        if (packs)
            strided_copy_kernel<T, V><<<ceil_div(total, 256 * V), 256, 0, as_stream(stream)>>>((const T*)x, (T*)y, d, total);
        else
            strided_copy_kernel<T, 1><<<ceil_div(total, 256), 256, 0, as_stream(stream)>>>((const T*)x, (T*)y, d, total);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
