// parallel_for: OpenMP over a range of independent tasks, with C++ exceptions carried out safely.
//
// An exception must not escape an OpenMP region (the program would terminate), so each task runs in
// a try block, the first exception is kept, and it is rethrown on the calling thread afterwards.
#pragma once
#include <cstdint>
#include <exception>

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

}  // namespace tinyllm
