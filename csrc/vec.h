// A small portable SIMD layer: write a kernel once, compile it for AVX-512, AVX2+FMA and a baseline.
//
// `vfloat<W>` is a GCC/Clang vector extension type of W floats. Its operators work lane by lane
// (`a * b + c` becomes one fused multiply-add where the target has FMA) and a scalar operand is
// broadcast (`s * v`). The same template therefore compiles to zmm code inside a function marked
// TL_TARGET_AVX512, to ymm code inside TL_TARGET_AVX2, and to SSE2 (or NEON) code elsewhere.
//
// The recipe each kernel file follows:
//   template <int W> TL_INLINE void body(...) { ... vfloat<W> ... }      // the kernel, written once
//   TL_TARGET_AVX512 void body_avx512(...) { body<16>(...); }           // one entry point per ISA
//   TL_TARGET_AVX2   void body_avx2(...)   { body<8>(...); }
//   void body_generic(...)                 { body<4>(...); }
// and picks the entry point with best_isa() at run time. The body must be TL_INLINE (always
// inlined) so that it is compiled with the instruction set of the entry point it lands in; the
// helpers below are TL_INLINE for the same reason.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu_features.h"

// Vector arguments of these always-inlined helpers never cross a real call, so GCC's note that
// their calling convention differs between ISAs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define TL_INLINE inline __attribute__((always_inline))
#define TL_UNROLL _Pragma("GCC unroll 32")

#if defined(__x86_64__) || defined(_M_X64)
#define TL_HAVE_X86_TARGETS 1
#define TL_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define TL_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define TL_HAVE_X86_TARGETS 0
#endif

namespace tinyllm {

template <int W>
struct VecTypes {
    typedef float f __attribute__((vector_size(4 * W)));
    typedef int32_t i __attribute__((vector_size(4 * W)));
};
template <int W> using vfloat = typename VecTypes<W>::f;
template <int W> using vint = typename VecTypes<W>::i;

// The instruction sets we compile kernels for, best first; best_isa() is what this CPU runs.
// TINYLLM_ISA=avx2 or TINYLLM_ISA=generic caps it, to run the lesser paths on a newer CPU (tests).
enum class Isa { avx512, avx2, generic };
inline const char* isa_name(Isa isa) {
    return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "generic";
}
inline Isa best_isa() {
    static const Isa isa = [] {
        const Isa best = cpu_has_avx512f() ? Isa::avx512 : cpu_has_avx2_fma() ? Isa::avx2 : Isa::generic;
        const char* cap = std::getenv("TINYLLM_ISA");
        const std::string c = cap ? cap : "";
        const Isa limit = c == "generic" ? Isa::generic : c == "avx2" ? Isa::avx2 : Isa::avx512;
        return std::max(best, limit);  // the lesser of the two: the enum runs best first
    }();
    return isa;
}

// Unaligned load and store (memcpy compiles to one vmovups).
template <int W> TL_INLINE vfloat<W> vload(const float* p) {
    vfloat<W> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <int W> TL_INLINE void vstore(float* p, vfloat<W> v) { std::memcpy(p, &v, sizeof v); }
// The first n < W floats at p, the other lanes set to `fill`; and the store of the first n lanes.
template <int W> TL_INLINE vfloat<W> vload_partial(const float* p, int64_t n, float fill) {
    float t[W];
    TL_UNROLL for (int i = 0; i < W; ++i) t[i] = fill;
    std::memcpy(t, p, n * sizeof(float));
    return vload<W>(t);
}
template <int W> TL_INLINE void vstore_partial(float* p, vfloat<W> v, int64_t n) {
    float t[W];
    vstore<W>(t, v);
    std::memcpy(p, t, n * sizeof(float));
}
template <int W> TL_INLINE vfloat<W> vsplat(float s) { return vfloat<W>{} + s; }

template <int W> TL_INLINE vfloat<W> vmax(vfloat<W> a, vfloat<W> b) { return a > b ? a : b; }
template <int W> TL_INLINE vfloat<W> vmin(vfloat<W> a, vfloat<W> b) { return a < b ? a : b; }

template <int W> TL_INLINE float hsum(vfloat<W> v) {
    float s = 0.0f;
    TL_UNROLL for (int i = 0; i < W; ++i) s += v[i];
    return s;
}
template <int W> TL_INLINE float hmax(vfloat<W> v) {
    float m = v[0];
    TL_UNROLL for (int i = 1; i < W; ++i) m = v[i] > m ? v[i] : m;
    return m;
}

// exp(x) lane by lane, relative error ~2 ulp, exp(-inf) = 0 and exp(x < -87.3) = 0.
// x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2; exp(x) = 2^n exp(r), exp(r) from the
// classic Cephes minimax polynomial, 2^n built directly in the float's exponent bits. ln2 is split
// into a high part exact in float and a small correction so that r keeps its precision.
template <int W> TL_INLINE vfloat<W> vexp(vfloat<W> x) {
    using V = vfloat<W>;
    using I = vint<W>;
    const V lo = vsplat<W>(-87.33654f), hi = vsplat<W>(88.0f);
    V xc = vmin<W>(vmax<W>(x, lo), hi);
    const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    V n = (xc * 1.44269504088896341f + round_magic) - round_magic;
    V r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    V p = vsplat<W>(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    I bits = (__builtin_convertvector(n, I) + 127) << 23;
    V two_n;
    std::memcpy(&two_n, &bits, sizeof two_n);
    V y = p * two_n;
    return x < lo ? V{} : y;
}

}  // namespace tinyllm
