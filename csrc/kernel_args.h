// Checking a kernel's arguments at the binding.
//
// Kernels take plain NumPy buffers and write into outputs the caller allocated. Before a kernel drops
// the GIL it checks every buffer here: dtype, C-contiguity, alignment, exact shape, and that outputs
// are writable. A wrong call raises a Python ValueError that names the kernel and the argument,
// instead of reading or writing out of bounds.
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tinyllm {

class KernelArgs {
public:
    using Shape = std::vector<pybind11::ssize_t>;

    explicit KernelArgs(const char* kernel) : kernel_(kernel) {}

    // The shape of `a`, which must have `ndim` axes.
    Shape shape(const pybind11::array& a, const char* name, int ndim) const {
        if (a.ndim() != ndim) {
            fail(std::string(name) + " must have " + std::to_string(ndim) + " axes, got shape " + str(a));
        }
        return Shape(a.shape(), a.shape() + a.ndim());
    }

    const float* in(const pybind11::array& a, const char* name, const Shape& shape) const {
        check(a, name, shape, 'f', 4, false);
        return static_cast<const float*>(a.data());
    }

    float* out(pybind11::array& a, const char* name, const Shape& shape) const {
        check(a, name, shape, 'f', 4, true);
        return static_cast<float*>(a.mutable_data());
    }

    const int64_t* indices(const pybind11::array& a, const char* name, const Shape& shape) const {
        check(a, name, shape, 'i', 8, false);
        return static_cast<const int64_t*>(a.data());
    }

    [[noreturn]] void fail(const std::string& message) const {
        throw pybind11::value_error(std::string(kernel_) + ": " + message);
    }

private:
    static std::string str(const Shape& shape) {
        std::string s = "(";
        for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + (shape.size() == 1 ? ",)" : ")");
    }
    static std::string str(const pybind11::array& a) { return str(Shape(a.shape(), a.shape() + a.ndim())); }

    void check(const pybind11::array& a, const char* name, const Shape& shape, char kind, int itemsize,
               bool output) const {
        const std::string want = std::string(kind == 'f' ? "float32" : "int64") + " array of shape " + str(shape);
        if (a.dtype().kind() != kind || a.itemsize() != itemsize) {
            fail(std::string(name) + " must be a " + want + ", got dtype " +
                 std::string(pybind11::str(a.dtype())));
        }
        if (Shape(a.shape(), a.shape() + a.ndim()) != shape) {
            fail(std::string(name) + " must be a " + want + ", got shape " + str(a));
        }
        const int needed = pybind11::array::c_style | pybind11::detail::npy_api::NPY_ARRAY_ALIGNED_;
        if ((a.flags() & needed) != needed || (a.dtype().byteorder() != '=' && a.dtype().byteorder() != '|')) {
            fail(std::string(name) + " must be C-contiguous, aligned and in native byte order");
        }
        if (output && !a.writeable()) fail(std::string(name) + " is an output and must be writable");
    }

    const char* kernel_;
};

}  // namespace tinyllm
