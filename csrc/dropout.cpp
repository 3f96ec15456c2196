// Dropout by counter-based random numbers: y = x * m, m_i = scale if u_i >= p else 0, where u_i comes
// from word i % 4 of Philox4x32-10 at counter offset + i // 4 under the key seed (the definition and
// its reasons are in tinyllm/backend/reference.py: dropout). The mask is never stored: the backward
// pass calls the same kernel on dy with the same (seed, offset).
#include <pybind11/numpy.h>

#include <cstdint>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"

namespace tinyllm {
namespace {

struct Words {
    uint32_t w[4];
};

// Ten rounds of Philox4x32 on the counter (c0, c1, 0, 0) under the key (k0, k1).
inline Words philox4x32_10(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
    uint32_t c2 = 0, c3 = 0;
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(c0) * 0xD2511F53u, p1 = uint64_t(c2) * 0xCD9E8D57u;
        const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
        c1 = uint32_t(p1);
        c3 = uint32_t(p0);
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return {{c0, c1, c2, c3}};
}

// Elements [4 * b0, 4 * b1) of x: block b of four elements takes the words of counter offset + b.
void dropout_blocks(const float* x, float* y, int64_t n, float p, float scale, uint64_t seed, uint64_t offset,
                    int64_t b0, int64_t b1) {
    const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
    for (int64_t b = b0; b < b1; ++b) {
        const uint64_t counter = offset + uint64_t(b);
        const Words r = philox4x32_10(uint32_t(counter), uint32_t(counter >> 32), k0, k1);
        for (int k = 0; k < 4 && 4 * b + k < n; ++k) {
            const float u = float(r.w[k] >> 8) * (1.0f / 16777216.0f);
            y[4 * b + k] = x[4 * b + k] * (u >= p ? scale : 0.0f);
        }
    }
}

}  // namespace

void register_dropout(pybind11::module_& m) {
    using pybind11::arg;
    m.def("dropout",
          [](const pybind11::array& x, float p, float scale, uint64_t seed, uint64_t offset, pybind11::array& y) {
              const KernelArgs args("dropout");
              const auto shape = args.shape(x, "x", 1);
              const float* px = args.in(x, "x", shape);
              float* py = args.out(y, "y", shape);
              const int64_t n = shape[0], blocks = (n + 3) / 4;
              pybind11::gil_scoped_release release;
              parallel_for(blocks, 16, [&](int64_t b0, int64_t b1, int) {
                  dropout_blocks(px, py, n, p, scale, seed, offset, b0, b1);
              });
          },
          arg("x"), arg("p"), arg("scale"), arg("seed"), arg("offset"), arg("y"),
          "y = x * (scale where the Philox uniform of element i >= p, else 0), for flat x.");
}

}  // namespace tinyllm
