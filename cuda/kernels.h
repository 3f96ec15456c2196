// The host-side entry points of tinyllm's CUDA kernels, one block per kernel file.
//
// Plain C++ (no CUDA types), so that module.cpp, the pybind11 binding, compiles with the host
// compiler. Every buffer is a device pointer passed as an integer (CuPy's `a.data.ptr`), every
// launch goes on `stream` (CuPy's `get_current_stream().ptr`), and sizes are in elements. Each
// function checks its launches and throws std::runtime_error on a CUDA error.
#pragma once
#include <cstdint>
#include <vector>

namespace tinyllm::cuda {

enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };  // storage of the float buffers marked T below

// norm.cu: (N, C) rows; x, w, b, s, y, dy, dres, dx, dw, db are T, delta is of delta_dt; mean, rstd, scratch
// float32. b and dres may be 0. The add_ forwards write s = x + delta (in T) and normalise it; the backwards
// add dres into dx.
// scratch holds norm_backward_scratch_floats(N, C) floats (the per-block partial sums of dw, db).
int64_t norm_backward_scratch_floats(int64_t N, int C);
void layernorm_forward(uintptr_t x, uintptr_t w, uintptr_t b, uintptr_t y, uintptr_t mean, uintptr_t rstd, int64_t N,
                       int C, float eps, DType dt, uintptr_t stream);
void add_layernorm_forward(uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t b, uintptr_t s, uintptr_t y,
                           uintptr_t mean, uintptr_t rstd, int64_t N, int C, float eps, DType dt, DType delta_dt,
                           uintptr_t stream);
void layernorm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t mean, uintptr_t rstd, uintptr_t dres,
                        uintptr_t dx, uintptr_t dw, uintptr_t db, uintptr_t scratch, int64_t N, int C, DType dt,
                        uintptr_t stream);
void rmsnorm_forward(uintptr_t x, uintptr_t w, uintptr_t y, uintptr_t rstd, int64_t N, int C, float eps, DType dt,
                     uintptr_t stream);
void add_rmsnorm_forward(uintptr_t x, uintptr_t delta, uintptr_t w, uintptr_t s, uintptr_t y, uintptr_t rstd, int64_t N,
                         int C, float eps, DType dt, DType delta_dt, uintptr_t stream);
void rmsnorm_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t rstd, uintptr_t dres, uintptr_t dx, uintptr_t dw,
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

// dropout.cu: y = x * (scale where the Philox4x32-10 uniform of element i >= p, else 0), n elements, x and y T;
// element i takes word i % 4 of the counter offset + i / 4 (plus the uint64 at shift when shift is not 0)
// under the key seed.
void dropout(uintptr_t x, uintptr_t y, int64_t n, float p, float scale, uint64_t seed, uint64_t offset, uintptr_t shift,
             DType dt, uintptr_t stream);

// copy.cu: y (contiguous) = x read through strides (elements, may be negative or 0), 1 to 4 dims, T.
void strided_copy(uintptr_t x, uintptr_t y, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                  DType dt, uintptr_t stream);

// cast.cu: y = x converted, n elements, x of dtype `from`, y of dtype `to`.
void cast(uintptr_t x, uintptr_t y, int64_t n, DType from, DType to, uintptr_t stream);

// rope.cu: x, y (rows, D), rows = (..., T) flattened; cos, sin (T, D/2); all T. backward rotates by -angle.
void rope(uintptr_t x, uintptr_t cos, uintptr_t sin, uintptr_t y, int64_t rows, int T, int D, bool backward, DType dt,
          uintptr_t stream);

// embedding.cu: dy (N, D) and dw (rows, D) T, dw zeroed by the caller; keys int64, sorted ascending,
// keys[i] = idx[n] * N + n (so equal indices sit together, in the order of n).
void embedding_backward(uintptr_t dy, uintptr_t keys, uintptr_t dw, int64_t N, int D, int64_t rows, DType dt,
                        uintptr_t stream);

// sort.cu: keys_out = keys_in (n int64) sorted ascending; scratch of sort_int64_scratch_bytes(n) bytes.
int64_t sort_int64_scratch_bytes(int64_t n);
void sort_int64(uintptr_t keys_in, uintptr_t keys_out, int64_t n, uintptr_t scratch, int64_t scratch_bytes,
                uintptr_t stream);

// multi_tensor.cu, one tensor: param, exp_avg, exp_avg_sq float32 (updated in place); grad T.
void adamw_update(uintptr_t param, uintptr_t grad, uintptr_t exp_avg, uintptr_t exp_avg_sq, int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step, DType grad_dt,
                  uintptr_t stream);

