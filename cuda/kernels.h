// The host-side entry points of tinyllm's CUDA kernels, one block per kernel file.
//
// Plain C++ (no CUDA types), so that module.cpp, the pybind11 binding, compiles with the host
// compiler. Every buffer is a device pointer passed as an integer (CuPy's `a.data.ptr`), every
// launch goes on `stream` (CuPy's `get_current_stream().ptr`), and sizes are in elements. Each
// function checks its launches and throws std::runtime_error on a CUDA error.
#pragma once
#include <cstdint>

namespace tinyllm::cuda {

enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };  // storage of the float buffers marked T below

// norm.cu: (N, C) rows; x, w, b, y, dy, dx, dw, db are T; mean, rstd, scratch float32. b may be 0.
// scratch holds norm_backward_scratch_floats(N, C) floats (the per-block partial sums of dw, db).
int64_t norm_backward_scratch_floats(int64_t N, int C);
void layernorm_forward(uintptr_t x, uintptr_t w, uintptr_t b, uintptr_t y, uintptr_t mean, uintptr_t rstd, int64_t N,
                       int C, float eps, DType dt, uintptr_t stream);
void layernorm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t mean, uintptr_t rstd, uintptr_t dx,
                        uintptr_t dw, uintptr_t db, uintptr_t scratch, int64_t N, int C, DType dt, uintptr_t stream);
void rmsnorm_forward(uintptr_t x, uintptr_t w, uintptr_t y, uintptr_t rstd, int64_t N, int C, float eps, DType dt,
                     uintptr_t stream);
void rmsnorm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t rstd, uintptr_t dx, uintptr_t dw,
                      uintptr_t scratch, int64_t N, int C, DType dt, uintptr_t stream);

// softmax.cu: (N, C) rows, all T. log = true for log-softmax.
void softmax_forward(uintptr_t x, uintptr_t y, int64_t N, int C, bool log, DType dt, uintptr_t stream);
void softmax_backward(uintptr_t dy, uintptr_t y, uintptr_t dx, int64_t N, int C, bool log, DType dt, uintptr_t stream);

// cross_entropy.cu: (N, V) logits and dlogits T; targets int64; losses, lse, dlosses float32.
void cross_entropy_forward(uintptr_t logits, uintptr_t targets, uintptr_t losses, uintptr_t lse, int64_t N, int V,
                           int64_t ignore_index, DType dt, uintptr_t stream);
void cross_entropy_backward(uintptr_t dlosses, uintptr_t logits, uintptr_t targets, uintptr_t lse, uintptr_t dlogits,
                            int64_t N, int V, int64_t ignore_index, DType dt, uintptr_t stream);

// activation.cu: n elements, all T.
void gelu_forward(uintptr_t x, uintptr_t y, int64_t n, bool tanh, DType dt, uintptr_t stream);
void gelu_backward(uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, bool tanh, DType dt, uintptr_t stream);
void silu_forward(uintptr_t x, uintptr_t y, int64_t n, DType dt, uintptr_t stream);
void silu_backward(uintptr_t dy, uintptr_t x, uintptr_t dx, int64_t n, DType dt, uintptr_t stream);

// embedding.cu: dy (N, D) and dw (rows, D) T, dw zeroed by the caller; keys int64, sorted ascending,
// keys[i] = idx[n] * N + n (so equal indices sit together, in the order of n).
void embedding_backward(uintptr_t dy, uintptr_t keys, uintptr_t dw, int64_t N, int D, int64_t rows, DType dt,
                        uintptr_t stream);

// adamw.cu: param, exp_avg, exp_avg_sq float32 (updated in place); grad T.
void adamw_update(uintptr_t param, uintptr_t grad, uintptr_t exp_avg, uintptr_t exp_avg_sq, int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step, DType grad_dt,
                  uintptr_t stream);

// matmul.cu and matmul_cublaslt.cu: row-major C[b] = op(A[b]) @ op(B[b]) for b < batch, all T,
// op(A) is M x K, op(B) is K x N; stride_* is the distance between batch entries (0: shared).
struct GemmShape {
    int64_t batch, M, N, K;
    bool trans_a, trans_b;
    int64_t stride_a, stride_b, stride_c;
};
void matmul(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt, uintptr_t stream);
bool matmul_supported(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt);
bool have_cublaslt();
void matmul_cublaslt(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt, uintptr_t workspace,
                     int64_t workspace_bytes, uintptr_t stream);

// attention.cu: q, o, dout, dq (BH, T, D), k, v, dk, dv (BH, S, D), all T (float32, bfloat16 or float16),
// D 64 or 128, scale > 0; lse (BH, T) float32. scratch holds attention_backward_scratch_floats(BH, T, D).
void attention_forward(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, int64_t BH, int T, int S,
                       int D, bool causal, float scale, DType dt, uintptr_t stream);
int64_t attention_backward_scratch_floats(int64_t BH, int T, int D);
void attention_backward(uintptr_t dout, uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, uintptr_t dq,
                        uintptr_t dk, uintptr_t dv, uintptr_t scratch, int64_t BH, int T, int S, int D, bool causal,
                        float scale, DType dt, uintptr_t stream);

}  // namespace tinyllm::cuda
