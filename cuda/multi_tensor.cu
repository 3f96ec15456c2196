// Kernels over many tensors in one launch, for the end of a training step: unscaling all gradients
// with the inf/NaN check of loss scaling, the global norm of all gradients (for clipping), scaling
// them all by the clip coefficient, and the AdamW update of all parameters. One launch per list instead of one per tensor: GPT-2 124M has 148 parameters, so the
// per-tensor versions cost ~150 launches each (and their reductions, one host read). The one-tensor
// adamw_update is a list of one.
//
// AdamW, in place, in the order PyTorch computes it (so results agree to rounding):
//   p *= 1 - lr * wd;  m += (1 - b1) (g - m);  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// param, m and v are float32 (master weights and optimizer state); the gradient is float32 or
// bfloat16. Each element reads 4 values and writes 3.
//
// The list travels in the kernel's parameters, by value (CUDA 12.1+ allows 32 KB of them): up to
// kMaxTensors pointers and sizes per launch, so no device-side table has to be built and a CUDA
// graph captures the launch whole. Longer lists are cut into several launches by the host.
//
// Each tensor is split into chunks of kChunk elements; block b works on chunk b and finds its tensor
// by binary search in first_chunk (first_chunk[i] is the first chunk of tensor i). All purely
// memory-bound: 16-byte accesses where a tensor's size and pointers allow, else one element a thread.
#include <cmath>
#include <type_traits>
#include <vector>

#include "common.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int kMaxTensors = 160, kChunk = 1 << 16, kThreads = 256;

template <int K> struct TensorList {
    void* ptr[K][kMaxTensors];      // K buffers per tensor (a gradient; or param, grad, m, v)
    int64_t size[kMaxTensors];
    int first_chunk[kMaxTensors + 1];  // first_chunk[n] = the number of chunks
    int n;
};

template <int K> __device__ __forceinline__ int tensor_of_block(const TensorList<K>& l) {
    int lo = 0, hi = l.n - 1;  // the last i with first_chunk[i] <= blockIdx.x
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (l.first_chunk[mid] <= int(blockIdx.x)) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// Calls f(i, V) for the elements i of this block's chunk, V at a time (V = 4 or 8 when the tensor
// allows 16-byte accesses, else 1). Returns the tensor index.
template <typename T, int K, typename F> __device__ __forceinline__ int for_chunk(const TensorList<K>& l, F&& f) {
    const int t = tensor_of_block(l);
    const int64_t begin = int64_t(blockIdx.x - l.first_chunk[t]) * kChunk;
    const int64_t end = min(begin + kChunk, l.size[t]);
    constexpr int V = vec16<T>();
    bool aligned = l.size[t] % V == 0;
#pragma unroll
    for (int k = 0; k < K; k++) aligned &= reinterpret_cast<uintptr_t>(l.ptr[k][t]) % 16 == 0;
    if (aligned) {
        for (int64_t i = begin + threadIdx.x * V; i < end; i += kThreads * V) f(t, i, std::integral_constant<int, V>{});
    } else {
        for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) f(t, i, std::integral_constant<int, 1>{});
    }
    return t;
}

// ---- scaling every gradient: loss scaling's unscale, and clipping -----------------------------
// g *= coef (in float32), coef = min(1, max_norm / (*norm + 1e-6)) when norm is given (clipping, the
// norm read on the device), else `scale` (1 / the loss scale). With found_inf, *found_inf = 1 where a
// result is inf or NaN: every block that sees one writes the same 1, so the race is harmless, and the
// flag is otherwise left as it was.

template <typename T> __global__ void scale_kernel(const __grid_constant__ TensorList<1> l, float scale, const float* norm,
                                                   float max_norm, float* found_inf) {
    const float coef = norm ? fminf(1.0f, max_norm / (*norm + 1e-6f)) : scale;
    bool nonfinite = false;
    for_chunk<T>(l, [&](int t, int64_t i, auto v) {
        constexpr int V = decltype(v)::value;
        T* g = static_cast<T*>(l.ptr[0][t]) + i;
        float x[V];
        load<T, V>(g, x);
#pragma unroll
        for (int k = 0; k < V; k++) {
            x[k] *= coef;
            nonfinite |= !isfinite(x[k]);
        }
        store<T, V>(g, x);
    });
    if (found_inf && __syncthreads_or(nonfinite) && threadIdx.x == 0) *found_inf = 1.0f;  // found_inf: the same in every thread
}

