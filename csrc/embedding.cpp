// Embedding backward: the gradient of a table lookup y[n] = W[idx[n]] is a scatter-add,
//
//   dW[i] = sum of dy[n] over the n with idx[n] == i      (dW is (num_embeddings, D), dy is (N, D))
//
// Two rows of dy with the same index must not be added by two threads at once. Here each thread
// owns a contiguous range of rows of dW: it zeroes them, then scans all of idx and adds only the dy
// rows that land in its range. No two threads write the same memory, and each row of dW receives its
// contributions in the order of n, as a sequential loop would add them. (Each thread reads all of
// idx, N int64s, which is little next to the (num_embeddings, D) table it writes.)
#include <pybind11/numpy.h>

#include <cstring>
#include <string>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_math.h"

namespace tinyllm {
namespace {

TINYLLM_SIMD void embedding_backward_block(const float* dy, const int64_t* idx, int64_t N, int64_t D, float* dw,
                                           int64_t row0, int64_t row1) {
    std::memset(dw + row0 * D, 0, sizeof(float) * (row1 - row0) * D);
    for (int64_t n = 0; n < N; ++n) {
        if (idx[n] < row0 || idx[n] >= row1) continue;
        float* dst = dw + idx[n] * D;
        const float* src = dy + n * D;
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
    }
}

}  // namespace

void register_embedding(pybind11::module_& m) {
    using pybind11::arg;
    using array = pybind11::array;
    m.def("embedding_backward",
          [](const array& dy, const array& idx, array& dw) {
              const KernelArgs args("embedding_backward");
              const auto shape = args.shape(dy, "dy", 2);
              const int64_t N = shape[0], D = shape[1];
              const auto table = args.shape(dw, "dw", 2);
              const int64_t V = table[0];
              const float* pdy = args.in(dy, "dy", shape);
              const int64_t* pidx = args.indices(idx, "idx", {N});
              float* pdw = args.out(dw, "dw", {V, D});
              for (int64_t n = 0; n < N; ++n) {
                  if (pidx[n] < 0 || pidx[n] >= V) {
                      args.fail("idx[" + std::to_string(n) + "] = " + std::to_string(pidx[n]) + " is not in [0, " +
                                std::to_string(V) + ")");
                  }
              }
              pybind11::gil_scoped_release release;
              parallel_for(V, D + N * D / V, [&](int64_t row0, int64_t row1, int) {
                  embedding_backward_block(pdy, pidx, N, D, pdw, row0, row1);
              });
          },
          arg("dy"), arg("idx"), arg("dw"), "dW[i] = sum of the rows dy[n] with idx[n] == i (a race-free scatter-add).");
}

}  // namespace tinyllm
