// Elementwise activations, forward and backward, over flat float32 arrays.
//
//   GELU, exact:  y = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
//                 dx = dy * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//   GELU, tanh:   y = x * (1 + tanh(u)) / 2,  u = sqrt(2 / pi) * (x + 0.044715 x^3)
//                 dx = dy * ((1 + t) / 2 + x (1 - t^2) / 2 * du/dx),  t = tanh(u),
//                 du/dx = sqrt(2 / pi) * (1 + 3 * 0.044715 x^2)
//   SiLU:         y = x * s,  s = sigmoid(x) = 1 / (1 + exp(-x))
//                 dx = dy * s * (1 + x (1 - s))
//
// The tanh form and SiLU go through sigmoid (below), written so that no 1 - s or 1 + tanh(u) cancels
// away the precision of small results in float32. Each formula is a small inline function of one float;
// the loops that apply them are vectorised per instruction set (see simd_math.h), and the array is
// split into one contiguous block per thread.
#include <pybind11/numpy.h>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_math.h"

namespace tinyllm {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erf_approx(x * kInvSqrt2)); }

inline float gelu_erf_grad(float x) {
    return 0.5f * (1.0f + erf_approx(x * kInvSqrt2)) + x * exp_approx(-0.5f * x * x) * kInvSqrt2Pi;
}

// sigmoid(z) = 1 / (1 + e) with e = exp(-z), and its complement 1 - sigmoid(z) = e * sigmoid(z),
// which keeps full precision as sigmoid(z) -> 1 (where 1 - s rounds to 0). For e > 1, s < 1/2 and
// 1 - s is exact enough (and e * s would be inf * 0 once e overflows).
struct Sigmoid {
    float s, one_minus_s;
};

inline Sigmoid sigmoid(float z) {
    const float e = exp_approx(-z), s = 1.0f / (1.0f + e);
    return {s, e > 1.0f ? 1.0f - s : e * s};
}

// The tanh form through (1 + tanh(u)) / 2 = sigmoid(2u) and (1 - tanh(u)^2) / 2 = 2 s (1 - s):
// the same algebra, without the cancellation of 1 + tanh(u) in float32.
inline float gelu_tanh_arg(float x) { return 2.0f * kSqrt2OverPi * (x + 0.044715f * x * x * x); }

inline float gelu_tanh(float x) { return x * sigmoid(gelu_tanh_arg(x)).s; }

// Beyond |x| = 10 the gradient is 0 or 1 to float32 precision; clamping there keeps x^3 and du/dx
// finite for huge |x| (where inf * 0 would give NaN).
inline float gelu_tanh_grad(float x) {
    x = x > 10.0f ? 10.0f : x;
    x = x < -10.0f ? -10.0f : x;
    const Sigmoid g = sigmoid(gelu_tanh_arg(x));
    const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
    return g.s + 2.0f * x * g.s * g.one_minus_s * du;
}

inline float silu(float x) { return x * sigmoid(x).s; }

inline float silu_grad(float x) {
    const Sigmoid g = sigmoid(x);
    return g.s * (1.0f + x * g.one_minus_s);
}

TINYLLM_SIMD void gelu_forward_block(const float* x, bool tanh_form, float* y, int64_t begin, int64_t end) {
    if (tanh_form) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) y[i] = gelu_tanh(x[i]);
    } else {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) y[i] = gelu_erf(x[i]);
    }
}

TINYLLM_SIMD void gelu_backward_block(const float* dy, const float* x, bool tanh_form, float* dx, int64_t begin,
                                      int64_t end) {
    if (tanh_form) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * gelu_tanh_grad(x[i]);
    } else {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * gelu_erf_grad(x[i]);
    }
}

TINYLLM_SIMD void silu_forward_block(const float* x, float* y, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = silu(x[i]);
}

TINYLLM_SIMD void silu_backward_block(const float* dy, const float* x, float* dx, int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * silu_grad(x[i]);
}

// Work of one element, in "floats touched" units of parallel_for: the transcendental math costs
// about as much as streaming a few floats.
constexpr int64_t kElementCost = 8;

// Checks y = f(x) for flat float32 arrays and runs block(x, y, begin, end) over them in parallel.
template <class Block>
void run_forward(const char* name, const pybind11::array& x, pybind11::array& y, Block block) {
    const KernelArgs args(name);
    const auto shape = args.shape(x, "x", 1);
    const float* px = args.in(x, "x", shape);
    float* py = args.out(y, "y", shape);
    pybind11::gil_scoped_release release;
    parallel_for(shape[0], kElementCost, [&](int64_t i0, int64_t i1, int) { block(px, py, i0, i1); });
}

// The same for dx = dy * f'(x): block(dy, x, dx, begin, end).
template <class Block>
void run_backward(const char* name, const pybind11::array& dy, const pybind11::array& x, pybind11::array& dx,
                  Block block) {
    const KernelArgs args(name);
    const auto shape = args.shape(x, "x", 1);
    const float* pdy = args.in(dy, "dy", shape);
    const float* px = args.in(x, "x", shape);
    float* pdx = args.out(dx, "dx", shape);
    pybind11::gil_scoped_release release;
    parallel_for(shape[0], kElementCost, [&](int64_t i0, int64_t i1, int) { block(pdy, px, pdx, i0, i1); });
}

}  // namespace

void register_activations(pybind11::module_& m) {
    using pybind11::arg;
    using array = pybind11::array;
    m.def("gelu_forward",
          [](const array& x, bool tanh_form, array& y) {
              run_forward("gelu_forward", x, y, [tanh_form](const float* px, float* py, int64_t i0, int64_t i1) {
                  gelu_forward_block(px, tanh_form, py, i0, i1);
              });
          },
          arg("x"), arg("tanh"), arg("y"), "y = GELU(x) for flat x; tanh selects the tanh approximation.");
    m.def("gelu_backward",
          [](const array& dy, const array& x, bool tanh_form, array& dx) {
              run_backward("gelu_backward", dy, x, dx,
                           [tanh_form](const float* pdy, const float* px, float* pdx, int64_t i0, int64_t i1) {
                               gelu_backward_block(pdy, px, tanh_form, pdx, i0, i1);
                           });
          },
          arg("dy"), arg("x"), arg("tanh"), arg("dx"), "dx = dy * GELU'(x) for flat arrays.");
    m.def("silu_forward", [](const array& x, array& y) { run_forward("silu_forward", x, y, silu_forward_block); },
          arg("x"), arg("y"), "y = x * sigmoid(x) for flat x.");
    m.def("silu_backward",
          [](const array& dy, const array& x, array& dx) { run_backward("silu_backward", dy, x, dx, silu_backward_block); },
          arg("dy"), arg("x"), arg("dx"), "dx = dy * SiLU'(x) for flat arrays.");
}

}  // namespace tinyllm
