// LayerNorm and RMSNorm, forward and backward, over the last axis of an (N, C) matrix.
//
//   layernorm: y = (x - mean) * rstd * w + b,   rstd = 1 / sqrt(var + eps)
//   rmsnorm:   y = x * rstd * w,                rstd = 1 / sqrt(mean(x^2) + eps)
//
//   add_ variants (pre-norm residual blocks): s = x + delta (rounded to T), then y = norm(s); the
//   backward adds the residual stream's gradient dres into dx: dx = dres + norm's dx. delta has a
//   dtype D of its own: under autocast a float32 residual stream takes a bfloat16 sublayer output.
//
// One kernel body serves all four (CENTER = true is layernorm; delta and dres may be null). Parallelisation, as in llm.c:
// - forward: one warp per row. Each lane walks the row 16 bytes at a time; the warp reduces the sum
//   (mean), then the centred sum of squares (rstd: two passes, as exact as the reference), then
//   writes y (and s). The re-reads of a row hit L1, so device memory sees x (and delta) once and y
//   (and s) once: the residual add costs no pass of its own.
// - backward: one warp per row for dx (two warp reductions, sum(g) and sum(g * xhat), g = dy * w).
//   dw and db are sums over all rows: each warp accumulates its rows into its own slice of shared
//   memory (each lane owns fixed columns, so no atomics), the block adds its warps in a fixed order
//   and writes one partial row per block; a second small kernel adds the blocks' partials, again in
//   a fixed order. The result is deterministic: the same inputs give the same bits on every run.
#include "common.cuh"
#include "kernels.h"

