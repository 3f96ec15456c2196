// The pybind11 module tinyllm._cuda: thin bindings of the host entry points in kernels.h.
//
// Compiled by the host C++ compiler (only the .cu files go through nvcc). Arguments are plain
// integers: device pointers (CuPy's `a.data.ptr`), sizes, a dtype code (0 float32, 1 bfloat16, 2 float16) and
// the stream (`cupy.cuda.get_current_stream().ptr`). tinyllm/backend/cuda.py checks shapes and
// dtypes and allocates the outputs; a CUDA error raises RuntimeError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "kernels.h"

namespace py = pybind11;
using namespace tinyllm::cuda;

namespace {
DType dtype(int code) { return static_cast<DType>(code); }
GemmShape gemm_shape(int64_t batch, int64_t M, int64_t N, int64_t K, bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc) {
    return GemmShape{batch, M, N, K, ta, tb, sa, sb, sc};
}
}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "tinyllm CUDA kernels (see cuda/kernels.h for the conventions)";

    m.def("norm_backward_scratch_floats", &norm_backward_scratch_floats);
    m.def("layernorm_forward", [](uintptr_t x, uintptr_t w, uintptr_t b, uintptr_t y, uintptr_t mean, uintptr_t rstd,
                                  int64_t N, int C, float eps, int dt, uintptr_t stream) {
        layernorm_forward(x, w, b, y, mean, rstd, N, C, eps, dtype(dt), stream);
    });
    m.def("add_layernorm_forward", [](uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t b, uintptr_t s, uintptr_t y,
                                      uintptr_t mean, uintptr_t rstd, int64_t N, int C, float eps, int dt, int delta_dt,
                                      uintptr_t stream) {
        add_layernorm_forward(x, delta, w, b, s, y, mean, rstd, N, C, eps, dtype(dt), dtype(delta_dt), stream);
    });
    m.def("layernorm_backward", [](uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t mean, uintptr_t rstd, uintptr_t dres,
                                   uintptr_t dx, uintptr_t dw, uintptr_t db, uintptr_t scratch, int64_t N, int C, int dt,
                                   uintptr_t stream) {
        layernorm_backward(dy, x, w, mean, rstd, dres, dx, dw, db, scratch, N, C, dtype(dt), stream);
    });
    m.def("rmsnorm_forward", [](uintptr_t x, uintptr_t w, uintptr_t y, uintptr_t rstd, int64_t N, int C, float eps, int dt,
                                uintptr_t stream) { rmsnorm_forward(x, w, y, rstd, N, C, eps, dtype(dt), stream); });
    m.def("add_rmsnorm_forward", [](uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t s, uintptr_t y, uintptr_t rstd,
                                    int64_t N, int C, float eps, int dt, int delta_dt, uintptr_t stream) {
        add_rmsnorm_forward(x, delta, w, s, y, rstd, N, C, eps, dtype(dt), dtype(delta_dt), stream);
    });
    m.def("rmsnorm_backward", [](uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t rstd, uintptr_t dres, uintptr_t dx,
                                 uintptr_t dw, uintptr_t scratch, int64_t N, int C, int dt, uintptr_t stream) {
        rmsnorm_backward(dy, x, w, rstd, dres, dx, dw, scratch, N, C, dtype(dt), stream);
    });

    m.def("softmax_forward", [](uintptr_t x, uintptr_t y, int64_t N, int C, bool log, int dt, uintptr_t stream) {
        softmax_forward(x, y, N, C, log, dtype(dt), stream);
    });
    m.def("softmax_backward", [](uintptr_t dy, uintptr_t y, uintptr_t dx, int64_t N, int C, bool log, int dt,
                                 uintptr_t stream) { softmax_backward(dy, y, dx, N, C, log, dtype(dt), stream); });

    m.def("cross_entropy_forward", [](uintptr_t logits, uintptr_t targets, uintptr_t losses, uintptr_t lse, int64_t N,
                                      int V, int64_t ignore_index, int dt, uintptr_t stream) {
        cross_entropy_forward(logits, targets, losses, lse, N, V, ignore_index, dtype(dt), stream);
    });
    m.def("cross_entropy_backward", [](uintptr_t dlosses, uintptr_t logits, uintptr_t targets, uintptr_t lse,
                                       uintptr_t dlogits, int64_t N, int V, int64_t ignore_index, int dt, uintptr_t stream) {
        cross_entropy_backward(dlosses, logits, targets, lse, dlogits, N, V, ignore_index, dtype(dt), stream);
    });

    m.def("gelu_forward", [](uintptr_t x, uintptr_t y, int64_t n, bool tanh, int dt, uintptr_t stream) {
        gelu_forward(x, y, n, tanh, dtype(dt), stream);
    });
    m.def("gelu_backward", [](uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, bool tanh, int dt, uintptr_t stream) {
        gelu_backward(dy, x, dx, n, tanh, dtype(dt), stream);
    });
    m.def("dropout", [](uintptr_t x, uintptr_t y, int64_t n, float p, float scale, uint64_t seed, uint64_t offset,
                        uintptr_t shift, int dt, uintptr_t stream) {
        dropout(x, y, n, p, scale, seed, offset, shift, dtype(dt), stream);
    });
    m.def("silu_forward", [](uintptr_t x, uintptr_t y, int64_t n, int dt, uintptr_t stream) {
        silu_forward(x, y, n, dtype(dt), stream);
    });
    m.def("silu_backward", [](uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, int dt, uintptr_t stream) {
        silu_backward(dy, x, dx, n, dtype(dt), stream);
    });

    m.def("strided_copy", [](uintptr_t x, uintptr_t y, const std::vector<int64_t>& shape,
                             const std::vector<int64_t>& strides, int dt, uintptr_t stream) {
        strided_copy(x, y, shape, strides, dtype(dt), stream);
    });
    m.def("cast", [](uintptr_t x, uintptr_t y, int64_t n, int from, int to, uintptr_t stream) {
        cast(x, y, n, dtype(from), dtype(to), stream);
    });
    m.def("rope", [](uintptr_t x, uintptr_t cos, uintptr_t sin, uintptr_t y, int64_t rows, int T, int D, bool backward,
                     int dt, uintptr_t stream) { rope(x, cos, sin, y, rows, T, D, backward, dtype(dt), stream); });

    m.def("embedding_backward", [](uintptr_t dy, uintptr_t keys, uintptr_t dw, int64_t N, int D, int64_t rows, int dt,
                                   uintptr_t stream) { embedding_backward(dy, keys, dw, N, D, rows, dtype(dt), stream); });

    m.def("sort_int64_scratch_bytes", &sort_int64_scratch_bytes);
    m.def("sort_int64", &sort_int64);

    m.def("adamw_update", [](uintptr_t p, uintptr_t g, uintptr_t m1, uintptr_t m2, int64_t n, double lr, double b1,
                             double b2, double eps, double wd, int64_t step, int grad_dt, uintptr_t stream) {
        adamw_update(p, g, m1, m2, n, lr, b1, b2, eps, wd, step, dtype(grad_dt), stream);
    });

    m.def("grad_norm_scratch_floats", &grad_norm_scratch_floats);
    m.def("grad_norm", [](const std::vector<uintptr_t>& g, const std::vector<int64_t>& sizes, uintptr_t scratch,
                          uintptr_t norm, int dt, uintptr_t stream) { grad_norm(g, sizes, scratch, norm, dtype(dt), stream); });
    m.def("clip_grads", [](const std::vector<uintptr_t>& g, const std::vector<int64_t>& sizes, uintptr_t norm,
                           float max_norm, int dt, uintptr_t stream) { clip_grads(g, sizes, norm, max_norm, dtype(dt), stream); });
    m.def("unscale_grads", [](const std::vector<uintptr_t>& g, const std::vector<int64_t>& sizes, float inv_scale,
                              uintptr_t found_inf, int dt, uintptr_t stream) {
        unscale_grads(g, sizes, inv_scale, found_inf, dtype(dt), stream);
    });
    m.def("adamw_update_multi", [](const std::vector<uintptr_t>& p, const std::vector<uintptr_t>& g,
                                   const std::vector<uintptr_t>& m1, const std::vector<uintptr_t>& m2,
                                   const std::vector<int64_t>& sizes, double lr, double b1, double b2, double eps,
                                   double wd, double step, uintptr_t step_ptr, uintptr_t lr_ptr, int grad_dt,
                                   uintptr_t stream) {
        adamw_update_multi(p, g, m1, m2, sizes, lr, b1, b2, eps, wd, step, step_ptr, lr_ptr, dtype(grad_dt), stream);
    });
    m.def("add_bias", [](uintptr_t y, uintptr_t b, int64_t N, int C, int dt, uintptr_t stream) {
        add_bias(y, b, N, C, dtype(dt), stream);
    });
    m.def("sum_rows_scratch_floats", &sum_rows_scratch_floats);
    m.def("sum_rows", [](uintptr_t x, uintptr_t out, uintptr_t scratch, int64_t N, int C, int dt, uintptr_t stream) {
        sum_rows(x, out, scratch, N, C, dtype(dt), stream);
    });

    m.def("matmul_supported", [](uintptr_t a, uintptr_t b, uintptr_t c, int64_t batch, int64_t M, int64_t N, int64_t K,
                                 bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc, int dt) {
        return matmul_supported(a, b, c, gemm_shape(batch, M, N, K, ta, tb, sa, sb, sc), dtype(dt));
    });
    m.def("matmul", [](uintptr_t a, uintptr_t b, uintptr_t c, int64_t batch, int64_t M, int64_t N, int64_t K, bool ta,
                       bool tb, int64_t sa, int64_t sb, int64_t sc, int dt, uintptr_t workspace,
                       int64_t workspace_bytes, uintptr_t stream) {
        matmul(a, b, c, gemm_shape(batch, M, N, K, ta, tb, sa, sb, sc), dtype(dt), workspace, workspace_bytes, stream);
    });
    m.def("matmul_wgmma_available", &matmul_wgmma_available);
    m.def("have_cublaslt", &have_cublaslt);
    m.def("matmul_cublaslt", [](uintptr_t a, uintptr_t b, uintptr_t c, int64_t batch, int64_t M, int64_t N, int64_t K,
                                bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc, int dt, uintptr_t bias,
                                uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
        matmul_cublaslt(a, b, c, bias, gemm_shape(batch, M, N, K, ta, tb, sa, sb, sc), dtype(dt), workspace,
                        workspace_bytes, stream);
    });

    // dropout: (p, scale, seed, offset, shift) as dropout's arguments, p = 0 for none.
    m.def("attention_forward", [](uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, int64_t BH, int T,
                                  int S, int D, bool causal, float scale, float p, float p_scale, uint64_t seed,
                                  uint64_t offset, uintptr_t shift, int dt, uintptr_t stream) {
        attention_forward(q, k, v, o, lse, BH, T, S, D, causal, scale, {p, p_scale, seed, offset, shift}, dtype(dt),
                          stream);
    });
    m.def("attention_backward_scratch_floats", &attention_backward_scratch_floats);
    m.def("attention_uses_wgmma", &attention_uses_wgmma);
    m.def("attention_backward", [](uintptr_t dout, uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse,
                                   uintptr_t dq, uintptr_t dk, uintptr_t dv, uintptr_t scratch, int64_t BH, int T, int S,
                                   int D, bool causal, float scale, float p, float p_scale, uint64_t seed,
                                   uint64_t offset, uintptr_t shift, int dt, uintptr_t stream) {
        attention_backward(dout, q, k, v, o, lse, dq, dk, dv, scratch, BH, T, S, D, causal, scale,
                           {p, p_scale, seed, offset, shift}, dtype(dt), stream);
    });
}
