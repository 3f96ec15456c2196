// The bias of a linear layer, forward and backward, over (N, C) row-major matrices:
//   add_bias:  y[n, c] += b[c]                      (in place, after the matmul)
//   sum_rows:  out[c] = sum over n of x[n, c]      (db, the sum of dy over all rows; float32 sums)
// CuPy runs both several times slower than one pass over the matrix: its broadcast add indexes each
// bfloat16 element on its own, and its reduction over axis 0 walks down the columns.
//
// add_bias: one thread per 16 bytes of y, the bias entries it needs read from L2.
//
// sum_rows: two kernels, so the order of the additions is fixed (the result is deterministic): blocks of
// 32 x 8 threads each own 32 * V columns and a slab of rows; the 8 thread rows walk the slab, sum
// in registers, and combine through shared memory into one float32 partial per slab and column.
// Then one thread per column adds the slabs' partials in order and writes out in x's dtype.
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int kRowsPerStep = 8;

template <typename T, int V>
__global__ void column_partials_kernel(const T* __restrict__ x, float* __restrict__ partials, int64_t N, int C,
                                       int64_t rows_per_slab) {
    __shared__ float acc[kRowsPerStep][32 * V];
    const int c = (blockIdx.x * 32 + threadIdx.x) * V;
    const int64_t begin = blockIdx.y * rows_per_slab, end = min(begin + rows_per_slab, N);
    float s[V] = {};
    if (c < C) {
        for (int64_t n = begin + threadIdx.y; n < end; n += kRowsPerStep) {
            float v[V];
            load<T, V>(x + n * C + c, v);
#pragma unroll
            for (int k = 0; k < V; k++) s[k] += v[k];
        }
    }
#pragma unroll
    for (int k = 0; k < V; k++) acc[threadIdx.y][threadIdx.x * V + k] = s[k];
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
#pragma unroll
        for (int k = 0; k < V; k++) {
            float total = 0.0f;
#pragma unroll
            for (int r = 0; r < kRowsPerStep; r++) total += acc[r][threadIdx.x * V + k];
            partials[blockIdx.y * int64_t(C) + c + k] = total;
        }
    }
}

template <typename T, int V> __global__ void add_bias_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t n, int C) {
    const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    float v[V], w[V];
    load<T, V>(y + i, v);
    load<T, V>(b + i % C, w);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] += w[k];
    store<T, V>(y + i, v);
}

template <typename T> __global__ void add_slabs_kernel(const float* __restrict__ partials, T* __restrict__ out, int slabs, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float total = 0.0f;
    for (int j = 0; j < slabs; j++) total += partials[int64_t(j) * C + c];
    out[c] = from_float<T>(total);
}

// Slabs so that about 4 blocks per multiprocessor run (132 on an H100/H200), each slab at least 64
// rows, for blocks of 32 * V columns. More columns per block (larger V) means more slabs.
int slab_count(int64_t N, int C, int V) {
    const int64_t wanted = std::max<int64_t>(1, 528 / ceil_div(C, 32 * V));
    return int(std::max<int64_t>(1, std::min<int64_t>(wanted, N / 64)));
}

}  // namespace

void add_bias(uintptr_t y, uintptr_t b, int64_t N, int C, DType dt, uintptr_t stream) {
    if (N * C == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int V = vec16<T>();
        if (can_vectorize<T>(C, {y, b}))  // each 16-byte pack then sits inside one row
            add_bias_kernel<T, V><<<ceil_div(N * C, 256 * V), 256, 0, as_stream(stream)>>>((T*)y, (const T*)b, N * C, C);
        else
            add_bias_kernel<T, 1><<<ceil_div(N * C, 256), 256, 0, as_stream(stream)>>>((T*)y, (const T*)b, N * C, C);
        CUDA_CHECK_LAUNCH();
    });
}

int64_t sum_rows_scratch_floats(int64_t N, int C) { return int64_t(slab_count(N, C, 8)) * C; }  // the most slabs

void sum_rows(uintptr_t x, uintptr_t out, uintptr_t scratch, int64_t N, int C, DType dt, uintptr_t stream) {
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int V = vec16<T>();
        const bool vector = can_vectorize<T>(C, {x});
        const int slabs = slab_count(N, C, vector ? V : 1);
        const int64_t rows = (N + slabs - 1) / slabs;
        const dim3 block(32, kRowsPerStep);
        if (vector) {
            const dim3 grid(ceil_div(C, 32 * V), slabs);
            column_partials_kernel<T, V><<<grid, block, 0, as_stream(stream)>>>((const T*)x, (float*)scratch, N, C, rows);
        } else {
            const dim3 grid(ceil_div(C, 32), slabs);
            column_partials_kernel<T, 1><<<grid, block, 0, as_stream(stream)>>>((const T*)x, (float*)scratch, N, C, rows);
        }
        CUDA_CHECK_LAUNCH();
        add_slabs_kernel<T><<<ceil_div(C, 256), 256, 0, as_stream(stream)>>>((const float*)scratch, (T*)out, slabs, C);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
