// Registration hooks: each kernel file defines one `register_*` function that adds its kernels to
// the module. To add a kernel file, declare its hook here and call it in register_kernels below.
#pragma once
#include <pybind11/pybind11.h>

namespace tinyllm {

void register_bpe(pybind11::module_& m);            // bpe_bindings.cpp: the BPE tokenizer's core
void register_gemm(pybind11::module_& m);           // gemm.cpp: matmul
void register_attention(pybind11::module_& m);      // attention.cpp: attention_forward, attention_backward
void register_softmax(pybind11::module_& m);        // softmax.cpp: softmax, log-softmax (fwd, bwd)
void register_norm(pybind11::module_& m);           // norm.cpp: layernorm, rmsnorm (fwd, bwd), fused with a residual add
void register_cross_entropy(pybind11::module_& m);  // cross_entropy.cpp: fused with log-softmax (fwd, bwd)
void register_activations(pybind11::module_& m);    // activations.cpp: GELU (exact, tanh), SiLU (fwd, bwd)
void register_embedding(pybind11::module_& m);      // embedding.cpp: embedding backward
void register_adamw(pybind11::module_& m);          // adamw.cpp: the fused AdamW update
void register_dropout(pybind11::module_& m);        // dropout.cpp: dropout by counter-based random numbers

inline void register_kernels(pybind11::module_& m) {
    register_bpe(m);
    register_gemm(m);
    register_attention(m);
    register_softmax(m);
    register_norm(m);
    register_cross_entropy(m);
    register_activations(m);
    register_embedding(m);
    register_adamw(m);
    register_dropout(m);
}

}  // namespace tinyllm
