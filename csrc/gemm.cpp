// SGEMM in the style of GotoBLAS/BLIS, and the batched `matmul` kernel built on it.
//
// ## Why the loops look like this
//
// A naive triple loop does 2 flops per float it loads, and the loads come from memory. A CPU core
// can do 64 flops per cycle (two 16-wide FMAs) but load only a couple of vectors per cycle from L1,
// and far less from L2, L3 or DRAM. So the work is arranged so that every float is loaded from far
// away once and then reused many times from a nearer cache or from a register:
//
//   for jc in N, step NC:                       a KC x NC panel of op(B) ...
//     for pc in K, step KC:
//       pack op(B)[pc:pc+KC, jc:jc+NC]  -> Bp   ... packed once, lives in L3 (KC*NC*4 = 2 MiB)
//       for ic in M, step MC:
//         pack op(A)[ic:ic+MC, pc:pc+KC] -> Ap  an MC x KC block of op(A), lives in L2 (192 KiB)
//         for jr in NC, step NR:                a KC x NR micro-panel of Bp, stays in L1 (32 KiB)
//           for ir in MC, step MR:              an MR x KC micro-panel of Ap, streamed from L2
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= Ap_panel @ Bp_panel
//
// Packing copies a block into the exact order the micro-kernel reads it: Ap as MR-row panels, each
// stored p by p (MR consecutive floats per p), Bp as NR-column panels, each stored p by p (NR floats
// per p). The micro-kernel then walks both with unit stride, the copies absorb the transposes
// (trans_a / trans_b only change how a block is gathered), and the edges of the matrix are padded
// with zeros so the micro-kernel always computes a full tile (the part of it outside C is
// discarded; the zeros just keep garbage, NaNs or slow denormals out of it).
//
// ## The micro-kernel
//
// It keeps an MR x NR tile of C in registers as MR x NV vectors (NR = NV vectors of W floats). Each
// step p loads NV vectors of B's row p, and for each of the MR rows broadcasts A[r, p] and does NV
// fused multiply-adds: MR*NV FMAs per MR + NV loads. With AVX-512 (W = 16) the tile is 12 x 32:
// 24 accumulators + 2 B vectors + 1 broadcast of the 32 zmm registers, 24 independent FMAs per step,
// enough to hide the FMA latency on two FMA pipes. With AVX2 (W = 8, 16 registers) it is 6 x 16, and
// the portable baseline (W = 4) is 6 x 8. The tile of C is touched only once, at the end of KC steps.
//
// ## Threads
//
// C is cut into a grid of one block per thread (rows or columns, whichever keeps blocks fattest),
// and each thread runs the loops above on its block with its own packing buffers. Called inside a
// parallel region (attention calls it per (batch, head)), sgemm runs on the calling thread alone.
#include "gemm.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "array_checks.h"
#include "kernels.h"
#include "parallel.h"
#include "vec.h"

namespace py = pybind11;

