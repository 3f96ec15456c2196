// Tensor-core building blocks for the bf16 matrix kernels (matmul.cu, attention.cu), sm_80+:
// asynchronous 16-byte copies global -> shared (cp.async), 8x8 matrix loads shared -> registers in
// the layout the tensor cores want (ldmatrix, optionally transposed), and the warp-wide
// m16n8k16 bf16 multiply-accumulate in float32 (mma.sync).
//
// Fragment layouts of mma.m16n8k16 (lane = threadIdx.x % 32, g = lane / 4, q = lane % 4):
//   A (16x16, row-major): a[0] = A[g][2q..2q+1], a[1] = A[g+8][2q..], a[2] = A[g][2q+8..], a[3] = A[g+8][2q+8..]
//   B (16x8, "col"):      b[0] = B[2q..2q+1][g], b[1] = B[2q+8..][g]
//   C (16x8, float):      c[0..1] = C[g][2q..2q+1], c[2..3] = C[g+8][2q..2q+1]
#pragma once
#include "common.cuh"

namespace tinyllm::cuda {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Copy 16 bytes global -> shared without passing through registers; when `valid` is false the
// 16 bytes of shared memory are filled with zeros instead (the tile edge).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Four 8x8 bf16 matrices; lane l gives the address of row l % 8 of matrix l / 8. TRANS transposes
// each matrix on the way (for operands stored with the other dimension contiguous).
template <bool TRANS> __device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(smem_addr(smem)));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(smem_addr(smem)));
}

// c += a @ b on one 16x8x16 tile.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// An R x C tile of a row-major bf16 matrix (leading dimension ld, valid extent rows x cols) copied
// to shared memory with rows of C + PAD elements, 16 bytes per cp.async by THREADS threads.
// Chunks outside the valid extent are zero-filled (cols must be a multiple of 8).
template <int R, int C, int THREADS, int PAD>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* g, int64_t ld, int64_t row0, int64_t col0, int64_t rows,
                                          int64_t cols) {
    constexpr int chunks_per_row = C / 8;
#pragma unroll
    for (int i = threadIdx.x; i < R * chunks_per_row; i += THREADS) {
        const int r = i / chunks_per_row, c = (i % chunks_per_row) * 8;
        const bool valid = row0 + r < rows && col0 + c < cols;
        cp_async16(s + r * (C + PAD) + c, valid ? g + (row0 + r) * ld + col0 + c : g, valid);
    }
}

// Two floats packed as a bf16 pair (the A operand register format).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

}  // namespace tinyllm::cuda
