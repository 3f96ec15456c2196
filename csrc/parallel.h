// Splitting a kernel's work over OpenMP threads, two ways, and per-thread scratch memory.
//
// parallel_for(n, cost, f): f(begin, end, block) on contiguous ranges covering [0, n), one per
//   thread. `cost` is the work of one item (floats touched) and decides how many threads are worth
//   starting: small calls stay on the calling thread, where starting threads would cost more than
//   the work. Contiguous blocks keep each thread on its own cache lines, and a kernel that
//   accumulates per block (layernorm's dw, say) sums the blocks in a fixed order afterwards, so its
//   result does not depend on thread timing. For rows of equal cost (elementwise, norms, softmax).
// parallel_tasks(n, body): body(i) for i in [0, n), handed out one at a time to whichever thread is
//   free. For tasks of unequal cost (GEMM tiles, causal attention tiles). An exception must not
//   escape an OpenMP region (the program would terminate), so each task runs in a try block and the
//   first exception is rethrown on the calling thread.
// Inside a parallel region both run on the calling thread (no nested teams).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tinyllm {

constexpr int64_t kMinWorkPerThread = 1 << 14;

inline int max_threads() {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

// How many blocks parallel_for(n, cost, ...) will use.
inline int parallel_blocks(int64_t n, int64_t cost) {
    const int64_t worth = std::max<int64_t>(1, n * cost / kMinWorkPerThread);
    return static_cast<int>(std::min<int64_t>({worth, std::max<int64_t>(n, 1), max_threads()}));
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

template <class F>
void parallel_tasks(int64_t n, F&& body) {
    std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1 && max_threads() > 1)
    for (int64_t i = 0; i < n; ++i) {
        try {
            body(i);
        } catch (...) {
#pragma omp critical(tinyllm_parallel_tasks_error)
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

// Scratch memory owned by one thread (declare it thread_local), 64-byte aligned, grown on demand and
// kept for the next call, so a kernel called many times does not malloc each time.
class ScratchBuffer {
public:
    ScratchBuffer() = default;
    ScratchBuffer(const ScratchBuffer&) = delete;
    ScratchBuffer& operator=(const ScratchBuffer&) = delete;
    ~ScratchBuffer() { std::free(data_); }

    // At least n floats; the contents are whatever the last user left.
    float* get(size_t n) {
        if (n > size_) {
            std::free(data_);
            data_ = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
            size_ = data_ ? n : 0;
            if (!data_) throw std::bad_alloc();
        }
        return data_;
    }

private:
    float* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace tinyllm
