// Shape checks for the pybind side of the kernels, with error messages that name what went wrong.
#pragma once
#include <pybind11/numpy.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace tinyllm {

// A float32 C-contiguous NumPy array (declare kernel arguments .noconvert() so none is copied).
using FloatArray = pybind11::array_t<float, pybind11::array::c_style>;

// "(2, 3, 4)", as NumPy prints a shape.
inline std::string shape_of(const pybind11::array& x) {
    std::string s = "(";
    for (pybind11::ssize_t d = 0; d < x.ndim(); ++d) s += (d ? ", " : "") + std::to_string(x.shape(d));
    return s + (x.ndim() == 1 ? ",)" : ")");
}

// Throws ValueError "kernel: name must have shape (...), got (...)" unless x has exactly that shape.
inline void expect_shape(const char* kernel, const char* name, const pybind11::array& x,
                         std::initializer_list<int64_t> shape) {
    bool ok = x.ndim() == pybind11::ssize_t(shape.size());
    std::string want = "(";
    int d = 0;
    for (int64_t n : shape) {
        ok = ok && x.shape(d) == n;
        want += (d++ ? ", " : "") + std::to_string(n);
    }
    want += shape.size() == 1 ? ",)" : ")";
    if (!ok)
        throw std::invalid_argument(std::string(kernel) + ": " + name + " must have shape " + want +
                                    ", got " + shape_of(x));
}

}  // namespace tinyllm
