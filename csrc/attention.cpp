// Fused scaled-dot-product attention on the CPU, forward and backward, over (B, H, T, D) arrays.
//
// The definition is tinyllm/backend/reference.py. T queries attend to S keys; with `causal`, query
// i sees keys j <= i + S - T (so a block of queries at the end of a longer key sequence, as with a
// KV cache, sees everything before it). The full (B, H, T, S) score tensor is never built: one
// (batch, head) at a time, one block of BLOCK_Q query rows at a time, each on one thread.
//
// Forward, per block of query rows (a task of its own; threads take the biggest blocks first):
//   S   = scale * Q_blk K^T                 GEMM, rows x keys: the only scores alive
//   P   = softmax(S) row by row, masked     lse = max + log(sum exp), saved for the backward
//   O_blk = P V                             GEMM
// Causal: the block's last row sees the most keys, `keys` of them; both GEMMs stop there, which
// skips the masked upper triangle (about half the work when S = T) except inside the diagonal
// block, where the mask zeroes P.
//
// Backward, per (batch, head) on one thread, since dK and dV sum over all the query blocks:
//   S, P = exp(S - lse)                     P rebuilt from the saved lse, never stored
//   dV  += P^T dO_blk                       GEMM
//   dP   = dO_blk V^T                       GEMM
//   dS   = P * (dP - delta),                delta_i = dO_i . O_i  (= sum_j P_ij dP_ij)
//   dQ_blk = scale * dS K                   GEMM
//   dK  += scale * dS^T Q_blk               GEMM
//
// Dropout on the probabilities (dropout_p > 0): the forward weights V by P * Z, where Z is the
// dropout stream's factor (philox.h) of each element of the (B, H, T, S) probability tensor in C
// order, exactly what dropout(softmax(S)) @ V draws; the backward uses the same Z:
//   dV += (P * Z)^T dO_blk,  dP = (dO_blk V^T) * Z,  dS = P * (dP - delta)  (delta = dO . O still,
//   O holding the dropped-out weights)
// so no mask is stored either.
//
// The GEMMs are our sgemm, running single-threaded inside the task. The row operations (softmax
// with a vectorised exp, the softmax gradient, the dot products) are written once with vec.h and
// compiled for AVX-512, AVX2 and the portable baseline. A query row that sees no key at all (causal
// with S < T) gets o = 0, lse = -inf and dq = 0, where the reference's softmax over nothing is NaN.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "array_checks.h"
#include "gemm.h"
#include "kernels.h"
#include "parallel.h"
#include "philox.h"
#include "vec.h"

namespace py = pybind11;

namespace tinyllm {
namespace {

constexpr int64_t BLOCK_Q = 64;  // query rows per tile: 64 x S scores stay in L2

struct Attention {
    int64_t BH, T, S, Dk, Dv;  // batch * heads, queries, keys, q/k width, v/o width
    bool causal;
    float scale;
    const float *q, *k, *v;
    float *o, *lse;                        // forward: written; backward: read
    const float* dout;                     // backward only, and the gradients it writes:
    float *dq, *dk, *dv;
    bool backward;
    bool dropout;                          // with dropout_key: the probabilities' dropout
    DropoutKey dropout_key;

