// What attention.cu (tensor cores, bfloat16 and float16) shares with attention_fp32.cu (CUDA cores,
// float32): the arguments of one call, and the float32 launches that attention.cu dispatches to.
#pragma once
#include "philox.cuh"

namespace tinyllm::cuda {

// Device pointers and sizes of one attention call (see kernels.h); the backward-only ones are 0 in
// a forward call. With dropout (drop.p > 0) S is a multiple of 4 (see AttentionDropout in kernels.h).
struct AttentionArgs {
    uintptr_t q, k, v, o, lse, dout, dq, dk, dv, scratch;
    int64_t BH;
    int T, S, D;
    bool causal;
    float scale;
    DType dt;
    AttentionDropout drop;  // p = 0: no dropout
};

void attention_forward_f32(const AttentionArgs& a, cudaStream_t st);
void attention_backward_f32(const AttentionArgs& a, cudaStream_t st);

}  // namespace tinyllm::cuda
