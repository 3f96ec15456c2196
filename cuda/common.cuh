// Helpers shared by every CUDA kernel file: error checking, the two storage dtypes, vector loads,
// and warp/block reductions.
//
// Conventions (tinyllm/backend/cuda.py guarantees them before it calls in):
// - buffers are plain device pointers to C-contiguous arrays, allocated by CuPy's memory pool;
// - every launch goes on the stream the caller passes (CuPy's current stream), so kernels are
//   captured by CUDA graphs like any other work on that stream;
// - storage is float32 or bfloat16 (DType); arithmetic and accumulation are always float32;
// - statistics kept for a backward pass (mean, rstd, logsumexp) are float32 whatever the storage.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels.h"

namespace tinyllm::cuda {

// ---- errors ---------------------------------------------------------------------------------
// Every CUDA call is checked; a failure becomes a C++ exception, which pybind11 turns into a Python
// RuntimeError naming the file, line and CUDA's message.

inline void check(cudaError_t err, const char* what, const char* file, int line) {
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("CUDA error at ") + file + ":" + std::to_string(line) + " (" +
                                 what + "): " + cudaGetErrorString(err));
}
#define CUDA_CHECK(call) ::tinyllm::cuda::check((call), #call, __FILE__, __LINE__)
// After each kernel launch: a bad launch configuration shows up here, not at the next sync.
#define CUDA_CHECK_LAUNCH() ::tinyllm::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// ---- dtypes ---------------------------------------------------------------------------------

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half(x); }

// Calls f(T{}) with T = float, bf16 or __half for the dtype code: the one place where a run-time
// dtype becomes a template argument. Inside f, `using T = decltype(tag);` names the type.
template <typename F> void dispatch(DType dt, F&& f) {
    switch (dt) {
        case DType::f32: f(float{}); break;
        case DType::bf16: f(bf16{}); break;
        case DType::f16: f(__half{}); break;
        default: throw std::invalid_argument("tinyllm._cuda: dtype must be float32, bfloat16 or float16");
    }
}

inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// ---- vector access --------------------------------------------------------------------------
// Memory-bound kernels move 16 bytes per thread per access (4 floats or 8 bf16). V is the number
// of elements one access moves; V = 1 is the scalar path for rows whose length is not a multiple
// of the vector (their rows would start misaligned).

template <typename T> constexpr int vec16() { return 16 / sizeof(T); }

template <typename T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

template <typename T, int V> __device__ __forceinline__ void load(const T* p, float (&out)[V]) {
    Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
    for (int i = 0; i < V; i++) out[i] = to_float(pk.v[i]);
}

template <typename T, int V> __device__ __forceinline__ void store(T* p, const float (&in)[V]) {
    Pack<T, V> pk;
#pragma unroll
    for (int i = 0; i < V; i++) pk.v[i] = from_float<T>(in[i]);
    *reinterpret_cast<Pack<T, V>*>(p) = pk;
}

// Whether n elements from every pointer can be moved 16 bytes at a time.
template <typename T> inline bool can_vectorize(int64_t n, std::initializer_list<uintptr_t> ptrs) {
    if (n % vec16<T>() != 0) return false;
    for (uintptr_t p : ptrs)
        if (p % 16 != 0) return false;
    return true;
}

// ---- reductions -----------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sum (or max) over the whole block, returned to every thread. `scratch` holds 32 floats; the call
// begins with a barrier, so the same scratch can serve consecutive reductions.
template <bool MAX> __device__ float block_reduce(float x, float* scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    x = MAX ? warp_max(x) : warp_sum(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < warps ? scratch[lane] : (MAX ? -INFINITY : 0.0f);
    return MAX ? warp_max(x) : warp_sum(x);
}

// logsumexp of one row of C elements, returned to every thread of the block. One pass: each thread
// keeps a running (max, sum of exp(x - max)) over its packs, rescaling the sum when the max grows;
// then the block combines them. Entries of -inf (masked) contribute 0.
template <typename T, int V> __device__ float block_logsumexp(const T* row, int C, float* scratch) {
    float m = -INFINITY, s = 0.0f;
    for (int c = threadIdx.x * V; c < C; c += blockDim.x * V) {
        float v[V];
        load<T, V>(row + c, v);
        float mp = v[0];
#pragma unroll
        for (int i = 1; i < V; i++) mp = fmaxf(mp, v[i]);
        if (mp == -INFINITY) continue;
        const float mn = fmaxf(m, mp);
        s *= expf(m - mn);
#pragma unroll
        for (int i = 0; i < V; i++) s += expf(v[i] - mn);
        m = mn;
    }
    const float M = block_reduce<true>(m, scratch);
    const float S = block_reduce<false>(m == -INFINITY ? 0.0f : s * expf(m - M), scratch);
    return M + logf(S);
}

// Threads for a block that walks a row of C elements V at a time: one pack per thread for short
// rows, at most 512 threads (each looping) for long ones.
inline int row_threads(int64_t C, int V) {
    const int64_t packs = (C + V - 1) / V;
    return static_cast<int>(std::min<int64_t>(512, std::max<int64_t>(32, (packs + 31) / 32 * 32)));
}

inline int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

}  // namespace tinyllm::cuda
