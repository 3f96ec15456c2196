// How the kernels in this folder use SIMD, and the float32 math they vectorise.
//
// A kernel's inner loops are plain C++ over floats, written so the compiler can vectorise them
// (no branches, no calls into libm), inside functions marked TINYLLM_SIMD. That attribute is GCC's
// `target_clones`: the function is compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 +
// FMA) and the x86-64 baseline (SSE2), and the dynamic loader picks the clone the running CPU
// supports (the same cpuid checks as cpu_features.h; glibc's ifunc does the dispatch). So one build
// runs on any x86-64 CPU, and other compilers, C libraries or CPUs get the portable loop,
// auto-vectorised for whatever they target.
//
// Sums and maxima over a row are written as `#pragma omp simd reduction(...)` loops, which allows the
// compiler to reorder them into SIMD lanes (plain float loops must add in order and stay scalar).
// OpenMP *parallel* regions stay outside TINYLLM_SIMD functions: the body of a parallel region is
// outlined into a separate function that would not inherit the clone's instruction set.
//
// exp and erf below are branch-free float32 approximations (selects compile to blends), good
// to a few units in the last place; the tests compare every kernel built on them to NumPy.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define TINYLLM_SIMD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TINYLLM_SIMD
#endif

namespace tinyllm {

inline float float_from_bits(int32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in a
// high and a low part so r is exact), exp(r) by the Cephes degree-7 polynomial, 2^n built from its
// exponent bits. Underflow gives 0 and overflow +inf; NaN stays NaN. Error <= 2 ulp.
inline float exp_approx(float x) {
    const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
    float n = (x * 1.44269504088896341f + kMagic) - kMagic;
    n = n > 127.0f ? 127.0f : n;
    n = n < -126.0f ? -126.0f : n;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float y = p * float_from_bits((static_cast<int32_t>(n) + 127) << 23);
    y = x < -87.33654f ? 0.0f : y;
    y = x > 88.72283f ? std::numeric_limits<float>::infinity() : y;
    return y;
}

// erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4] (erf is +-1 in float32 beyond), the rational approximation
// of Eigen / XLA. Absolute error < 5e-7.
inline float erf_approx(float x) {
    x = x > 4.0f ? 4.0f : x;
    x = x < -4.0f ? -4.0f : x;
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

// Row reductions, inlined into the TINYLLM_SIMD kernels that call them (and vectorised there).

inline float row_max(const float* x, int64_t n) {
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
    return m;
}

// sum of exp(x[i] - m), also stored to e[i] when e is not null.
inline float exp_sum(const float* x, float m, float* e, int64_t n) {
    float s = 0.0f;
    if (e) {
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) {
            e[i] = exp_approx(x[i] - m);
            s += e[i];
        }
    } else {
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < n; ++i) s += exp_approx(x[i] - m);
    }
    return s;
}

}  // namespace tinyllm
