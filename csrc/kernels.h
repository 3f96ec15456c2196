// Registration hooks: each kernel file defines one `register_*` function that adds its kernels to
// the module. To add a kernel file, declare its hook here and call it in register_kernels below.
#pragma once
#include <pybind11/pybind11.h>

namespace tinyllm {

void register_gemm(pybind11::module_& m);       // gemm.cpp: matmul
void register_attention(pybind11::module_& m);  // attention.cpp: attention_forward, attention_backward

inline void register_kernels(pybind11::module_& m) {
    register_gemm(m);
    register_attention(m);
}

}  // namespace tinyllm
