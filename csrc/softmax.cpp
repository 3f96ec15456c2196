// Softmax and log-softmax over the last axis of a (rows, C) matrix, forward and backward.
//
//   softmax:      y = exp(x - m) / s,           m = max x,  s = sum exp(x - m)
//                 dx = y * (dy - sum(dy * y))
//   log-softmax:  y = (x - m) - log s
//                 dx = dy - exp(y) * sum(dy)
//
// Subtracting the row maximum m first keeps every exp(x - m) in (0, 1], so large logits cannot
// overflow. The sums of the backward passes mix signs and cancel, so they accumulate in double
// (cheap next to the row's other work; float lost ~1e-5 absolute at C = 8192). Each row is read a
// few times (max, exp-and-sum, scale) while it sits in L1; rows are spread over threads in
// contiguous blocks.
#include <pybind11/numpy.h>

#include <cmath>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_math.h"

namespace tinyllm {
namespace {

TINYLLM_SIMD void softmax_forward_rows(const float* x, float* y, int64_t r0, int64_t r1, int64_t C) {
    for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * C;
        float* yr = y + r * C;
        const float inv = 1.0f / exp_sum(xr, row_max(xr, C), yr, C);
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) yr[i] *= inv;
    }
}

TINYLLM_SIMD void softmax_backward_rows(const float* dy, const float* y, float* dx, int64_t r0, int64_t r1,
                                        int64_t C) {
    for (int64_t r = r0; r < r1; ++r) {
        const float *dyr = dy + r * C, *yr = y + r * C;
        float* dxr = dx + r * C;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < C; ++i) dot += dyr[i] * yr[i];
        const float d = static_cast<float>(dot);
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) dxr[i] = yr[i] * (dyr[i] - d);
    }
}

TINYLLM_SIMD void log_softmax_forward_rows(const float* x, float* y, int64_t r0, int64_t r1, int64_t C) {
    for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * C;
        float* yr = y + r * C;
        const float m = row_max(xr, C);
        const float log_s = std::log(exp_sum(xr, m, nullptr, C));
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) yr[i] = (xr[i] - m) - log_s;
    }
}

TINYLLM_SIMD void log_softmax_backward_rows(const float* dy, const float* y, float* dx, int64_t r0, int64_t r1,
                                            int64_t C) {
    for (int64_t r = r0; r < r1; ++r) {
        const float *dyr = dy + r * C, *yr = y + r * C;
        float* dxr = dx + r * C;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < C; ++i) sum += dyr[i];
        const float s = static_cast<float>(sum);
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) dxr[i] = dyr[i] - exp_approx(yr[i]) * s;
    }
}

// Binds a forward kernel f(x, y): x (rows, C) -> y (rows, C).
template <void (*Rows)(const float*, float*, int64_t, int64_t, int64_t)>
void bind_forward(pybind11::module_& m, const char* name, const char* doc) {
    m.def(name, [name](const pybind11::array& x, pybind11::array& y) {
        const KernelArgs args(name);
        const auto shape = args.shape(x, "x", 2);
        const float* px = args.in(x, "x", shape);
        float* py = args.out(y, "y", shape);
        pybind11::gil_scoped_release release;
        parallel_for(shape[0], shape[1], [&](int64_t r0, int64_t r1, int) { Rows(px, py, r0, r1, shape[1]); });
    }, pybind11::arg("x"), pybind11::arg("y"), doc);
}

// Binds a backward kernel f(dy, y, dx), all (rows, C).
template <void (*Rows)(const float*, const float*, float*, int64_t, int64_t, int64_t)>
void bind_backward(pybind11::module_& m, const char* name, const char* doc) {
    m.def(name, [name](const pybind11::array& dy, const pybind11::array& y, pybind11::array& dx) {
        const KernelArgs args(name);
        const auto shape = args.shape(y, "y", 2);
        const float* pdy = args.in(dy, "dy", shape);
        const float* py = args.in(y, "y", shape);
        float* pdx = args.out(dx, "dx", shape);
        pybind11::gil_scoped_release release;
        parallel_for(shape[0], 2 * shape[1],
                     [&](int64_t r0, int64_t r1, int) { Rows(pdy, py, pdx, r0, r1, shape[1]); });
    }, pybind11::arg("dy"), pybind11::arg("y"), pybind11::arg("dx"), doc);
}

}  // namespace

void register_softmax(pybind11::module_& m) {
    bind_forward<softmax_forward_rows>(m, "softmax_forward", "y = softmax(x) over the last axis of (rows, C) x.");
    bind_backward<softmax_backward_rows>(m, "softmax_backward", "dx = y * (dy - sum(dy * y)) for (rows, C) arrays.");
    bind_forward<log_softmax_forward_rows>(m, "log_softmax_forward", "y = x - logsumexp(x) over the last axis.");
    bind_backward<log_softmax_backward_rows>(m, "log_softmax_backward", "dx = dy - exp(y) * sum(dy).");
}

}  // namespace tinyllm