namespace tinyllm {
namespace {

// The register tile and cache blocks for one vector width W (see the comment at the top).
template <int W_, int MR_, int NV_, int KC_, int MC_, int NC_>
struct Blocking {
    static constexpr int W = W_, MR = MR_, NV = NV_, NR = NV_ * W_;
    static constexpr int KC = KC_, MC = MC_, NC = NC_;
    static_assert(MC % MR == 0 && NC % NR == 0, "a cache block holds whole micro-panels");
};
using BlockingAvx512 = Blocking<16, 12, 2, 256, 192, 2048>;
using BlockingAvx2 = Blocking<8, 6, 2, 256, 192, 2048>;
using BlockingGeneric = Blocking<4, 6, 2, 256, 192, 2048>;

// op(A) as rows i, op(B) transposed as rows j: both are "R x K" operands whose element (r, p) is
// data[r * rs + p * ps], so one packing routine serves both, transposed or not.
struct Operand {
    const float* data;
    int64_t rs, ps;
    const float* at(int64_t r, int64_t p) const { return data + r * rs + p * ps; }
};

struct Problem {
    int64_t M, N, K;
    float alpha;
    Operand a, b;
    bool accumulate;
    float* C;
    int64_t ldc;
};

thread_local ScratchBuffer pack_a_buffer, pack_b_buffer;  // each thread packs its own blocks

// Packs rows r0 .. r0+rows (rows <= R) by columns p0 .. p0+kc of x into dst, p by p:
// dst[p * R + r] = x(r0 + r, p0 + p), and zero for r >= rows.
template <int R>
TL_INLINE void pack_panel(const Operand& x, int64_t r0, int64_t p0, int64_t rows, int64_t kc, float* dst) {
    const float* src = x.at(r0, p0);
    if (x.rs == 1 && rows == R) {  // the R values of one p are contiguous: a straight copy
        for (int64_t p = 0; p < kc; ++p) {
            TL_UNROLL for (int r = 0; r < R; ++r) dst[p * R + r] = src[p * x.ps + r];
        }
        return;
    }
    for (int64_t r = 0; r < rows; ++r) {  // a transpose: read each row along p
        for (int64_t p = 0; p < kc; ++p) dst[p * R + r] = src[r * x.rs + p * x.ps];
    }
    for (int64_t r = rows; r < R; ++r) {
        for (int64_t p = 0; p < kc; ++p) dst[p * R + r] = 0.0f;
    }
}

// C[0:MR, 0:NR] = alpha * a @ b (+ C), a an MR-row panel and b an NR-column panel of depth kc.
template <class S>
TL_INLINE void micro_kernel(int64_t kc, const float* a, const float* b, float alpha, bool accumulate,
                            float* C, int64_t ldc) {
    using V = vfloat<S::W>;
    TL_UNROLL for (int r = 0; r < S::MR; ++r) {  // start fetching the tile of C now, used at the end
        TL_UNROLL for (int v = 0; v < S::NV; ++v) __builtin_prefetch(C + r * ldc + v * S::W, 1);
    }
    V acc[S::MR][S::NV] = {};
    for (int64_t p = 0; p < kc; ++p, a += S::MR, b += S::NR) {
        V bv[S::NV];
        TL_UNROLL for (int v = 0; v < S::NV; ++v) bv[v] = vload<S::W>(b + v * S::W);
        TL_UNROLL for (int r = 0; r < S::MR; ++r) {
            TL_UNROLL for (int v = 0; v < S::NV; ++v) acc[r][v] += a[r] * bv[v];
        }
    }
    TL_UNROLL for (int r = 0; r < S::MR; ++r) {
        TL_UNROLL for (int v = 0; v < S::NV; ++v) {
            float* c = C + r * ldc + v * S::W;
            V out = alpha * acc[r][v];
            if (accumulate) out += vload<S::W>(c);
            vstore<S::W>(c, out);
        }
    }
}

// One mr x nr tile of C; a partial tile at the matrix edge goes through a full tile on the stack.
template <class S>
TL_INLINE void tile(int64_t kc, const float* a, const float* b, int64_t mr, int64_t nr, float alpha,
                    bool accumulate, float* C, int64_t ldc) {
    if (mr == S::MR && nr == S::NR) {
        micro_kernel<S>(kc, a, b, alpha, accumulate, C, ldc);
        return;
    }
    alignas(64) float t[S::MR * S::NR];
    micro_kernel<S>(kc, a, b, alpha, false, t, S::NR);
    for (int64_t i = 0; i < mr; ++i) {
        for (int64_t j = 0; j < nr; ++j) C[i * ldc + j] = t[i * S::NR + j] + (accumulate ? C[i * ldc + j] : 0.0f);
    }
}

// The five loops of the comment at the top, on one thread.
template <class S>
TL_INLINE void gemm_serial(const Problem& g) {
    float* ap = pack_a_buffer.get(size_t(S::MC) * S::KC);
    float* bp = pack_b_buffer.get(size_t(S::KC) * S::NC);
    for (int64_t jc = 0; jc < g.N; jc += S::NC) {
        const int64_t nc = std::min<int64_t>(S::NC, g.N - jc);
        for (int64_t pc = 0; pc < g.K; pc += S::KC) {
            const int64_t kc = std::min<int64_t>(S::KC, g.K - pc);
            const bool accumulate = g.accumulate || pc > 0;
            for (int64_t jr = 0; jr < nc; jr += S::NR)
                pack_panel<S::NR>(g.b, jc + jr, pc, std::min<int64_t>(S::NR, nc - jr), kc, bp + jr * kc);
            for (int64_t ic = 0; ic < g.M; ic += S::MC) {
                const int64_t mc = std::min<int64_t>(S::MC, g.M - ic);
                for (int64_t ir = 0; ir < mc; ir += S::MR)
                    pack_panel<S::MR>(g.a, ic + ir, pc, std::min<int64_t>(S::MR, mc - ir), kc, ap + ir * kc);
                for (int64_t jr = 0; jr < nc; jr += S::NR) {
                    for (int64_t ir = 0; ir < mc; ir += S::MR) {
                        tile<S>(kc, ap + ir * kc, bp + jr * kc, std::min<int64_t>(S::MR, mc - ir),
                                std::min<int64_t>(S::NR, nc - jr), g.alpha, accumulate,
                                g.C + (ic + ir) * g.ldc + jc + jr, g.ldc);
                    }
                }
            }
        }
    }
}

#if TL_HAVE_X86_TARGETS
TL_TARGET_AVX512 void gemm_avx512(const Problem& g) { gemm_serial<BlockingAvx512>(g); }
TL_TARGET_AVX2 void gemm_avx2(const Problem& g) { gemm_serial<BlockingAvx2>(g); }
#endif
void gemm_generic(const Problem& g) { gemm_serial<BlockingGeneric>(g); }

// The serial GEMM this CPU runs, and its micro-tile (threads split C on tile boundaries).
struct SerialGemm {
    void (*run)(const Problem&);
    int MR, NR;
};
template <class S>
SerialGemm serial_gemm(void (*run)(const Problem&)) { return {run, S::MR, S::NR}; }

SerialGemm pick_serial_gemm() {
    switch (best_isa()) {
#if TL_HAVE_X86_TARGETS
    case Isa::avx512: return serial_gemm<BlockingAvx512>(gemm_avx512);
    case Isa::avx2: return serial_gemm<BlockingAvx2>(gemm_avx2);
#endif
    default: return serial_gemm<BlockingGeneric>(gemm_generic);
    }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb,
           bool accumulate, float* C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // an empty sum
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
        return;
    }
    static const SerialGemm serial = pick_serial_gemm();
    const Problem g{M, N, K, alpha,
                    Operand{A, trans_a ? 1 : lda, trans_a ? lda : 1},
                    Operand{B, trans_b ? ldb : 1, trans_b ? 1 : ldb},
                    accumulate, C, ldc};
    const int threads = M * N * K < int64_t(1) << 18 ? 1 : max_threads();  // tiny: not worth a fork
    if (threads == 1) {
        serial.run(g);
        return;
    }
    // Grid of tm x tn blocks, one per thread, chosen to keep the thinnest block side widest.
    int tm = 1;
    double best = -1.0;
    for (int m = 1; m <= threads; ++m) {
        if (threads % m) continue;
        const double fat = std::min(double(M) / m / serial.MR, double(N) / (threads / m) / serial.NR);
        if (fat > best) best = fat, tm = m;
    }
    const int tn = threads / tm;
    const int64_t rows = ceil_div(ceil_div(M, tm), serial.MR) * serial.MR;
    const int64_t cols = ceil_div(ceil_div(N, tn), serial.NR) * serial.NR;
    parallel_tasks(int64_t(tm) * tn, [&](int64_t t) {
        const int64_t i0 = t / tn * rows, j0 = t % tn * cols;
        if (i0 >= M || j0 >= N) return;
        Problem block = g;
        block.M = std::min(rows, M - i0);
        block.N = std::min(cols, N - j0);
        block.a.data = g.a.at(i0, 0);
        block.b.data = g.b.at(j0, 0);
        block.C = C + i0 * ldc + j0;
        serial.run(block);
    });
}

// ------------------------------------------------------------------------------------------------
// The pybind kernel

namespace {

// c[i] = op(a[i]) @ op(b[i or 0]) for each batch index i; see tinyllm/backend/cpu.py:matmul.
void matmul_kernel(const FloatArray& a, const FloatArray& b, FloatArray& c, bool trans_a, bool trans_b) {
    const std::string shapes = "a " + shape_of(a) + (trans_a ? "^T" : "") + ", b " + shape_of(b) +
                               (trans_b ? "^T" : "") + ", c " + shape_of(c);
    if (a.ndim() != 3 || b.ndim() != 3 || c.ndim() != 3)
        throw std::invalid_argument("matmul: a, b and c must be 3-D (batch, rows, cols); got " + shapes);
    const int64_t batch = a.shape(0), lda = a.shape(2), ldb = b.shape(2);
    const int64_t M = trans_a ? a.shape(2) : a.shape(1), K = trans_a ? a.shape(1) : a.shape(2);
    const int64_t Kb = trans_b ? b.shape(2) : b.shape(1), N = trans_b ? b.shape(1) : b.shape(2);
    if (K != Kb) throw std::invalid_argument("matmul: inner dimensions differ (" + std::to_string(K) +
                                             " vs " + std::to_string(Kb) + "); got " + shapes);
    if (b.shape(0) != 1 && b.shape(0) != batch)
        throw std::invalid_argument("matmul: b's batch must be 1 or a's batch; got " + shapes);
    if (c.shape(0) != batch || c.shape(1) != M || c.shape(2) != N)
        throw std::invalid_argument("matmul: c must be (batch, M, N) = (" + std::to_string(batch) + ", " +
                                    std::to_string(M) + ", " + std::to_string(N) + "); got " + shapes);
    const float* pa = a.data();
    const float* pb = b.data();
    float* pc = c.mutable_data();  // throws if c is read-only
    const int64_t b_step = b.shape(0) == 1 ? 0 : K * N;

    py::gil_scoped_release no_gil;
    auto one = [&](int64_t i) {
        sgemm(trans_a, trans_b, M, N, K, 1.0f, pa + i * M * K, lda, pb + i * b_step, ldb, false, pc + i * M * N, N);
    };
    // Many matrices: one per thread (each GEMM then runs serially). Few: one after the other, each
    // on all threads, so that an odd batch of 3 does not leave a core idle a third of the time.
    const int threads = max_threads();
    if (batch > 1 && (batch % threads == 0 || batch >= 4 * threads)) {
        parallel_tasks(batch, one);
    } else {
        for (int64_t i = 0; i < batch; ++i) one(i);
    }
}

}  // namespace

void register_gemm(py::module_& m) {
    m.def("matmul", &matmul_kernel, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("c").noconvert(), py::arg("trans_a"), py::arg("trans_b"),
          "c[i] = op(a[i]) @ op(b[i]) for float32 C-contiguous 3-D arrays; b's batch may be 1 (shared).");
    m.def("simd_isa", [] { return isa_name(best_isa()); },
          "The instruction set the matmul and attention kernels run: avx512, avx2 or generic.");
}

}  // namespace tinyllm
