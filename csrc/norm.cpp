// LayerNorm and RMSNorm over the last axis of a (rows, C) matrix, forward and backward.
//
//   add_layernorm, add_rmsnorm: s = x + delta is written first and normalised in its place (the
//               row is then in L1), so the residual add of a pre-norm block costs no pass of its own.
//
//   layernorm:  mean = sum(x) / C,  var = sum((x - mean)^2) / C,  rstd = 1 / sqrt(var + eps)
//               xhat = (x - mean) * rstd,  y = xhat * w + b
//   rmsnorm:    the same with mean = 0 and no b:  rstd = 1 / sqrt(sum(x^2) / C + eps),  y = x * rstd * w
//
//   backward, with g = dy * w:
//               dx = rstd * (g - mean(g) - xhat * mean(g * xhat))     (rmsnorm: without the mean(g) term)
//               dw = sum over rows of dy * xhat,  db = sum over rows of dy
//
// The variance is two-pass: the row (in L1) is summed once for the mean (in double, as a large mean
// would otherwise lose digits to float rounding), then once for the squared deviations from it.
// Unlike sum(x^2)/C - mean^2 this does not cancel when |mean| >> std.
// dw and db sum over all rows: each thread accumulates its block of rows into its own partial
// vector, and the partials are added in block order, so the result is race-free and deterministic.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <vector>

#include "kernel_args.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_math.h"

namespace tinyllm {
namespace {

// Normalises rows [r0, r1). `centered` selects layernorm (else rmsnorm, with mean taken as 0);
// mean is written when not null. With delta (else null), the rows normalised are s = x + delta, written to s.
TINYLLM_SIMD void norm_forward_rows(const float* x, const float* delta, const float* w, const float* b, float eps,
                                    bool centered, float* s, float* y, float* mean, float* rstd, int64_t r0, int64_t r1,
                                    int64_t C) {
    for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * C;
        float* yr = y + r * C;
        if (delta) {
            float* sr = s + r * C;
            const float* dr = delta + r * C;
#pragma omp simd
            for (int64_t i = 0; i < C; ++i) sr[i] = xr[i] + dr[i];
            xr = sr;
        }
        double sum = 0.0;
        if (centered) {
#pragma omp simd reduction(+ : sum)
            for (int64_t i = 0; i < C; ++i) sum += xr[i];
        }
        const float mu = static_cast<float>(sum / C);
        float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
        for (int64_t i = 0; i < C; ++i) sq += (xr[i] - mu) * (xr[i] - mu);
        const float rs = 1.0f / std::sqrt(sq / C + eps);
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
        if (mean) mean[r] = mu;
        rstd[r] = rs;
    }
}

// dx for rows [r0, r1), and their contributions added into dw_part and (when not null) db_part.
TINYLLM_SIMD void norm_backward_rows(const float* dy, const float* x, const float* w, const float* mean,
                                     const float* rstd, float* dx, float* dw_part, float* db_part, int64_t r0,
                                     int64_t r1, int64_t C) {
    for (int64_t r = r0; r < r1; ++r) {
        const float *dyr = dy + r * C, *xr = x + r * C;
        float* dxr = dx + r * C;
        const float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
        float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int64_t i = 0; i < C; ++i) {
            const float g = dyr[i] * w[i];
            sum_g += g;
            sum_gx += g * ((xr[i] - mu) * rs);
        }
        const float mean_g = mean ? sum_g / C : 0.0f, mean_gx = sum_gx / C;
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) {
            const float xhat = (xr[i] - mu) * rs;
            dxr[i] = rs * (dyr[i] * w[i] - mean_g - xhat * mean_gx);
            dw_part[i] += dyr[i] * xhat;
        }
        if (db_part) {
#pragma omp simd
            for (int64_t i = 0; i < C; ++i) db_part[i] += dyr[i];
        }
    }
}

// out[i] = sum over blocks of parts[block * C + i], in block order.
void sum_partials(const std::vector<float>& parts, int blocks, int64_t C, float* out) {
    for (int64_t i = 0; i < C; ++i) {
        float s = 0.0f;
        for (int b = 0; b < blocks; ++b) s += parts[b * C + i];
        out[i] = s;
    }
}

void norm_forward(const pybind11::array& x, const pybind11::array* delta, const pybind11::array& w,
                  const pybind11::array* b, float eps, pybind11::array* s, pybind11::array& y, pybind11::array* mean,
                  pybind11::array& rstd, const char* name) {
    const KernelArgs args(name);
    const auto shape = args.shape(x, "x", 2);
    const int64_t N = shape[0], C = shape[1];
    const float* px = args.in(x, "x", shape);
    const float* pdelta = delta ? args.in(*delta, "delta", shape) : nullptr;
    float* ps = delta ? args.out(*s, "s", shape) : nullptr;
    const float* pw = args.in(w, "w", {C});
    const float* pb = b ? args.in(*b, "b", {C}) : nullptr;
    float* py = args.out(y, "y", shape);
    float* pmean = mean ? args.out(*mean, "mean", {N}) : nullptr;
    float* prstd = args.out(rstd, "rstd", {N});
    pybind11::gil_scoped_release release;
    std::vector<float> zeros(pb ? 0 : C, 0.0f);
    if (!pb) pb = zeros.data();
    parallel_for(N, 2 * C, [&](int64_t r0, int64_t r1, int) {
        norm_forward_rows(px, pdelta, pw, pb, eps, mean != nullptr, ps, py, pmean, prstd, r0, r1, C);
    });
}