    // Query row i sees keys [0, visible(i)).
    int64_t visible(int64_t i) const { return causal ? std::clamp<int64_t>(i + 1 + S - T, 0, S) : S; }
    int64_t blocks() const { return (T + BLOCK_Q - 1) / BLOCK_Q; }
};

thread_local ScratchBuffer score_buffer;

// Scores s[0:n) of one row (keys n.. are masked) become probabilities in s[0:width); returns lse.
template <int W>
TL_INLINE float softmax_row(float* s, int64_t n, int64_t width) {
    using V = vfloat<W>;
    std::fill(s + n, s + width, 0.0f);
    if (n == 0) return -INFINITY;
    V mv = vsplat<W>(-INFINITY);
    int64_t j = 0;
    for (; j + W <= n; j += W) mv = vmax<W>(mv, vload<W>(s + j));
    if (j < n) mv = vmax<W>(mv, vload_partial<W>(s + j, n - j, -INFINITY));
    const float m = hmax<W>(mv);
    V sum = {};
    for (j = 0; j + W <= n; j += W) {
        const V e = vexp<W>(vload<W>(s + j) - m);
        vstore<W>(s + j, e);
        sum += e;
    }
    if (j < n) {
        const V e = vexp<W>(vload_partial<W>(s + j, n - j, -INFINITY) - m);  // exp(-inf) = 0
        vstore_partial<W>(s + j, e, n - j);
        sum += e;
    }
    const float l = hsum<W>(sum), inv = 1.0f / l;
    for (j = 0; j + W <= n; j += W) vstore<W>(s + j, vload<W>(s + j) * inv);
    for (; j < n; ++j) s[j] *= inv;
    return m + std::log(l);
}

// One row of the softmax backward: P = exp(s - lse) into s, dS = P * (dp - delta) into dp, over
// keys [0, n); both zero for the masked keys [n, width).
template <int W>
TL_INLINE void softmax_grad_row(float* s, float* dp, int64_t n, int64_t width, float lse, float delta) {
    using V = vfloat<W>;
    int64_t j = 0;
    for (; j + W <= n; j += W) {
        const V p = vexp<W>(vload<W>(s + j) - lse);
        vstore<W>(s + j, p);
        vstore<W>(dp + j, p * (vload<W>(dp + j) - delta));
    }
    if (j < n) {
        const V p = vexp<W>(vload_partial<W>(s + j, n - j, 0.0f) - lse);
        vstore_partial<W>(s + j, p, n - j);
        vstore_partial<W>(dp + j, p * (vload_partial<W>(dp + j, n - j, 0.0f) - delta), n - j);
    }
    std::fill(s + n, s + width, 0.0f);
    std::fill(dp + n, dp + width, 0.0f);
}

template <int W>
TL_INLINE float dot(const float* a, const float* b, int64_t n) {
    vfloat<W> acc = {};
    int64_t j = 0;
    for (; j + W <= n; j += W) acc += vload<W>(a + j) * vload<W>(b + j);
    if (j < n) acc += vload_partial<W>(a + j, n - j, 0.0f) * vload_partial<W>(b + j, n - j, 0.0f);
    return hsum<W>(acc);
}

// Forward for query rows i0 .. i0 + BLOCK_Q of one (batch, head).
template <int W>
TL_INLINE void forward_block(const Attention& at, int64_t bh, int64_t i0) {
    const int64_t rows = std::min(BLOCK_Q, at.T - i0), keys = at.visible(i0 + rows - 1);
    const float* q = at.q + (bh * at.T + i0) * at.Dk;
    const float* k = at.k + bh * at.S * at.Dk;
    const float* v = at.v + bh * at.S * at.Dv;
    float* o = at.o + (bh * at.T + i0) * at.Dv;
    float* lse = at.lse + bh * at.T + i0;
    float* s = score_buffer.get(size_t(rows) * keys);
    sgemm(false, true, rows, keys, at.Dk, at.scale, q, at.Dk, k, at.Dk, false, s, keys);
    for (int64_t r = 0; r < rows; ++r) {
        lse[r] = softmax_row<W>(s + r * keys, at.visible(i0 + r), keys);
        if (at.dropout) at.dropout_key.apply(s + r * keys, s + r * keys, at.visible(i0 + r), uint64_t((bh * at.T + i0 + r) * at.S));
    }
    sgemm(false, false, rows, at.Dv, keys, 1.0f, s, keys, v, at.Dv, false, o, at.Dv);
}

// Backward for all the query blocks of one (batch, head).
template <int W>
TL_INLINE void backward_head(const Attention& at, int64_t bh) {
    const float* k = at.k + bh * at.S * at.Dk;
    const float* v = at.v + bh * at.S * at.Dv;
    float* dk = at.dk + bh * at.S * at.Dk;
    float* dv = at.dv + bh * at.S * at.Dv;
    std::fill(dk, dk + at.S * at.Dk, 0.0f);
    std::fill(dv, dv + at.S * at.Dv, 0.0f);
    float* s = score_buffer.get(2 * size_t(BLOCK_Q) * at.S);
    float* dp = s + BLOCK_Q * at.S;
    for (int64_t i0 = 0; i0 < at.T; i0 += BLOCK_Q) {
        const int64_t rows = std::min(BLOCK_Q, at.T - i0), keys = at.visible(i0 + rows - 1);
        const int64_t row0 = bh * at.T + i0;
        const float* q = at.q + row0 * at.Dk;
        const float* o = at.o + row0 * at.Dv;
        const float* dout = at.dout + row0 * at.Dv;
        float* dq = at.dq + row0 * at.Dk;
        sgemm(false, true, rows, keys, at.Dk, at.scale, q, at.Dk, k, at.Dk, false, s, keys);
        sgemm(false, true, rows, keys, at.Dv, 1.0f, dout, at.Dv, v, at.Dv, false, dp, keys);
        for (int64_t r = 0; r < rows; ++r) {
            const float delta = dot<W>(dout + r * at.Dv, o + r * at.Dv, at.Dv);
            const int64_t seen = at.visible(i0 + r);
            const uint64_t first = uint64_t((row0 + r) * at.S);
            if (at.dropout) at.dropout_key.apply(dp + r * keys, dp + r * keys, seen, first);  // dP = (dO V^T) * Z
            softmax_grad_row<W>(s + r * keys, dp + r * keys, seen, keys, at.lse[row0 + r], delta);
            if (at.dropout) at.dropout_key.apply(s + r * keys, s + r * keys, seen, first);   // P * Z, for dV
        }
        sgemm(true, false, keys, at.Dv, rows, 1.0f, s, keys, dout, at.Dv, true, dv, at.Dv);
        sgemm(false, false, rows, at.Dk, keys, at.scale, dp, keys, k, at.Dk, false, dq, at.Dk);
        sgemm(true, false, keys, at.Dk, rows, at.scale, dp, keys, q, at.Dk, true, dk, at.Dk);
    }
}

// Task t: the backward of (batch, head) t, or a forward query block, the biggest blocks first.
template <int W>
TL_INLINE void attention_task(const Attention& at, int64_t t) {
    if (at.backward) {
        backward_head<W>(at, t);
    } else {
        forward_block<W>(at, t % at.BH, (at.blocks() - 1 - t / at.BH) * BLOCK_Q);
    }
}

#if TL_HAVE_X86_TARGETS
TL_TARGET_AVX512 void attention_task_avx512(const Attention& at, int64_t t) { attention_task<16>(at, t); }
TL_TARGET_AVX2 void attention_task_avx2(const Attention& at, int64_t t) { attention_task<8>(at, t); }
#endif
void attention_task_generic(const Attention& at, int64_t t) { attention_task<4>(at, t); }

void run(const Attention& at) {
    using Task = void (*)(const Attention&, int64_t);
    static const Task task = [] {
        switch (best_isa()) {
#if TL_HAVE_X86_TARGETS
        case Isa::avx512: return attention_task_avx512;
        case Isa::avx2: return attention_task_avx2;
#endif
        default: return attention_task_generic;
        }
    }();
    parallel_tasks(at.backward ? at.BH : at.BH * at.blocks(), [&](int64_t t) { task(at, t); });
}

// The shapes every attention kernel shares: q (B, H, T, Dk), k (B, H, S, Dk), v (B, H, S, Dv).
Attention check_inputs(const char* kernel, const FloatArray& q, const FloatArray& k, const FloatArray& v,
                       bool causal, float scale, const DropoutKey& dropout) {
    if (q.ndim() != 4) throw std::invalid_argument(std::string(kernel) + ": q must be (B, H, T, D), got " + shape_of(q));
    if (k.ndim() != 4) throw std::invalid_argument(std::string(kernel) + ": k must be (B, H, S, D), got " + shape_of(k));
    if (v.ndim() != 4) throw std::invalid_argument(std::string(kernel) + ": v must be (B, H, S, Dv), got " + shape_of(v));
    const int64_t B = q.shape(0), H = q.shape(1), T = q.shape(2), Dk = q.shape(3);
    const int64_t S = k.shape(2), Dv = v.shape(3);
    expect_shape(kernel, "k", k, {B, H, S, Dk});
    expect_shape(kernel, "v", v, {B, H, S, Dv});
    Attention at{};
    at.BH = B * H, at.T = T, at.S = S, at.Dk = Dk, at.Dv = Dv, at.causal = causal, at.scale = scale;
    at.q = q.data(), at.k = k.data(), at.v = v.data();
    at.dropout = dropout.p > 0.0f, at.dropout_key = dropout;
    return at;
}

void attention_forward_kernel(const FloatArray& q, const FloatArray& k, const FloatArray& v, bool causal,
                              float scale, FloatArray& o, FloatArray& lse, float dropout_p, float dropout_scale,
                              uint64_t seed, uint64_t offset) {
    Attention at = check_inputs("attention_forward", q, k, v, causal, scale, {dropout_p, dropout_scale, seed, offset});
    const int64_t B = q.shape(0), H = q.shape(1);
    expect_shape("attention_forward", "o", o, {B, H, at.T, at.Dv});
    expect_shape("attention_forward", "lse", lse, {B, H, at.T});
    at.o = o.mutable_data(), at.lse = lse.mutable_data();
    py::gil_scoped_release no_gil;
    run(at);
}

void attention_backward_kernel(const FloatArray& dout, const FloatArray& q, const FloatArray& k,
                               const FloatArray& v, const FloatArray& o, const FloatArray& lse, bool causal,
                               float scale, FloatArray& dq, FloatArray& dk, FloatArray& dv, float dropout_p,
                               float dropout_scale, uint64_t seed, uint64_t offset) {
    Attention at = check_inputs("attention_backward", q, k, v, causal, scale, {dropout_p, dropout_scale, seed, offset});
    const int64_t B = q.shape(0), H = q.shape(1);
    expect_shape("attention_backward", "do", dout, {B, H, at.T, at.Dv});
    expect_shape("attention_backward", "o", o, {B, H, at.T, at.Dv});
    expect_shape("attention_backward", "lse", lse, {B, H, at.T});
    expect_shape("attention_backward", "dq", dq, {B, H, at.T, at.Dk});
    expect_shape("attention_backward", "dk", dk, {B, H, at.S, at.Dk});
    expect_shape("attention_backward", "dv", dv, {B, H, at.S, at.Dv});
    at.o = const_cast<float*>(o.data()), at.lse = const_cast<float*>(lse.data());  // read only
    at.dout = dout.data(), at.dq = dq.mutable_data(), at.dk = dk.mutable_data(), at.dv = dv.mutable_data();
    at.backward = true;
    py::gil_scoped_release no_gil;
    run(at);
}

}  // namespace

void register_attention(py::module_& m) {
    m.def("attention_forward", &attention_forward_kernel, py::arg("q").noconvert(), py::arg("k").noconvert(),
          py::arg("v").noconvert(), py::arg("causal"), py::arg("scale"), py::arg("o").noconvert(),
          py::arg("lse").noconvert(), py::arg("dropout_p") = 0.0f, py::arg("dropout_scale") = 1.0f, py::arg("seed") = 0,
          py::arg("offset") = 0,
          "o = dropout(softmax(q k^T * scale + mask)) v and the row log-sum-exp (before dropout), into o (B, H, T, Dv) "
          "and lse (B, H, T); dropout_p = 0: none.");
    m.def("attention_backward", &attention_backward_kernel, py::arg("do").noconvert(), py::arg("q").noconvert(),
          py::arg("k").noconvert(), py::arg("v").noconvert(), py::arg("o").noconvert(), py::arg("lse").noconvert(),
          py::arg("causal"), py::arg("scale"), py::arg("dq").noconvert(), py::arg("dk").noconvert(),
          py::arg("dv").noconvert(), py::arg("dropout_p") = 0.0f, py::arg("dropout_scale") = 1.0f, py::arg("seed") = 0,
          py::arg("offset") = 0, "dq, dk, dv of attention_forward, with P rebuilt from lse (and its dropout redrawn).");
}

}  // namespace tinyllm
