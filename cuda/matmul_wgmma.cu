// Our Hopper GEMM (sm_90a): row-major C[b] = op(A[b]) @ op(B[b]) in bf16 with float32 accumulation,
// on wgmma (the warpgroup-wide asynchronous tensor-core instruction) fed by TMA (the bulk tensor
// copy engine). matmul() in matmul.cu calls it first and falls back to the mma.sync kernel where
// it is not available (another GPU, a build without the sm_90a target, or a C that TMA can't write).
//
// Work split. A persistent grid (one 384-thread block per SM) walks the 128 x 256 tiles of C in a
// grouped order: kGroup tiles down M, then the next column, so the blocks running at one time
// share their A rows and B columns in L2. When there are too few tiles to fill the SMs and K is
// long (the weight gradients, K = tokens), K is split as well: each split writes float32 partial
// sums to the workspace and a small kernel adds them up into C (plan_splits picks the count).
// Each block has three warpgroups with fixed roles (warp specialisation):
// - warpgroup 0, the producer: one thread issues the TMA copies of the A and B tiles of each
//   64-wide K step into a ring of kStages shared-memory stages;
// - warpgroups 1 and 2, the consumers: each owns 64 rows of the tile and multiplies them with
//   wgmma.m64n256k16 (4 per K step), accumulating in registers (128 floats per thread), then
//   stages its 64 x 256 block of C in shared memory as bf16 and hands it to TMA stores, which
//   drain while the consumers start on their next tile.
// `setmaxnreg` moves registers from the producer (40) to the consumers (232).
//
// Synchronisation: each stage has two mbarriers. `full` completes when the TMA has written the
// stage's bytes (the producer announces the byte count with arrive.expect_tx); `empty` completes
// when all 8 consumer warps have finished reading it. Consumers keep one K step of wgmma in flight
// (wait_group 1) and release a stage only once the wgmmas reading it are done.
//
// Shared-memory layout (the 128-byte-swizzle format that wgmma reads and TMA writes). An operand
// tile is stored one of two ways, whichever matches its layout in global memory, so all four
// transpose combinations run at full speed without a transposing copy:
// - K-major (A stored M x K, B stored N x K): rows of 64 K values = 128 bytes, 8-row groups 1024
//   bytes apart; one TMA box {64 K, rows}. wgmma walks K by moving the start address 32 bytes.
// - MN-major (A stored K x M, B stored K x N): chunks of 64 M (or N) values x 64 K rows, each one
//   TMA box {64 MN, 64 K} of 8 KB; wgmma reads it with the transpose flag, 8-K-row groups 1024
//   bytes apart (SBO), chunks 8 KB apart (LBO); K moves 16 rows = 2 KB per wgmma.
// In both, the hardware XORs byte-address bits 4-6 with bits 7-9 (the swizzle), so the 8 rows of
// an 8 x 16-byte core matrix sit in different banks; tiles are 1024-byte aligned for it.
//
// Edges: TMA loads fill out-of-range elements with zeros (they add nothing to the sums) and TMA
// stores skip them. Requirements: those of matmul_supported (bf16, 16-byte aligned operands, each
// one's contiguous dimension and batch stride a multiple of 8), and the same of C.

#include <map>
#include <mutex>

#include "hopper.cuh"

