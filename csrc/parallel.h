// Splitting a kernel's work over OpenMP threads.
//
// parallel_for(n, cost, f) calls f(begin, end, block) for `blocks` contiguous ranges covering
// [0, n), one per thread; `cost` is the work of one item (floats touched) and decides how many
// threads are worth starting: small calls stay on the calling thread, where starting threads would
// cost more than the work. Contiguous blocks keep each thread on its own cache lines, and a kernel
// that accumulates per block (layernorm's dw, say) sums the blocks in a fixed order afterwards, so
// its result does not depend on thread timing.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tinyllm {

constexpr int64_t kMinWorkPerThread = 1 << 14;

// How many blocks parallel_for(n, cost, ...) will use.
inline int parallel_blocks(int64_t n, int64_t cost) {
#ifdef _OPENMP
    const int64_t worth = std::max<int64_t>(1, n * cost / kMinWorkPerThread);
    return static_cast<int>(std::min<int64_t>({worth, std::max<int64_t>(n, 1), omp_get_max_threads()}));
#else
    (void)n, (void)cost;
    return 1;
#endif
}

template <class F>
void parallel_for(int64_t n, int64_t cost, F&& f) {
    const int blocks = parallel_blocks(n, cost);
    if (blocks == 1) {
        f(int64_t{0}, n, 0);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(blocks)
    for (int b = omp_get_thread_num(); b < blocks; b += omp_get_num_threads()) {
        f(n * b / blocks, n * (b + 1) / blocks, b);
    }
#endif
}

}  // namespace tinyllm
