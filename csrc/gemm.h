// Our SGEMM: C = alpha * op(A) op(B) (+ C), single precision, row-major, no BLAS underneath.
//
// op(A) is M x K and op(B) is K x N. Each operand is a row-major matrix with a leading dimension
// (the distance in floats between the starts of two stored rows):
//   trans_a == false: A is stored M x K, op(A)[i, p] = A[i * lda + p]
//   trans_a == true:  A is stored K x M, op(A)[i, p] = A[p * lda + i]
//   trans_b == false: B is stored K x N, op(B)[p, j] = B[p * ldb + j]
//   trans_b == true:  B is stored N x K, op(B)[p, j] = B[j * ldb + p]
// C is M x N with C[i, j] = C[i * ldc + j]; accumulate adds to it instead of overwriting it.
//
// sgemm uses every OpenMP thread, except when it is called from inside a parallel region (as the
// attention kernels do, one (batch, head) per thread): then it runs on the calling thread alone.
// gemm.cpp explains the blocking scheme and the micro-kernel.
#pragma once
#include <cstdint>

namespace tinyllm {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb,
           bool accumulate, float* C, int64_t ldc);

}  // namespace tinyllm