namespace tinyllm::cuda {
namespace {

constexpr int BM = 128, BN = 256, BK = 64, kThreads = 384, kStages = 4;
constexpr int kRowBytes = BK * 2;                                  // one K-major row: 64 bf16, the swizzle span
constexpr int kABytes = BM * kRowBytes, kStageBytes = kABytes + BN * kRowBytes;  // 16 + 32 KB
constexpr int kOutBytes = 2 * 64 * 64 * 2;                         // a consumer's C staging: two 64 x 64 chunks
constexpr int kSmem = kStages * kStageBytes + 2 * kOutBytes + 1024 /* alignment slack */ + 2 * kStages * 8;

#ifdef __CUDA_ARCH_FEAT_SM90_ALL
__device__ int wgmma_compiled = 1;  // which cubin the driver loaded: read by matmul_wgmma_available()

constexpr int kChunkBytes = 64 * kRowBytes;  // one MN-major chunk: 64 K rows of 64 M (or N) values
constexpr int kGroup = 8;

// Which tile of C the t-th work item is: kGroup row-tiles down, then the next column of tiles.
struct TileOrder {
    int mt, nt;  // tiles along M and N
    __device__ void at(int64_t t, int& batch, int& m0, int& n0) const {
        const int64_t per_batch = int64_t(mt) * nt;
        batch = int(t / per_batch);
        const int r = int(t % per_batch), first = r / (kGroup * nt) * kGroup, rows = min(kGroup, mt - first);
        m0 = (first + (r % (kGroup * nt)) % rows) * BM;
        n0 = (r % (kGroup * nt)) / rows * BN;
    }
};

// d (64 x 256, float32, in the accumulator layout) += A (64 x 16) @ B (16 x 256), both read from
// shared memory through their descriptors; TA / TB = 1 for an MN-major operand.
template <int TA, int TB> __device__ __forceinline__ void wgmma(float (&d)[128], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
        "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
        "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
        "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"
        "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
        "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,"
        "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"
        "}, %128, %129, p, 1, 1, %130, %131;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "n"(TA), "n"(TB));
}

// The epilogue of one consumer warpgroup: its 64 x 256 block of accumulators goes out as OutT
// (bf16 for C, float32 for a split-K slice) through `staging` and TMA stores to `map` at
// (n0, m0, z). Each pass stages two chunks of 64 rows x 128 bytes in the 128-byte-swizzle layout
// (16-byte unit u of row r sits at u ^ (r % 8), so a warp's writes spread over the banks) and hands
// them to TMA; the stores drain while the warpgroup starts on its next tile.
// Accumulator layout of m64n256: acc[4j + 2h + i] is row 16 warp + lane / 4 + 8h, column 8j + 2 (lane % 4) + i.
template <typename OutT>
__device__ __forceinline__ void store_tile(const float (&acc)[128], unsigned char* staging, const CUtensorMap* map,
                                           int n0, int m0, int z, int tid, int barrier) {
    constexpr int chunk_cols = 128 / sizeof(OutT), pass_cols = 2 * chunk_cols;
    const int warp = tid / 32, lane = tid % 32;
#pragma unroll
    for (int pass = 0; pass < BN / pass_cols; pass++) {
        if (tid == 0) bulk_wait_read();  // the previous stores have read the staging buffer
        warpgroup_sync(barrier);
#pragma unroll
        for (int j = 0; j < pass_cols / 8; j++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = warp * 16 + lane / 4 + 8 * h, col = 8 * j + 2 * (lane % 4);  // col: inside the pass
                const int byte = col % chunk_cols * int(sizeof(OutT));
                unsigned char* at = staging + col / chunk_cols * kChunkBytes + row * 128 + ((byte / 16) ^ (row % 8)) * 16 + byte % 16;
                const int k = 4 * (pass * pass_cols / 8 + j) + 2 * h;
                if constexpr (sizeof(OutT) == 4) *reinterpret_cast<float2*>(at) = make_float2(acc[k], acc[k + 1]);
                else *reinterpret_cast<__nv_bfloat162*>(at) = __floats2bfloat162_rn(acc[k], acc[k + 1]);
            }
        fence_proxy_async();
        warpgroup_sync(barrier);
        if (tid == 0) {
            for (int c = 0; c < 2; c++) tma_store(map, staging + c * kChunkBytes, n0 + pass * pass_cols + c * chunk_cols, m0, z);
            bulk_commit();
        }
    }
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// TA: A is stored K x M (MN-major); TB: B is stored N x K (K-major). See the top of the file.
template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                      const __grid_constant__ CUtensorMap map_c, const __grid_constant__ CUtensorMap map_partial,
                      int splits, GemmShape s) {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
    extern __shared__ unsigned char smem_raw[];
    unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * kStageBytes + 2 * kOutBytes);
    uint64_t* empty = full + kStages;
    if (threadIdx.x == 0) {
        for (int i = 0; i < kStages; i++) {
            mbar_init(&full[i], 1);   // the producer's arrive.expect_tx
            mbar_init(&empty[i], 8);  // one arrive per consumer warp
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");  // visible to the TMA unit
    }
    __syncthreads();

    const TileOrder order{int((s.M + BM - 1) / BM), int((s.N + BN - 1) / BN)};
    const int64_t tiles = s.batch * order.mt * order.nt, items = tiles * splits;
    const int ktiles = int((s.K + BK - 1) / BK);
    // Work item t: tile t % tiles over the K steps of split t / tiles (so that the blocks running at
    // one time work on one K range and share its A and B in L2).
    auto k_range = [&](int64_t t, int& kt0, int& kt1) {
        const int split = int(t / tiles);
        kt0 = int(int64_t(ktiles) * split / splits), kt1 = int(int64_t(ktiles) * (split + 1) / splits);
    };
    int stage = 0;
    uint32_t phase = 0;  // parity of the ring's current lap
    auto advance = [&] {
        if (++stage == kStages) stage = 0, phase ^= 1;
    };

    if (threadIdx.x < 128) {  // producer warpgroup: one thread issues every copy
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x != 0) return;
        for (int64_t t = blockIdx.x; t < items; t += gridDim.x) {
            int b, m0, n0, kt0, kt1;
            order.at(t % tiles, b, m0, n0);
            k_range(t, kt0, kt1);
            const int ba = s.stride_a ? b : 0, bb = s.stride_b ? b : 0;
            for (int kt = kt0; kt < kt1; kt++, advance()) {
                mbar_wait(&empty[stage], phase ^ 1);  // the consumers have released this stage's last lap
                unsigned char* a = smem + stage * kStageBytes;
                unsigned char* bt = a + kABytes;
                mbar_expect_tx(&full[stage], kStageBytes);
                const int k0 = kt * BK;
                if (TA)
                    for (int j = 0; j < BM / 64; j++) tma_load(a + j * kChunkBytes, &map_a, &full[stage], m0 + 64 * j, k0, ba);
                else tma_load(a, &map_a, &full[stage], k0, m0, ba);
                if (TB) tma_load(bt, &map_b, &full[stage], k0, n0, bb);
                else
                    for (int j = 0; j < BN / 64; j++) tma_load(bt + j * kChunkBytes, &map_b, &full[stage], n0 + 64 * j, k0, bb);
            }
        }
        return;
    }

