// Embedding backward: dW[i] = sum of the rows dy[n] with idx[n] == i (a scatter-add).
//
// Deterministic, without atomics. The caller sorts keys[n] = idx[n] * N + n (one sort, sort.cu), so
// all rows that go to one embedding row sit together, in the order of n. One block per sorted
// position: the block that starts a run of equal indices adds the run's dy rows in that order and
// writes dW[i] (threads over the D columns, 16 bytes each); the other blocks exit at once. Rows of
// dW that no index names keep the zeros the caller wrote. Indices outside [0, rows) are skipped.
#include "common.cuh"

namespace tinyllm::cuda {
namespace {

template <typename T, int V>
__global__ void embedding_backward_kernel(const T* __restrict__ dy, const int64_t* __restrict__ keys, T* __restrict__ dw,
                                          int64_t N, int D, int64_t rows) {
    const int64_t start = blockIdx.x, id = keys[start] / N;
    if ((start > 0 && keys[start - 1] / N == id) || id < 0 || id >= rows) return;
    for (int c = threadIdx.x * V; c < D; c += blockDim.x * V) {
        float acc[V] = {};
        for (int64_t j = start; j < N && keys[j] / N == id; j++) {
            float v[V];
            load<T, V>(dy + (keys[j] % N) * D + c, v);
#pragma unroll
            for (int i = 0; i < V; i++) acc[i] += v[i];
        }
        store<T, V>(dw + id * D + c, acc);
    }
}

}  // namespace

void embedding_backward(uintptr_t dy, uintptr_t keys, uintptr_t dw, int64_t N, int D, int64_t rows, DType dt,
                        uintptr_t stream) {
    if (N == 0) return;
    dispatch(dt, [&](auto tag) {
        using T = decltype(tag);
        constexpr int P = vec16<T>();
        auto run = [&](auto kernel, int v) {
            kernel<<<N, row_threads(D, v), 0, as_stream(stream)>>>((const T*)dy, (const int64_t*)keys, (T*)dw, N, D, rows);
        };
        if (can_vectorize<T>(D, {dy, dw})) run(embedding_backward_kernel<T, P>, P);
        else run(embedding_backward_kernel<T, 1>, 1);
        CUDA_CHECK_LAUNCH();
    });
}

}  // namespace tinyllm::cuda
