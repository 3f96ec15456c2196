// Philox4x32-10 on the device, and what the kernels that drop out need of it. The definition is
// tinyllm/backend/reference.py (philox4x32, dropout): element i of a tensor is kept where word i % 4
// of Philox at counter offset + i // 4, under the key seed, is at least p (its top 24 bits over 2^24)
// and is then multiplied by 1 / (1 - p). csrc/philox.h computes the same bits on the CPU.
#pragma once
#include "common.cuh"

namespace tinyllm::cuda {

// The four words of counter (lo, hi, 0, 0) under key (lo, hi) of seed.
__device__ __forceinline__ uint4 philox4x32_10(uint64_t counter, uint64_t seed) {
    uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
#pragma unroll
    for (int round = 0; round < 10; round++) {
        const uint32_t hi0 = __umulhi(c0, 0xD2511F53u), lo0 = c0 * 0xD2511F53u;
        const uint32_t hi1 = __umulhi(c2, 0xCD9E8D57u), lo1 = c2 * 0xCD9E8D57u;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return make_uint4(c0, c1, c2, c3);
}

// The uniform of a word is its top 24 bits over 2^24, kept where >= p: in integers, where the top 24
// bits are >= keep_threshold(p) = ceil(p 2^24) (exact: p 2^24 is a float32 scaled by a power of 2).
__device__ __forceinline__ uint32_t keep_threshold(float p) { return uint32_t(ceilf(p * 16777216.0f)); }

__device__ __forceinline__ float keep_factor(uint32_t word, uint32_t threshold, float scale) {
    return word >> 8 >= threshold ? scale : 0.0f;
}

// The factors z[i] of the four elements whose words are w (word i for element i) under an attention's dropout.
__device__ __forceinline__ void keep_factors(float (&z)[4], const uint4& w, const AttentionDropout& drop) {
    const uint32_t threshold = keep_threshold(drop.p);
    z[0] = keep_factor(w.x, threshold, drop.scale), z[1] = keep_factor(w.y, threshold, drop.scale);
    z[2] = keep_factor(w.z, threshold, drop.scale), z[3] = keep_factor(w.w, threshold, drop.scale);
}

// Word i (0..3) of w, i known only at run time (selects, not local memory).
__device__ __forceinline__ uint32_t word_of(const uint4& w, int i) {
    return i & 2 ? (i & 1 ? w.w : w.z) : (i & 1 ? w.y : w.x);
}

// A 4 x 4 transpose across four lanes of a warp, lane m = 0..3 at lane + (m - its m) * STRIDE: lane
// m holds the words of counter m, word i meant for lane i; each gets back word m of counters 0..3.
// Round t swaps with lane m ^ t: this lane's word m ^ t for it, its word m for this lane.
template <int STRIDE> __device__ __forceinline__ uint4 transpose4(const uint4& w, int m) {
    uint32_t got[4];
#pragma unroll
    for (int t = 0; t < 4; t++) got[t] = __shfl_xor_sync(0xffffffffu, word_of(w, m ^ t), t * STRIDE);
    const uint4 rounds = make_uint4(got[0], got[1], got[2], got[3]);  // round t brought counter m ^ t's word
    return make_uint4(word_of(rounds, m), word_of(rounds, m ^ 1), word_of(rounds, m ^ 2), word_of(rounds, m ^ 3));
}

// Where an attention call's dropout draws from (kernels.h: AttentionDropout): its probabilities in
// C order over (batch*head, T, S). For S a multiple of 4 (which the kernels require), keys 4c..4c+3
// of row r of batch*head bh share the counter base + (bh T + r) S / 4 + c, and key j takes word j % 4.
__device__ __forceinline__ uint64_t dropout_base(const AttentionDropout& d) {
    return d.offset + (d.shift ? *reinterpret_cast<const uint64_t*>(d.shift) : 0);
}

}  // namespace tinyllm::cuda
