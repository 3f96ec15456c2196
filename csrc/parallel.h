// Threads for the kernels: parallel_for over independent tasks, and per-thread scratch memory.
//
// An exception must not escape an OpenMP region (the program would terminate), so parallel_for runs
// each task in a try block, keeps the first exception, and rethrows it on the calling thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tinyllm {

inline int max_threads() {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

// Runs body(i) for i in [0, n), tasks handed out one at a time to whichever thread is free.
template <class F>
void parallel_for(int64_t n, F&& body) {
    std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1 && max_threads() > 1)
    for (int64_t i = 0; i < n; ++i) {
        try {
            body(i);
        } catch (...) {
#pragma omp critical(tinyllm_parallel_for_error)
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
