// Sorting int64 keys on the device with CUB's radix sort (embedding backward sorts idx * N + n).
//
// CuPy's cupy.sort goes through Thrust, which waits for the device at the end of every sort: the
// host stalls once a step, and a CUDA graph can't capture it. CUB's DeviceRadixSort queues its
// passes on the stream and returns, so it does neither. Its scratch space comes from the caller
// (CuPy's pool), sized by sort_int64_scratch_bytes.
#include <cub/device/device_radix_sort.cuh>

#include "common.cuh"

namespace tinyllm::cuda {

int64_t sort_int64_scratch_bytes(int64_t n) {
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                              static_cast<int64_t*>(nullptr), n));
    return int64_t(bytes);
}

void sort_int64(uintptr_t keys_in, uintptr_t keys_out, int64_t n, uintptr_t scratch, int64_t scratch_bytes,
                uintptr_t stream) {
    size_t bytes = size_t(scratch_bytes);
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(reinterpret_cast<void*>(scratch), bytes,
                                              reinterpret_cast<const int64_t*>(keys_in),
                                              reinterpret_cast<int64_t*>(keys_out), n, 0, 64, as_stream(stream)));
}

}  // namespace tinyllm::cuda
