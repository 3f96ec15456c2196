// The fused AdamW update, in place, over flat float32 buffers, in PyTorch's order of operations
// (torch.optim.AdamW, single-tensor path), so the two agree to rounding:
//
//   p = p * (1 - lr * wd)                                    decoupled weight decay
//   m = m + (1 - b1) * (g - m)                               (torch's lerp, for weight < 0.5)
//   v = v * b2 + ((1 - b2) * g) * g
//   p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
// The scalars are computed in double and rounded to float once, like the Python floats PyTorch and
// NumPy hand to their float32 kernels. The loop is compiled with FMA contraction off: a fused
// multiply-add rounds once where PyTorch rounds twice, and the results would drift apart by an ulp.
// One pass reads p, g, m, v and writes p, m, v: the update is bound by memory bandwidth.
#include <pybind11/numpy.h>

#include <cmath>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_math.h"

namespace tinyllm {
namespace {

struct AdamWScalars {
    float decay, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, step_size;
};

__attribute__((optimize("fp-contract=off"))) TINYLLM_SIMD void adamw_block(float* p, const float* g, float* m,
                                                                           float* v, AdamWScalars s, int64_t begin,
                                                                           int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
        const float mi = m[i] + s.one_minus_b1 * (g[i] - m[i]);
        const float vi = v[i] * s.b2 + s.one_minus_b2 * g[i] * g[i];
        const float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
        p[i] = p[i] * s.decay - s.step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

}  // namespace

void register_adamw(pybind11::module_& m) {
    using pybind11::arg;
    using array = pybind11::array;
    m.def("adamw_update",
          [](array& param, const array& grad, array& exp_avg, array& exp_avg_sq, double lr, double beta1,
             double beta2, double eps, double weight_decay, int64_t step) {
              const KernelArgs args("adamw_update");
              const auto shape = args.shape(param, "param", 1);
              float* p = args.out(param, "param", shape);
              const float* g = args.in(grad, "grad", shape);
              float* pm = args.out(exp_avg, "exp_avg", shape);
              float* pv = args.out(exp_avg_sq, "exp_avg_sq", shape);
              if (step < 1) args.fail("step must be >= 1, got " + std::to_string(step));
              const AdamWScalars s{
                  static_cast<float>(1.0 - lr * weight_decay),
                  static_cast<float>(1.0 - beta1),
                  static_cast<float>(beta2),
                  static_cast<float>(1.0 - beta2),
                  static_cast<float>(std::sqrt(1.0 - std::pow(beta2, step))),
                  static_cast<float>(eps),
                  static_cast<float>(lr / (1.0 - std::pow(beta1, step))),
              };
              pybind11::gil_scoped_release release;
              parallel_for(shape[0], 7, [&](int64_t i0, int64_t i1, int) { adamw_block(p, g, pm, pv, s, i0, i1); });
          },
          arg("param"), arg("grad"), arg("exp_avg"), arg("exp_avg_sq"), arg("lr"), arg("beta1"), arg("beta2"),
          arg("eps"), arg("weight_decay"), arg("step"),
          "One AdamW step, in place on flat float32 param, exp_avg and exp_avg_sq.");
}

}  // namespace tinyllm