// ---- global gradient norm ------------------------------------------------------------------

template <typename T> __global__ void sum_squares_kernel(const __grid_constant__ TensorList<1> l, float* partials) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for_chunk<T>(l, [&](int t, int64_t i, auto v) {
        constexpr int V = decltype(v)::value;
        float x[V];
        load<T, V>(static_cast<const T*>(l.ptr[0][t]) + i, x);
#pragma unroll
        for (int k = 0; k < V; k++) s += x[k] * x[k];
    });
    s = block_reduce<false>(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// One block adds the partial sums in a fixed order (so the norm is deterministic) and takes the root.
__global__ void sqrt_of_sum_kernel(const float* partials, int n, float* norm) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
    s = block_reduce<false>(s, scratch);
    if (threadIdx.x == 0) *norm = sqrtf(s);
}


// ---- AdamW ----------------------------------------------------------------------------------
// The step count t and the learning rate come from the host (step_value, lr_value) or, for a captured
// step, from the device (*step_ptr, a float32 the optimizer increments there; *lr_ptr, a float64 the host
// writes before each replay), so a replayed graph sees each step's t and scheduled learning rate.

template <typename G> __global__ void adamw_kernel(const __grid_constant__ TensorList<4> l, double lr_value, float beta1,
                                                   float beta2, float eps, double weight_decay, float step_value,
                                                   const float* step_ptr, const double* lr_ptr) {
    const double step = step_ptr ? *step_ptr : step_value;
    const double lr = lr_ptr ? *lr_ptr : lr_value;
    const float decay = float(1.0 - lr * weight_decay);
    const float step_size = float(lr / (1.0 - pow(double(beta1), step)));
    const float bc2_sqrt = float(sqrt(1.0 - pow(double(beta2), step)));
    for_chunk<float>(l, [&](int t, int64_t i, auto v) {
        constexpr int V = decltype(v)::value;
        float* p = static_cast<float*>(l.ptr[0][t]) + i;
        float* m = static_cast<float*>(l.ptr[2][t]) + i;
        float* s = static_cast<float*>(l.ptr[3][t]) + i;
        float pv[V], gv[V], mv[V], sv[V];
        load<float, V>(p, pv);
        load<G, V>(static_cast<const G*>(l.ptr[1][t]) + i, gv);
        load<float, V>(m, mv);
        load<float, V>(s, sv);
#pragma unroll
        for (int k = 0; k < V; k++) {
            pv[k] *= decay;
            mv[k] += (1.0f - beta1) * (gv[k] - mv[k]);
            sv[k] = beta2 * sv[k] + (1.0f - beta2) * gv[k] * gv[k];
            pv[k] -= step_size * mv[k] / (sqrtf(sv[k]) / bc2_sqrt + eps);
        }
        store<float, V>(p, pv);
        store<float, V>(m, mv);
        store<float, V>(s, sv);
    });
}

// Fills one launch's list from tensors [from, to) of the host's pointer vectors; returns its chunk count.
template <int K> int fill(TensorList<K>& l, const std::vector<uintptr_t>* ptrs, const std::vector<int64_t>& sizes,
                          size_t from, size_t to) {
    l.n = int(to - from);
    int chunks = 0;
    for (size_t j = from; j < to; j++) {
        for (int k = 0; k < K; k++) l.ptr[k][j - from] = reinterpret_cast<void*>(ptrs[k][j]);
        l.size[j - from] = sizes[j];
        l.first_chunk[j - from] = chunks;
        chunks += ceil_div(std::max<int64_t>(sizes[j], 1), kChunk);
    }
    l.first_chunk[l.n] = chunks;
    return chunks;
}