void norm_backward(const pybind11::array& dy, const pybind11::array& x, const pybind11::array& w,
                   const pybind11::array* mean, const pybind11::array& rstd, pybind11::array& dx,
                   pybind11::array& dw, pybind11::array* db, const char* name) {
    const KernelArgs args(name);
    const auto shape = args.shape(x, "x", 2);
    const int64_t N = shape[0], C = shape[1];
    const float* pdy = args.in(dy, "dy", shape);
    const float* px = args.in(x, "x", shape);
    const float* pw = args.in(w, "w", {C});
    const float* pmean = mean ? args.in(*mean, "mean", {N}) : nullptr;
    const float* prstd = args.in(rstd, "rstd", {N});
    float* pdx = args.out(dx, "dx", shape);
    float* pdw = args.out(dw, "dw", {C});
    float* pdb = db ? args.out(*db, "db", {C}) : nullptr;
    pybind11::gil_scoped_release release;
    const int blocks = parallel_blocks(N, 3 * C);
    std::vector<float> dw_parts(blocks * C, 0.0f), db_parts(pdb ? blocks * C : 0, 0.0f);
    parallel_for(N, 3 * C, [&](int64_t r0, int64_t r1, int block) {
        norm_backward_rows(pdy, px, pw, pmean, prstd, pdx, dw_parts.data() + block * C,
                           pdb ? db_parts.data() + block * C : nullptr, r0, r1, C);
    });
    sum_partials(dw_parts, blocks, C, pdw);
    if (pdb) sum_partials(db_parts, blocks, C, pdb);
}

}  // namespace

void register_norm(pybind11::module_& m) {
    using pybind11::arg;
    using array = pybind11::array;
    m.def("layernorm_forward",
          [](const array& x, const array& w, std::optional<array> b, float eps, array& y, array& mean, array& rstd) {
              norm_forward(x, nullptr, w, b ? &*b : nullptr, eps, nullptr, y, &mean, rstd, "layernorm_forward");
          },
          arg("x"), arg("w"), arg("b").none(true), arg("eps"), arg("y"), arg("mean"), arg("rstd"),
          "LayerNorm of (rows, C) x into y, saving each row's mean and rstd; b may be None.");
    m.def("add_layernorm_forward",
          [](const array& x, const array& delta, const array& w, std::optional<array> b, float eps, array& s, array& y,
             array& mean, array& rstd) {
              norm_forward(x, &delta, w, b ? &*b : nullptr, eps, &s, y, &mean, rstd, "add_layernorm_forward");
          },
          arg("x"), arg("delta"), arg("w"), arg("b").none(true), arg("eps"), arg("s"), arg("y"), arg("mean"), arg("rstd"),
          "s = x + delta and its LayerNorm y, saving each row's mean and rstd; b may be None.");
    m.def("layernorm_backward",
          [](const array& dy, const array& x, const array& w, const array& mean, const array& rstd, array& dx,
             array& dw, array& db) { norm_backward(dy, x, w, &mean, rstd, dx, dw, &db, "layernorm_backward"); },
          arg("dy"), arg("x"), arg("w"), arg("mean"), arg("rstd"), arg("dx"), arg("dw"), arg("db"),
          "dx, dw, db of LayerNorm from the saved mean and rstd.");
    m.def("rmsnorm_forward",
          [](const array& x, const array& w, float eps, array& y, array& rstd) {
              norm_forward(x, nullptr, w, nullptr, eps, nullptr, y, nullptr, rstd, "rmsnorm_forward");
          },
          arg("x"), arg("w"), arg("eps"), arg("y"), arg("rstd"), "RMSNorm of (rows, C) x into y, saving rstd.");
    m.def("add_rmsnorm_forward",
          [](const array& x, const array& delta, const array& w, float eps, array& s, array& y, array& rstd) {
              norm_forward(x, &delta, w, nullptr, eps, &s, y, nullptr, rstd, "add_rmsnorm_forward");
          },
          arg("x"), arg("delta"), arg("w"), arg("eps"), arg("s"), arg("y"), arg("rstd"),
          "s = x + delta and its RMSNorm y, saving rstd.");
    m.def("rmsnorm_backward",
          [](const array& dy, const array& x, const array& w, const array& rstd, array& dx, array& dw) {
              norm_backward(dy, x, w, nullptr, rstd, dx, dw, nullptr, "rmsnorm_backward");
          },
          arg("dy"), arg("x"), arg("w"), arg("rstd"), arg("dx"), arg("dw"), "dx, dw of RMSNorm from the saved rstd.");
}

}  // namespace tinyllm