namespace tinyllm::cuda {
namespace {

constexpr int kWarps = 4;         // warps (rows in flight) per block
constexpr int kMaxBlocks = 1024;  // blocks in the backward pass, each writing one partial dw/db row

template <typename T, typename D, int V, bool CENTER>
__global__ void norm_forward_kernel(const T* __restrict__ x, const D* __restrict__ delta, const T* __restrict__ w,
                                    const T* __restrict__ b, T* __restrict__ s_out, T* __restrict__ y,
                                    float* __restrict__ mean, float* __restrict__ rstd, int64_t N, int C, float eps) {
    const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= N) return;
    const T* xr = x + row * C;
    // v = the row's values at c..c+V: x, or s = x + delta rounded to T (the s that is stored is the s normalised)
    auto load_row = [&](int c, float(&v)[V]) {
        load<T, V>(xr + c, v);
        if (delta != nullptr) {
            float d[V];
            load<D, V>(delta + row * C + c, d);
#pragma unroll
            for (int i = 0; i < V; i++) v[i] = to_float(from_float<T>(v[i] + d[i]));
        }
    };
    float m = 0.0f;
    if (CENTER) {
        float s = 0.0f;
        for (int c = lane * V; c < C; c += 32 * V) {
            float v[V];
            load_row(c, v);
#pragma unroll
            for (int i = 0; i < V; i++) s += v[i];
        }
        m = warp_sum(s) / C;
    }
    float ss = 0.0f;
    for (int c = lane * V; c < C; c += 32 * V) {
        float v[V];
        load_row(c, v);
#pragma unroll
        for (int i = 0; i < V; i++) ss += (v[i] - m) * (v[i] - m);
    }
    const float r = rsqrtf(warp_sum(ss) / C + eps);
    for (int c = lane * V; c < C; c += 32 * V) {
        float v[V], wv[V], bv[V] = {};
        load_row(c, v);
        if (delta != nullptr) store<T, V>(s_out + row * C + c, v);
        load<T, V>(w + c, wv);
        if (CENTER && b != nullptr) load<T, V>(b + c, bv);
#pragma unroll
        for (int i = 0; i < V; i++) v[i] = (v[i] - m) * r * wv[i] + bv[i];
        store<T, V>(y + row * C + c, v);
    }
    if (lane == 0) {
        if (CENTER) mean[row] = m;
        rstd[row] = r;
    }
}

// Shared memory: kWarps slices of [dw(C) | db(C)] floats. Partials: (gridDim.x, 2, C) floats.
template <typename T, int V, bool CENTER>
__global__ void norm_backward_kernel(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ w,
                                     const float* __restrict__ mean, const float* __restrict__ rstd,
                                     const T* __restrict__ dres, T* __restrict__ dx, float* __restrict__ partials,
                                     int64_t N, int C) {
    extern __shared__ float smem[];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float* dw_acc = smem + warp * 2 * C;
    float* db_acc = dw_acc + C;
    for (int c = lane; c < C; c += 32) dw_acc[c] = db_acc[c] = 0.0f;
    __syncwarp();

    for (int64_t row = int64_t(blockIdx.x) * kWarps + warp; row < N; row += int64_t(gridDim.x) * kWarps) {
        const T* dyr = dy + row * C;
        const T* xr = x + row * C;
        const float m = CENTER ? mean[row] : 0.0f, r = rstd[row];
        float sum_g = 0.0f, sum_gx = 0.0f;
        for (int c = lane * V; c < C; c += 32 * V) {
            float d[V], v[V], wv[V];
            load<T, V>(dyr + c, d);
            load<T, V>(xr + c, v);
            load<T, V>(w + c, wv);
#pragma unroll
            for (int i = 0; i < V; i++) {
                const float xhat = (v[i] - m) * r, g = d[i] * wv[i];
                sum_g += g;
                sum_gx += g * xhat;
                dw_acc[c + i] += d[i] * xhat;  // column c + i belongs to this lane on every row
                db_acc[c + i] += d[i];
            }
        }
        const float mean_g = CENTER ? warp_sum(sum_g) / C : 0.0f;
        const float mean_gx = warp_sum(sum_gx) / C;
        for (int c = lane * V; c < C; c += 32 * V) {
            float d[V], v[V], wv[V], e[V] = {};
            load<T, V>(dyr + c, d);
            load<T, V>(xr + c, v);
            load<T, V>(w + c, wv);
            if (dres != nullptr) load<T, V>(dres + row * C + c, e);
#pragma unroll
            for (int i = 0; i < V; i++) d[i] = r * (d[i] * wv[i] - mean_g - (v[i] - m) * r * mean_gx) + e[i];
            store<T, V>(dx + row * C + c, d);
        }
    }
    __syncthreads();
    float* out = partials + int64_t(blockIdx.x) * 2 * C;
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < kWarps; k++) s += smem[k * 2 * C + c];
        out[c] = s;
    }
}

// dw[c] = sum over blocks of partials[blk, 0, c]; db likewise from partials[blk, 1, c].
template <typename T>
__global__ void sum_partials_kernel(const float* __restrict__ partials, int blocks, int C, T* __restrict__ dw,
                                    T* __restrict__ db) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= 2 * C) return;
    float s = 0.0f;
    for (int k = 0; k < blocks; k++) s += partials[int64_t(k) * 2 * C + c];
    if (c < C) dw[c] = from_float<T>(s);
    else if (db != nullptr) db[c - C] = from_float<T>(s);
}

int backward_blocks(int64_t N) { return static_cast<int>(std::min<int64_t>(ceil_div(N, kWarps), kMaxBlocks)); }

template <bool CENTER>
void norm_forward(uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t b, uintptr_t s, uintptr_t y, uintptr_t mean,
                  uintptr_t rstd, int64_t N, int C, float eps, DType dt, DType delta_dt, uintptr_t stream) {
    if (N == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        dispatch(delta_dt, [&](auto delta_tag) {
            using D = decltype(delta_tag);
            const dim3 grid(ceil_div(N, kWarps)), block(32 * kWarps);
            auto args = [&](auto kernel) {
                kernel<<<grid, block, 0, as_stream(stream)>>>((const T*)x, (const D*)delta, (const T*)w, (const T*)b,
                                                              (T*)s, (T*)y, (float*)mean, (float*)rstd, N, C, eps);
            };
            if (can_vectorize<T>(C, {x, delta, w, b, s, y})) args(norm_forward_kernel<T, D, vec16<T>(), CENTER>);
            else args(norm_forward_kernel<T, D, 1, CENTER>);
            CUDA_CHECK_LAUNCH();
        });
    });
}

