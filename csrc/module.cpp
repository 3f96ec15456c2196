// The pybind11 module tinyllm._C: every CPU kernel, registered by the file that defines it.
//
// Kernels take NumPy float32 arrays that are C-contiguous (tinyllm/backend/cpu.py guarantees that)
// and write into output arrays the caller allocated. They release the GIL while they compute.
#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_features.h"
#include "kernels.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
    m.doc() = "tinyllm CPU kernels (C++17, OpenMP, AVX2/AVX-512 chosen at run time)";
    m.def("cpu_features", [] {
        py::dict d;
        d["avx2_fma"] = tinyllm::cpu_has_avx2_fma();
        d["avx512f"] = tinyllm::cpu_has_avx512f();
#ifdef _OPENMP
        d["openmp_threads"] = omp_get_max_threads();
#else
        d["openmp_threads"] = 1;
#endif
        return d;
    }, "The SIMD instruction sets and OpenMP threads the kernels will use.");
    tinyllm::register_kernels(m);
}
