# Sourced by the cuda/dev_run_*.sh scripts on the GPU machine: print the card, build the extensions in
# place for Hopper (sm_90 and sm_90a; TINYLLM_CUDA_ARCHS changes that), and stop if tinyllm._cuda does
# not import. The build log goes to $OUT/build.log (OUT defaults to /tmp); BUILD_FLAGS adds setup.py flags.
set -o pipefail
OUT=${OUT:-/tmp}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader | tee $OUT/gpu.txt
start=$(date +%s)
TINYLLM_CUDA_ARCHS=${TINYLLM_CUDA_ARCHS:-90} TINYLLM_BUILD_JOBS=16 NVCC_APPEND_FLAGS="--threads 0" \
    python3 setup.py build_ext --inplace $BUILD_FLAGS > $OUT/build.log 2>&1
rc=$?; echo "build: $(( $(date +%s) - start )) s, rc $rc"; grep -E "tinyllm:|error" $OUT/build.log | head -30
python3 -c "import tinyllm._cuda" || exit 1
