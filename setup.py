"""Build tinyllm's compiled kernels.

`tinyllm._C` is every C++ file in csrc/, compiled with C++17 and -O3, and with OpenMP when the compiler
has it. The SIMD code inside picks AVX2 or AVX-512 at run time (see csrc/cpu_features.h), so one build
runs on any x86-64 CPU. The extension is optional: if it fails to build, tinyllm still installs and
runs everything on the pure-NumPy reference backend, and says so when imported.
"""
import glob
import os
import sys
import tempfile

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


class BuildExt(build_ext):
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
        extra_compile_args=["-O3", "-fno-math-errno"],
        optional=True,
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
