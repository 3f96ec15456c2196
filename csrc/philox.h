// Philox4x32-10, the counter-based generator behind dropout (definition and reasons:
// tinyllm/backend/reference.py, philox4x32 and dropout): the four 32-bit words of counter (c0, c1, 0, 0)
// under the key (k0, k1), and the dropout factor one word gives.
#pragma once

#include <cstdint>

namespace tinyllm {

struct PhiloxWords {
    uint32_t w[4];
};

inline PhiloxWords philox4x32_10(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
    uint32_t c2 = 0, c3 = 0;
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = uint64_t(c0) * 0xD2511F53u, p1 = uint64_t(c2) * 0xCD9E8D57u;
        const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
        c1 = uint32_t(p1);
        c3 = uint32_t(p0);
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return {{c0, c1, c2, c3}};
}

// Element i of a dropout stream (seed, offset) is kept when its uniform (top 24 bits of word i % 4 of
// counter offset + i / 4, over 2^24) is >= p; the factor is then scale = 1 / (1 - p), else 0.
struct DropoutKey {
    float p, scale;
    uint64_t seed, offset;

    // out[0:n) = in[0:n) * the factors of elements first .. first + n of the stream (out may be in).
    void apply(const float* in, float* out, int64_t n, uint64_t first) const {
        const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
        const float threshold = p, kept = scale;  // locals: stores to out may not alias them
        for (int64_t j = 0; j < n;) {
            const uint64_t element = first + uint64_t(j), counter = offset + element / 4;
            const PhiloxWords r = philox4x32_10(uint32_t(counter), uint32_t(counter >> 32), k0, k1);
            for (int w = int(element % 4); w < 4 && j < n; ++w, ++j) {
                out[j] = in[j] * (float(r.w[w] >> 8) * (1.0f / 16777216.0f) >= threshold ? kept : 0.0f);
            }
        }
    }
};

}  // namespace tinyllm