    // Consumer warpgroups: rows half * 64 .. + 63 of each tile.
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int half = threadIdx.x / 128 - 1, tid = threadIdx.x % 128, lane = tid % 32;
    unsigned char* staging = smem + kStages * kStageBytes + half * kOutBytes;
    for (int64_t t = blockIdx.x; t < items; t += gridDim.x) {
        int b, m0, n0, kt0, kt1;
        order.at(t % tiles, b, m0, n0);
        k_range(t, kt0, kt1);
        float acc[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;
        fence_operands(acc);
        int held = -1;  // the stage whose wgmmas may still be reading it
        for (int kt = kt0; kt < kt1; kt++, advance()) {
            mbar_wait(&full[stage], phase);
            const uint32_t a = smem_addr(smem + stage * kStageBytes), bt = a + kABytes;
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                const uint64_t da = TA ? smem_desc(a + half * kChunkBytes + kk * 16 * kRowBytes, kChunkBytes)
                                       : smem_desc(a + half * 64 * kRowBytes + kk * 32, 16);
                const uint64_t db = TB ? smem_desc(bt + kk * 32, 16) : smem_desc(bt + kk * 16 * kRowBytes, kChunkBytes);
                wgmma<TA ? 1 : 0, TB ? 0 : 1>(acc, da, db);
            }
            wgmma_commit();
            wgmma_wait<1>();  // the previous step's wgmmas are done: release their stage
            if (held >= 0) {
                __syncwarp();
                if (lane == 0) mbar_arrive(&empty[held]);
            }
            held = stage;
        }
        wgmma_wait<0>();
        fence_operands(acc);
        if (held >= 0) {
            __syncwarp();
            if (lane == 0) mbar_arrive(&empty[held]);
        }
        // Epilogue: bf16 into C, or float32 into this split's slice of the workspace.
        if (splits == 1) store_tile<bf16>(acc, staging, &map_c, n0, m0 + half * 64, b, tid, 1 + half);
        else store_tile<float>(acc, staging, &map_partial, n0, m0 + half * 64, int(t / tiles), tid, 1 + half);
    }
    if (tid == 0) bulk_wait();  // the last stores are done before the block's shared memory goes
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// Split-K's last step: C = the sum of the `splits` float32 slices of `partial`, n elements each
// (n even), two at a time.
__global__ void sum_splits_kernel(const float* __restrict__ partial, bf16* __restrict__ C, int64_t n, int splits) {
    for (int64_t i = 2 * (int64_t(blockIdx.x) * blockDim.x + threadIdx.x); i < n; i += 2 * int64_t(gridDim.x) * blockDim.x) {
        float2 sum = *reinterpret_cast<const float2*>(partial + i);
        for (int k = 1; k < splits; k++) {
            const float2 v = *reinterpret_cast<const float2*>(partial + k * n + i);
            sum.x += v.x, sum.y += v.y;
        }
        *reinterpret_cast<__nv_bfloat162*>(C + i) = __floats2bfloat162_rn(sum.x, sum.y);
    }
}

#ifndef __CUDA_ARCH_FEAT_SM90_ALL
__device__ int wgmma_compiled = 0;
#endif

// ---- host side ------------------------------------------------------------------------------

// How many K splits keep the SMs busiest: the work items fill ceil(items / sms) waves; the
// efficiency is the filled fraction of those waves, discounted 3% for each extra split (the float32
// slices written and summed). Splits only for one unbatched GEMM whose slices fit the workspace,
// each split at least 512 deep in K.
int plan_splits(const GemmShape& s, int sms, int64_t workspace_bytes) {
    const int64_t tiles = s.batch * ceil_div(s.M, BM) * ceil_div(s.N, BN);
    int best = 1;
    double best_eff = -1.0;
    for (int splits = 1; splits <= 16; splits++) {
        if (splits > 1 && (s.batch != 1 || s.K / splits < 512 || splits * s.M * s.N * 4 > workspace_bytes)) break;
        const int64_t items = tiles * splits, waves = (items + sms - 1) / sms;
        const double eff = double(items) / double(waves * sms) * (1.0 - 0.03 * (splits - 1));
        if (eff > best_eff) best_eff = eff, best = splits;
    }
    return best;
}

template <bool TA, bool TB>
void launch(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, int splits, float* partial, int sms,
            cudaStream_t st) {
    const CUtensorMap map_a = TA ? tensor_map(a, s.M, s.K, s.batch, s.stride_a, 64)
                                 : tensor_map(a, s.K, s.M, s.batch, s.stride_a, BM);
    const CUtensorMap map_b = TB ? tensor_map(b, s.K, s.N, s.batch, s.stride_b, BN)
                                 : tensor_map(b, s.N, s.K, s.batch, s.stride_b, 64);
    const CUtensorMap map_c = tensor_map(c, s.N, s.M, s.batch, s.stride_c, 64);
    const CUtensorMap map_partial = splits > 1 ? tensor_map(uintptr_t(partial), s.N, s.M, splits, s.M * s.N, 64, true) : map_c;
    auto kernel = gemm_wgmma_kernel<TA, TB>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    const int64_t items = s.batch * ceil_div(s.M, BM) * ceil_div(s.N, BN) * splits;
    kernel<<<unsigned(std::min<int64_t>(items, sms)), kThreads, kSmem, st>>>(map_a, map_b, map_c, map_partial, splits, s);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

bool matmul_wgmma_available() {
    static std::mutex lock;
    static std::map<int, bool> known;  // per device
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> guard(lock);
    auto it = known.find(dev);
    return it != known.end() ? it->second : known[dev] = sm90a_cubin_runs(dev, &wgmma_compiled);
}

bool matmul_wgmma(uintptr_t a, uintptr_t b, uintptr_t c, const GemmShape& s, uintptr_t workspace,
                  int64_t workspace_bytes, uintptr_t stream) {
    // C is written by TMA: 16-byte aligned, rows and batch stride a multiple of 8 elements.
    if (c % 16 != 0 || s.N % 8 != 0 || s.stride_c % 8 != 0 || !matmul_wgmma_available()) return false;
    int dev = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int splits = plan_splits(s, sms, workspace % 16 == 0 ? workspace_bytes : 0);
    float* partial = reinterpret_cast<float*>(workspace);
    const cudaStream_t st = as_stream(stream);
    if (s.trans_a) (s.trans_b ? launch<true, true> : launch<true, false>)(a, b, c, s, splits, partial, sms, st);
    else (s.trans_b ? launch<false, true> : launch<false, false>)(a, b, c, s, splits, partial, sms, st);
    if (splits > 1) {
        sum_splits_kernel<<<2 * sms, 512, 0, st>>>(partial, (bf16*)c, s.M * s.N, splits);
        CUDA_CHECK_LAUNCH();
    }
    return true;
}

}  // namespace tinyllm::cuda
