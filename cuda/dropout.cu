// Dropout by counter-based random numbers: y = x * m, m_i = scale if u_i >= p else 0, where u_i comes
// from word i % 4 of Philox4x32-10 at counter offset (+ *shift) + i // 4 under the key seed (the
// definition is tinyllm/backend/reference.py: dropout; csrc/dropout.cpp computes the same bits on the
// CPU). One thread makes the four words of one counter and applies them to four consecutive
// elements. No mask is stored: the backward pass runs the same kernel on dy with the same key.
#include "philox.cuh"

namespace tinyllm::cuda {
namespace {

// VEC: the four elements of a counter are loaded and stored as one aligned access (n a multiple of 4).
template <typename T, bool VEC>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, float p, float scale,
                               uint64_t seed, uint64_t offset, const uint64_t* __restrict__ shift) {
    const uint64_t base = offset + (shift ? *shift : 0);
    const uint32_t threshold = keep_threshold(p);
    const int64_t counters = (n + 3) / 4;
    for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < counters; b += int64_t(gridDim.x) * blockDim.x) {
        const uint4 r = philox4x32_10(base + uint64_t(b), seed);
        const float m[4] = {keep_factor(r.x, threshold, scale), keep_factor(r.y, threshold, scale),
                            keep_factor(r.z, threshold, scale), keep_factor(r.w, threshold, scale)};
        if (VEC) {
            float v[4];
            load<T, 4>(x + 4 * b, v);
#pragma unroll
            for (int k = 0; k < 4; k++) v[k] *= m[k];
            store<T, 4>(y + 4 * b, v);
        } else {
            for (int k = 0; k < 4 && 4 * b + k < n; k++) y[4 * b + k] = from_float<T>(to_float(x[4 * b + k]) * m[k]);
        }
    }
}

}  // namespace

void dropout(uintptr_t x, uintptr_t y, int64_t n, float p, float scale, uint64_t seed, uint64_t offset, uintptr_t shift,
             DType dt, uintptr_t stream) {
    if (n == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int kThreads = 256, kMaxBlocks = 132 * 16;
        const int blocks = int(std::min<int64_t>(ceil_div((n + 3) / 4, int64_t(kThreads)), kMaxBlocks));
        const bool vec = n % 4 == 0 && x % (4 * sizeof(T)) == 0 && y % (4 * sizeof(T)) == 0;
        auto kernel = vec ? dropout_kernel<T, true> : dropout_kernel<T, false>;
        kernel<<<blocks, kThreads, 0, as_stream(stream)>>>((const T*)x, (T*)y, n, p, scale, seed, offset,
                                                           (const uint64_t*)shift);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
