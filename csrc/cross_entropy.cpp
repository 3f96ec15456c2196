// Cross-entropy fused with log-softmax, for (N, V) logits and (N,) int64 targets.
//
//   forward:   lse[n] = m + log(sum_j exp(x[n, j] - m)),  m = max_j x[n, j]
//              loss[n] = lse[n] - x[n, t[n]]                         (0 where t[n] == ignore_index)
//   backward:  dx[n, j] = dloss[n] * (exp(x[n, j] - lse[n]) - [j == t[n]])   (0 rows where ignored)
//
// Fusing means the (N, V) softmax is never stored: the forward keeps only lse, one float per row,
// and the backward rebuilds each probability from it on the fly. Subtracting m keeps exp in (0, 1].
// The reduction over rows (mean or sum) belongs to the op above.
#include <pybind11/numpy.h>

#include <cmath>
#include <string>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_math.h"

namespace tinyllm {
namespace {

TINYLLM_SIMD void cross_entropy_forward_rows(const float* x, const int64_t* t, int64_t ignore_index, float* loss,
                                             float* lse, int64_t r0, int64_t r1, int64_t V) {
    for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * V;
        const float m = row_max(xr, V);
        lse[r] = m + std::log(exp_sum(xr, m, nullptr, V));
        loss[r] = t[r] == ignore_index ? 0.0f : lse[r] - xr[t[r]];
    }
}

TINYLLM_SIMD void cross_entropy_backward_rows(const float* dloss, const float* x, const int64_t* t,
                                              const float* lse, int64_t ignore_index, float* dx, int64_t r0,
                                              int64_t r1, int64_t V) {
    for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * V;
        float* dxr = dx + r * V;
        const float d = t[r] == ignore_index ? 0.0f : dloss[r], l = lse[r];
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) dxr[j] = exp_approx(xr[j] - l) * d;
        if (t[r] != ignore_index) dxr[t[r]] = (exp_approx(xr[t[r]] - l) - 1.0f) * d;
    }
}

// Every target must be a class index in [0, V) or ignore_index.
void check_targets(const KernelArgs& args, const int64_t* t, int64_t N, int64_t V, int64_t ignore_index) {
    for (int64_t n = 0; n < N; ++n) {
        if (t[n] != ignore_index && (t[n] < 0 || t[n] >= V)) {
            args.fail("targets[" + std::to_string(n) + "] = " + std::to_string(t[n]) + " is not in [0, " +
                      std::to_string(V) + ") nor ignore_index (" + std::to_string(ignore_index) + ")");
        }
    }
}

}  // namespace

void register_cross_entropy(pybind11::module_& m) {
    using pybind11::arg;
    using array = pybind11::array;
    m.def("cross_entropy_forward",
          [](const array& logits, const array& targets, int64_t ignore_index, array& losses, array& lse) {
              const KernelArgs args("cross_entropy_forward");
              const auto shape = args.shape(logits, "logits", 2);
              const int64_t N = shape[0], V = shape[1];
              const float* x = args.in(logits, "logits", shape);
              const int64_t* t = args.indices(targets, "targets", {N});
              float* ploss = args.out(losses, "losses", {N});
              float* plse = args.out(lse, "lse", {N});
              check_targets(args, t, N, V, ignore_index);
              pybind11::gil_scoped_release release;
              parallel_for(N, V, [&](int64_t r0, int64_t r1, int) {
                  cross_entropy_forward_rows(x, t, ignore_index, ploss, plse, r0, r1, V);
              });
          },
          arg("logits"), arg("targets"), arg("ignore_index"), arg("losses"), arg("lse"),
          "Per-row cross-entropy losses and log-sum-exp of (N, V) logits; 0 loss where ignored.");
    m.def("cross_entropy_backward",
          [](const array& dlosses, const array& logits, const array& targets, const array& lse,
             int64_t ignore_index, array& dlogits) {
              const KernelArgs args("cross_entropy_backward");
              const auto shape = args.shape(logits, "logits", 2);
              const int64_t N = shape[0], V = shape[1];
              const float* dl = args.in(dlosses, "dlosses", {N});
              const float* x = args.in(logits, "logits", shape);
              const int64_t* t = args.indices(targets, "targets", {N});
              const float* plse = args.in(lse, "lse", {N});
              float* dx = args.out(dlogits, "dlogits", shape);
              check_targets(args, t, N, V, ignore_index);
              pybind11::gil_scoped_release release;
              parallel_for(N, V, [&](int64_t r0, int64_t r1, int) {
                  cross_entropy_backward_rows(dl, x, t, plse, ignore_index, dx, r0, r1, V);
              });
          },
          arg("dlosses"), arg("logits"), arg("targets"), arg("lse"), arg("ignore_index"), arg("dlogits"),
          "dlogits = dlosses * (softmax(logits) - onehot(targets)), zero rows where ignored.");
}

}  // namespace tinyllm
