"""Build tinyllm's compiled kernels.

`tinyllm._C` is every C++ file in csrc/, compiled with C++17 and -O3, and with OpenMP when the compiler
has it. The SIMD code inside picks AVX2 or AVX-512 at run time (see csrc/cpu_features.h), so one build
runs on any x86-64 CPU. The extension is optional: if it fails to build, tinyllm still installs and
runs everything on the pure-NumPy reference backend, and says so when imported.

`tinyllm._cuda` (the CUDA block below) is every cuda/*.cu file compiled by nvcc, plus the pybind11
binding cuda/module.cpp compiled by the C++ compiler; it is built only where nvcc is found, and is
optional in the same way.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup


def compiler_accepts(compiler, flag):
    """True when the C++ compiler compiles and links a tiny OpenMP-using program with `flag`."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=[flag])
        except Exception:
            return False
    return True


# ---- CUDA: tinyllm._cuda ---------------------------------------------------------------------
# nvcc compiles each cuda/*.cu to an object (in parallel), for sm_80, sm_90 and sm_90a (Hopper's
# arch-specific target, which the wgmma GEMM needs) plus sm_90 PTX (TINYLLM_CUDA_ARCHS="90" builds
# sm_90 and sm_90a only, for a quicker development build); the host compiler
# compiles cuda/module.cpp and links everything with the static CUDA runtime and, where found,
# cuBLASLt. TINYLLM_NO_CUDA=1 skips the whole block.

def find_cuda():
    """(nvcc, CUDA root) or None, with the reason printed once."""
    if os.environ.get("TINYLLM_NO_CUDA") == "1":
        print("tinyllm: TINYLLM_NO_CUDA=1, skipping the CUDA kernels (tinyllm._cuda)", file=sys.stderr)
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = os.path.join(home, "bin", "nvcc") if home else shutil.which("nvcc")
    if not nvcc or not os.path.exists(nvcc):
        print("tinyllm: nvcc not found, skipping the CUDA kernels (tinyllm._cuda)", file=sys.stderr)
        return None
    root = home or os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    if not os.path.exists(os.path.join(root, "include", "cuda_runtime.h")):
        root = "/usr/local/cuda"  # nvcc was a wrapper script outside the toolkit
    return nvcc, root


def find_cublaslt(root):
    """(include dir, library dir, library file name) of cuBLASLt in the toolkit or NVIDIA's wheel, or None."""
    site = sysconfig.get_paths()["purelib"]
    for inc, lib in [(f"{root}/include", f"{root}/lib64"), (f"{root}/include", f"{root}/lib"),
                     (f"{site}/nvidia/cublas/include", f"{site}/nvidia/cublas/lib"),
                     (f"{site}/nvidia/cu13/include", f"{site}/nvidia/cu13/lib")]:
        libs = sorted(glob.glob(f"{lib}/libcublasLt.so*"), key=len)
        if os.path.exists(f"{inc}/cublasLt.h") and libs:
            return inc, lib, os.path.basename(libs[0])
    return None


def cuda_extension():
    found = find_cuda()
    if found is None:
        return []
    nvcc, root = found
    archs = os.environ.get("TINYLLM_CUDA_ARCHS", "80;90").split(";")
    flags = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC", "-Icuda", f"-I{root}/include"]
    flags += [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    if "90" in archs:  # Hopper's own instructions (wgmma, setmaxnreg) for matmul_wgmma.cu
        flags += ["-gencode=arch=compute_90a,code=sm_90a"]
    flags += [f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    ext = Pybind11Extension(
        "tinyllm._cuda", ["cuda/module.cpp"], include_dirs=["cuda", f"{root}/include"], cxx_std=17,
        extra_compile_args=["-O3"], library_dirs=[f"{root}/lib64", f"{root}/lib"],
        libraries=["cudart_static", "dl", "rt", "pthread"], optional=True)
    lt = find_cublaslt(root)
    if lt is None:
        print("tinyllm: cuBLASLt not found; tinyllm._cuda is built without the cuBLASLt GEMM", file=sys.stderr)
    else:
        inc, lib, name = lt
        flags += ["-DTINYLLM_CUBLASLT", f"-I{inc}"]
        ext.extra_link_args += [f"-L{lib}", f"-l:{name}", f"-Wl,-rpath,{lib}"]
    ext.nvcc = (nvcc, flags, sorted(glob.glob("cuda/*.cu")))
    # The objects nvcc makes join the link as extra objects, which setuptools does not check for
    # changes: name the CUDA sources as dependencies, or an edited .cu is compiled but not linked.
    ext.depends += sorted(glob.glob("cuda/*.cu") + glob.glob("cuda/*.cuh") + glob.glob("cuda/*.h"))
    return [ext]


def compile_cuda(ext, build_temp):
    """nvcc each .cu of `ext` into build_temp, in parallel; the objects join the link."""
    nvcc, flags, sources = ext.nvcc
    os.makedirs(build_temp, exist_ok=True)
    objects = [os.path.join(build_temp, os.path.basename(src) + ".o") for src in sources]
    jobs = [[nvcc, *flags, "-c", src, "-o", obj] for src, obj in zip(sources, objects)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for cmd, proc in zip(jobs, pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), jobs)):
            if proc.returncode != 0:
                raise RuntimeError(f"nvcc failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    ext.extra_objects += objects


class BuildExt(build_ext):
    def build_extension(self, ext):
        if hasattr(ext, "nvcc"):
            try:
                compile_cuda(ext, os.path.join(self.build_temp, "cuda"))
            except Exception as err:  # optional: report and carry on without tinyllm._cuda
                print(f"tinyllm: building the CUDA kernels failed; continuing without them\n{err}", file=sys.stderr)
                return
        super().build_extension(ext)

    def build_extensions(self):
        if compiler_accepts(self.compiler, "-fopenmp"):
            for ext in self.extensions:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        else:
            print("tinyllm: the C++ compiler has no OpenMP; kernels will run on one thread", file=sys.stderr)
        super().build_extensions()


ParallelCompile("TINYLLM_BUILD_JOBS", default=0).install()

ext_modules = [
    Pybind11Extension(
        "tinyllm._C",
        sorted(glob.glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        cxx_std=17,
        # -fno-math-errno: sqrt never sets errno, so loops that call it can be vectorised.
        # -fno-trapping-math: floating-point operations raise no traps we watch for, so GCC may compute
        # both sides of a select (exp's and erf's clamps, sigmoid's two forms) and blend them; with
        # traps assumed it keeps branches, and those loops (exp, erf: activations, softmax,
        # cross-entropy) stay scalar. Elementwise results keep their bits (sums in `omp simd reduction` loops
        # add in SIMD lanes, as those loops ask).
        extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math"],
        optional=True,
    )
] + cuda_extension()

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