// multi_tensor.cu: lists of tensors (pointers and sizes) in one launch each. grads are T; params,
// exp_avgs, exp_avg_sqs float32; norm a float32 scalar; scratch grad_norm_scratch_floats(sizes) floats.
// clip_grads multiplies every gradient by min(1, max_norm / (*norm + 1e-6)); unscale_grads by inv_scale,
// setting the float32 *found_inf to 1 where a result is inf or NaN. step_ptr, when not 0,
// points at a float32 step count on the device that replaces step, lr_ptr if not 0 at a float64 learning
// rate there that replaces lr (for a captured step).
int64_t grad_norm_scratch_floats(const std::vector<int64_t>& sizes);
void grad_norm(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, uintptr_t scratch, uintptr_t norm,
               DType dt, uintptr_t stream);
void clip_grads(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, uintptr_t norm, float max_norm,
                DType dt, uintptr_t stream);
void unscale_grads(const std::vector<uintptr_t>& grads, const std::vector<int64_t>& sizes, float inv_scale,
                   uintptr_t found_inf, DType dt, uintptr_t stream);
void adamw_update_multi(const std::vector<uintptr_t>& params, const std::vector<uintptr_t>& grads,
                        const std::vector<uintptr_t>& exp_avgs, const std::vector<uintptr_t>& exp_avg_sqs,
                        const std::vector<int64_t>& sizes, double lr, double beta1, double beta2, double eps,
                        double weight_decay, double step, uintptr_t step_ptr, uintptr_t lr_ptr, DType grad_dt,
                        uintptr_t stream);

// bias.cu: add_bias: y[n, c] += b[c], in place; sum_rows: out[c] = sum over rows of x (N, C); y, b, x,
// out T; scratch sum_rows_scratch_floats(N, C) floats.
void add_bias(uintptr_t y, uintptr_t b, int64_t N, int C, DType dt, uintptr_t stream);
int64_t sum_rows_scratch_floats(int64_t N, int C);
void sum_rows(uintptr_t x, uintptr_t out, uintptr_t scratch, int64_t N, int C, DType dt, uintptr_t stream);

// matmul.cu and matmul_cublaslt.cu: row-major C[b] = op(A[b]) @ op(B[b]) for b < batch, all T,
// op(A) is M x K, op(B) is K x N; stride_* is the distance between batch entries (0: shared).
struct GemmShape {
    int64_t batch, M, N, K;
    bool trans_a, trans_b;
    int64_t stride_a, stride_b, stride_c;
};
// workspace (16-byte aligned, may be 0 bytes): float32 scratch for the Hopper kernel's split-K.
void matmul(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt, uintptr_t workspace,
            int64_t workspace_bytes, uintptr_t stream);
bool matmul_supported(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, DType dt);
// matmul_wgmma.cu: whether the current device and the build can run the Hopper kernel (the first
// call per device synchronises), and the kernel behind matmul() (bf16, matmul_supported shapes);
// false, having done nothing, where the device, the build or C's alignment rules it out.
bool matmul_wgmma_available();
bool matmul_wgmma(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, uintptr_t workspace,
                  int64_t workspace_bytes, uintptr_t stream);
bool have_cublaslt();
// bias: 0, or N values of T (16-byte aligned) added to every row of C, in the GEMM's epilogue.
void matmul_cublaslt(uintptr_t a, uintptr_t b, uintptr_t c, uintptr_t bias, const GemmShape& s, DType dt,
                     uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream);

// attention.cu: q, o, dout, dq (BH, T, D), k, v, dk, dv (BH, S, D), all T (float32, bfloat16 or float16),
// D 64 or 128, scale > 0; lse (BH, T) float32. scratch holds attention_backward_scratch_floats(BH, T, D).
// drop: dropout of the (BH, T, S) probabilities as dropout() above would draw it (p = 0: none; p > 0
// needs S a multiple of 4); shift is a device pointer to a uint64 added to offset, or 0.
struct AttentionDropout {
    float p = 0.0f, scale = 1.0f;
    uint64_t seed = 0, offset = 0;
    uintptr_t shift = 0;
};
void attention_forward(uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, int64_t BH, int T, int S,
                       int D, bool causal, float scale, const AttentionDropout& drop, DType dt, uintptr_t stream);
int64_t attention_backward_scratch_floats(int64_t BH, int T, int D);
// Whether attention_forward and attention_backward's main kernel are the Hopper (wgmma) ones on the
// current device (the first call per device synchronises); TINYLLM_CUDA_MMA_SYNC=1 forces mma.sync.
bool attention_uses_wgmma();
void attention_backward(uintptr_t dout, uintptr_t q, uintptr_t k, uintptr_t v, uintptr_t o, uintptr_t lse, uintptr_t dq,
                        uintptr_t dk, uintptr_t dv, uintptr_t scratch, int64_t BH, int T, int S, int D, bool causal,
                        float scale, const AttentionDropout& drop, DType dt, uintptr_t stream);

}  // namespace tinyllm::cuda