template <bool CENTER>
void norm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t mean, uintptr_t rstd, uintptr_t dres, uintptr_t dx,
                   uintptr_t dw, uintptr_t db, uintptr_t scratch, int64_t N, int C, DType dt, uintptr_t stream) {
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        const int blocks = N > 0 ? backward_blocks(N) : 0;
        if (blocks > 0) {
            const size_t smem = size_t(kWarps) * 2 * C * sizeof(float);
            auto run = [&](auto kernel) {
                if (smem > 48 * 1024)
                    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
                kernel<<<blocks, 32 * kWarps, smem, as_stream(stream)>>>((const T*)dy, (const T*)x, (const T*)w,
                                                                         (const float*)mean, (const float*)rstd,
                                                                         (const T*)dres, (T*)dx, (float*)scratch, N, C);
            };
            if (can_vectorize<T>(C, {dy, x, w, dres, dx})) run(norm_backward_kernel<T, vec16<T>(), CENTER>);
            else run(norm_backward_kernel<T, 1, CENTER>);
            CUDA_CHECK_LAUNCH();
        } else {
            CUDA_CHECK(cudaMemsetAsync((void*)scratch, 0, 2 * C * sizeof(float), as_stream(stream)));
        }
        sum_partials_kernel<T><<<ceil_div(2 * C, 256), 256, 0, as_stream(stream)>>>(
            (const float*)scratch, std::max(blocks, 1), C, (T*)dw, (T*)db);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace

int64_t norm_backward_scratch_floats(int64_t N, int C) { return int64_t(std::max(backward_blocks(N), 1)) * 2 * C; }

void layernorm_forward(uintptr_t x, uintptr_t w, uintptr_t b, uintptr_t y, uintptr_t mean, uintptr_t rstd, int64_t N,
                       int C, float eps, DType dt, uintptr_t stream) {
    norm_forward<true>(x, 0, w, b, 0, y, mean, rstd, N, C, eps, dt, dt, stream);
}

void add_layernorm_forward(uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t b, uintptr_t s, uintptr_t y,
                           uintptr_t mean, uintptr_t rstd, int64_t N, int C, float eps, DType dt, DType delta_dt,
                           uintptr_t stream) {
    norm_forward<true>(x, delta, w, b, s, y, mean, rstd, N, C, eps, dt, delta_dt, stream);
}

void layernorm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t mean, uintptr_t rstd, uintptr_t dres,
                        uintptr_t dx, uintptr_t dw, uintptr_t db, uintptr_t scratch, int64_t N, int C, DType dt,
                        uintptr_t stream) {
    norm_backward<true>(dy, x, w, mean, rstd, dres, dx, dw, db, scratch, N, C, dt, stream);
}

void rmsnorm_forward(uintptr_t x, uintptr_t w, uintptr_t y, uintptr_t rstd, int64_t N, int C, float eps, DType dt,
                     uintptr_t stream) {
    norm_forward<false>(x, 0, w, 0, 0, y, 0, rstd, N, C, eps, dt, dt, stream);
}

void add_rmsnorm_forward(uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t s, uintptr_t y, uintptr_t rstd, int64_t N,
                         int C, float eps, DType dt, DType delta_dt, uintptr_t stream) {
    norm_forward<false>(x, delta, w, 0, s, y, 0, rstd, N, C, eps, dt, delta_dt, stream);
}

void rmsnorm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t rstd, uintptr_t dres, uintptr_t dx, uintptr_t dw,
                      uintptr_t scratch, int64_t N, int C, DType dt, uintptr_t stream) {
    norm_backward<false>(dy, x, w, 0, rstd, dres, dx, dw, 0, scratch, N, C, dt, stream);
}

}  // namespace tinyllm::cuda
