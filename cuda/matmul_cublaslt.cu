// The comparison GEMM: the same contract as matmul.cu (row-major, batched, transposes), served by
// NVIDIA's cuBLASLt, for float32 (true fp32, no TF32) and bf16 (fp32 accumulation).
//
// cuBLASLt is column-major. A row-major matrix is the column-major view of its transpose, so
// row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: we hand cuBLASLt our B as its
// first operand and our A as its second, each with its stored shape and the transpose flag we got.
// A plan (descriptors and the heuristic's algorithm) is made once per shape, dtype and operand
// alignment and kept; the workspace comes from the caller (CuPy's pool). One handle, for the
// device current at the first call. Built only where setup.py finds cuBLASLt (TINYLLM_CUBLASLT).
//
// With a bias (a linear layer's, one per column of row-major C), the GEMM adds it in its epilogue
// (CUBLASLT_EPILOGUE_BIAS): column-major C^T has one row per output feature, which is the axis
// cuBLASLt's bias runs along, so the bias is added while C's tile is still in registers instead of
// by a second pass over C.
#include "common.cuh"

#ifdef TINYLLM_CUBLASLT
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

namespace tinyllm::cuda {
namespace {

void check_cublas(cublasStatus_t st, const char* what, const char* file, int line) {
    if (st != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) + " (" + what +
                                 "): status " + std::to_string(int(st)));
}
#define CUBLAS_CHECK(call) check_cublas((call), #call, __FILE__, __LINE__)

cublasLtHandle_t handle() {
    static cublasLtHandle_t h = [] {
        cublasLtHandle_t created;
        CUBLAS_CHECK(cublasLtCreate(&created));
        return created;
    }();
    return h;
}

struct Plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t first, second, out;  // cuBLASLt's A (our B), B (our A), C/D
    cublasLtMatmulAlgo_t algo;
};

// The largest power of two (up to 256) dividing a pointer: cuBLASLt picks kernels by it.
uint32_t alignment(uintptr_t p) { return p == 0 ? 256u : std::min<uint32_t>(256u, uint32_t(p & (~p + 1))); }

cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                              int64_t stride) {
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
    const int32_t count = static_cast<int32_t>(batch);
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    return l;
}

Plan make_plan(const GemmShape& s, DType dt, uint32_t align_a, uint32_t align_b, uint32_t align_c, int64_t ws_bytes,
               bool bias) {
    const cudaDataType_t type = dt == DType::f32 ? CUDA_R_32F : dt == DType::bf16 ? CUDA_R_16BF : CUDA_R_16F;
    Plan p;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    if (bias) {  // the bias has C's dtype; its pointer is set at each call
        const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof(type)));
    }
    const cublasOperation_t op_first = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_second = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
    // Stored column-major shapes: our B is N x K (K x N when transposed), our A is K x M (M x K), C is N x M.
    p.first = s.trans_b ? layout(type, s.K, s.N, s.K, s.batch, s.stride_b) : layout(type, s.N, s.K, s.N, s.batch, s.stride_b);
    p.second = s.trans_a ? layout(type, s.M, s.K, s.M, s.batch, s.stride_a) : layout(type, s.K, s.M, s.K, s.batch, s.stride_a);
    p.out = layout(type, s.N, s.M, s.N, s.batch, s.stride_c);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = static_cast<uint64_t>(ws_bytes);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_b, sizeof(align_b)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_a, sizeof(align_a)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle(), p.desc, p.first, p.second, p.out, p.out, pref, 1, &result, &found));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (found == 0) throw std::runtime_error("tinyllm._cuda.matmul_cublaslt: cuBLASLt found no algorithm for this shape");
    p.algo = result.algo;
    return p;
}

}  // namespace

bool have_cublaslt() { return true; }

void matmul_cublaslt(uintptr_t a, uintptr_t b, uintptr_t c, uintptr_t bias, const GemmShape& s, DType dt,
                     uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
    if (s.batch == 0 || s.M == 0 || s.N == 0) return;
    if (dt != DType::f32 && dt != DType::bf16 && dt != DType::f16)
        throw std::invalid_argument("matmul_cublaslt: float32, bfloat16 or float16");
    static std::mutex lock;
    if (bias != 0 && bias % 16 != 0) throw std::invalid_argument("matmul_cublaslt: the bias must be 16-byte aligned");
    static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, int, uint32_t,
                               uint32_t, uint32_t, int64_t, bool>,
                    Plan>
        plans;
    const uint32_t aa = alignment(a), ab = alignment(b), ac = alignment(c);
    const auto key = std::make_tuple(s.batch, s.M, s.N, s.K, s.trans_a, s.trans_b, s.stride_a, s.stride_b, s.stride_c,
                                     int(dt), aa, ab, ac, workspace_bytes, bias != 0);
    // Held until the call is queued: a plan's descriptor carries this call's bias pointer.
    std::lock_guard<std::mutex> guard(lock);
    auto it = plans.find(key);
    if (it == plans.end()) it = plans.emplace(key, make_plan(s, dt, aa, ab, ac, workspace_bytes, bias != 0)).first;
    const Plan* plan = &it->second;
    if (bias != 0) {
        const void* pointer = reinterpret_cast<const void*>(bias);
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &pointer, sizeof(pointer)));
    }
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(handle(), plan->desc, &alpha, (const void*)b, plan->first, (const void*)a, plan->second,
                                &beta, (void*)c, plan->out, (void*)c, plan->out, &plan->algo, (void*)workspace,
                                static_cast<size_t>(workspace_bytes), as_stream(stream)));
}

}  // namespace tinyllm::cuda

#else  // built without cuBLASLt

namespace tinyllm::cuda {
bool have_cublaslt() { return false; }
void matmul_cublaslt(uintptr_t, uintptr_t, uintptr_t, uintptr_t, const GemmShape&, DType, uintptr_t, int64_t, uintptr_t) {
    throw std::runtime_error("tinyllm._cuda was built without cuBLASLt");
}
}  // namespace tinyllm::cuda

#endif