// Runs launch(list, chunks, first block) over the tensors kMaxTensors at a time.
template <int K, typename F> void for_each_launch(const std::vector<uintptr_t>* ptrs, const std::vector<int64_t>& sizes,
                                                  F&& launch) {
    for (size_t k = 1; k < K; k++)
        if (ptrs[k].size() != sizes.size()) throw std::invalid_argument("tinyllm._cuda: tensor lists of different lengths");
    TensorList<K> l;
    int offset = 0;
    for (size_t from = 0; from < sizes.size(); from += kMaxTensors) {
        const int chunks = fill(l, ptrs, sizes, from, std::min(sizes.size(), from + kMaxTensors));
        launch(l, chunks, offset);
        CUDA_CHECK_LAUNCH();
        offset += chunks;
    }
}

int total_chunks(const std::vector<int64_t>& sizes) {
    int chunks = 0;
    for (int64_t n : sizes) chunks += ceil_div(std::max<int64_t>(n, 1), kChunk);
    return chunks;
}

}  // namespace

int64_t grad_norm_scratch_floats(const std::vector<int64_t>& sizes) { return total_chunks(sizes); }

void grad_norm(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, uintptr_t scratch, uintptr_t norm,
               DType dt, uintptr_t stream) {
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        for_each_launch<1>(&grads, sizes, [&](const TensorList<1>& l, int chunks, int offset) {
            sum_squares_kernel<T><<<chunks, kThreads, 0, as_stream(stream)>>>(l, (float*)scratch + offset);
        });
    });
    sqrt_of_sum_kernel<<<1, 1024, 0, as_stream(stream)>>>((const float*)scratch, total_chunks(sizes), (float*)norm);
    CUDA_CHECK_LAUNCH();
}

static void scale_grads(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, float scale,
                        uintptr_t norm, float max_norm, uintptr_t found_inf, DType dt, uintptr_t stream) {
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        for_each_launch<1>(&grads, sizes, [&](const TensorList<1>& l, int chunks, int) {
            scale_kernel<T><<<chunks, kThreads, 0, as_stream(stream)>>>(l, scale, (const float*)norm, max_norm,
                                                                        (float*)found_inf);
        });
    });
}

void clip_grads(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, uintptr_t norm, float max_norm,
                DType dt, uintptr_t stream) {
    scale_grads(grads, sizes, 1.0f, norm, max_norm, 0, dt, stream);
}

void unscale_grads(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, float inv_scale,
                   uintptr_t found_inf, DType dt, uintptr_t stream) {
    scale_grads(grads, sizes, inv_scale, 0, 0.0f, found_inf, dt, stream);
}

void adamw_update_multi(const std::vector<uintptr_t>& params, const std::vector<uintptr_t>& grads,
                        const std::vector<uintptr_t>& exp_avgs, const std::vector<uintptr_t>& exp_avg_sqs,
                        const std::vector<int64_t>& sizes, double lr, double beta1, double beta2, double eps,
                        double weight_decay, double step, uintptr_t step_ptr, uintptr_t lr_ptr, DType grad_dt,
                        uintptr_t stream) {
    const std::vector<uintptr_t> lists[4] = {params, grads, exp_avgs, exp_avg_sqs};
    dispatch(grad_dt, [&](auto tag) {
        using G = decltype(tag);
        for_each_launch<4>(lists, sizes, [&](const TensorList<4>& l, int chunks, int) {
            adamw_kernel<G><<<chunks, kThreads, 0, as_stream(stream)>>>(l, lr, float(beta1), float(beta2), float(eps),
                                                                        weight_decay, float(step), (const float*)step_ptr,
                                                                        (const double*)lr_ptr);
        });
    });
}

void adamw_update(uintptr_t param, uintptr_t grad, uintptr_t exp_avg, uintptr_t exp_avg_sq, int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step, DType grad_dt,
                  uintptr_t stream) {
    adamw_update_multi({param}, {grad}, {exp_avg}, {exp_avg_sq}, {n}, lr, beta1, beta2, eps, weight_decay,
                       double(step), 0, 0, grad_dt, stream);
}

}  // namespace tinyllm::cuda
