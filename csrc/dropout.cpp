// Dropout by counter-based random numbers: y = x * m, m_i = scale if u_i >= p else 0, where u_i comes
// from word i % 4 of Philox4x32-10 at counter offset + i // 4 under the key seed (philox.h; the
// definition and its reasons are in tinyllm/backend/reference.py: dropout). The mask is never stored:
// the backward pass calls the same kernel on dy with the same (seed, offset).
#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "philox.h"

namespace tinyllm {

void register_dropout(pybind11::module_& m) {
    using pybind11::arg;
    m.def("dropout",
          [](const pybind11::array& x, float p, float scale, uint64_t seed, uint64_t offset, pybind11::array& y) {
              const KernelArgs args("dropout");
              const auto shape = args.shape(x, "x", 1);
              const float* px = args.in(x, "x", shape);
              float* py = args.out(y, "y", shape);
              const int64_t n = shape[0], counters = (n + 3) / 4;
              const DropoutKey key{p, scale, seed, offset};
              pybind11::gil_scoped_release release;
              parallel_for(counters, 16, [&](int64_t b0, int64_t b1, int) {  // whole counters per thread
                  const int64_t i0 = 4 * b0, i1 = std::min(n, 4 * b1);
                  key.apply(px + i0, py + i0, i1 - i0, uint64_t(i0));
              });
          },
          arg("x"), arg("p"), arg("scale"), arg("seed"), arg("offset"), arg("y"),
          "y = x * (scale where the Philox uniform of element i >= p, else 0), for flat x.");
}

}  // namespace tinyllm
