// Which SIMD instruction sets this CPU has, asked once at run time.
//
// Kernels compile a portable baseline plus AVX2/AVX-512 variants (GCC/Clang `target` attributes) and
// choose among them with these checks, so one binary runs on any x86-64 CPU.
#pragma once

namespace tinyllm {

#if defined(__x86_64__) || defined(_M_X64)
inline bool cpu_has_avx2_fma() {
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
}
inline bool cpu_has_avx512f() {
    static const bool has = __builtin_cpu_supports("avx512f");
    return has;
}
#else
inline bool cpu_has_avx2_fma() { return false; }
inline bool cpu_has_avx512f() { return false; }
#endif

}  // namespace tinyllm
