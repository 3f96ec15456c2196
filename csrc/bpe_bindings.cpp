// Python bindings of the BPE core: _C.bpe_split, _C.BPEEncoder, _C.BPETrainer.
//
// Strings arrive as Python str; their UTF-8 bytes are read in place (no copy) and the GIL is released
// while C++ works on them. Errors in the arguments raise ValueError.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "bpe.h"
#include "kernels.h"

namespace py = pybind11;

namespace tinyllm {
namespace {

using bpe::Encoder;
using bpe::PieceCache;
using bpe::Trainer;

// The UTF-8 bytes of a str, owned by the str (which the caller keeps alive). A str holding a lone
// surrogate has no UTF-8 form: Python raises UnicodeEncodeError (a ValueError).
std::string_view utf8(const py::handle& s) {
    Py_ssize_t n;
    const char* p = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
    if (!p) throw py::error_already_set();
    return {p, size_t(n)};
}

bpe::Pattern to_pattern(int p) {
    if (p < bpe::kCustom || p > bpe::kCL100K) throw py::value_error("pattern id must be 0 (custom), 1 (gpt2) or 2 (cl100k)");
    return bpe::Pattern(p);
}

py::list to_list(const std::vector<int32_t>& ids) {
    py::list out(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) PyList_SET_ITEM(out.ptr(), i, PyLong_FromLong(ids[i]));
    return out;
}

// An encoder plus the cache its single-text calls share. Two Python threads may call encode at once
// (the GIL is released); the second one then uses a fresh cache of its own rather than waiting.
struct PyEncoder {
    Encoder encoder;
    PieceCache cache;
    std::mutex cache_lock;

    template <class F>
    std::vector<int32_t> with_cache(F&& f) {
        std::vector<int32_t> ids;
        py::gil_scoped_release nogil;
        std::unique_lock<std::mutex> lock(cache_lock, std::try_to_lock);
        if (lock.owns_lock()) {
            f(cache, ids);
        } else {
            PieceCache own;
            f(own, ids);
        }
        return ids;
    }

    py::list encode(const py::str& text) {
        auto view = utf8(text);
        if (encoder.pattern() == bpe::kCustom) throw py::value_error("this encoder has a custom pattern: use encode_pieces");
        return to_list(with_cache([&](PieceCache& c, std::vector<int32_t>& ids) { encoder.encode(view, c, ids); }));
    }

    py::list encode_pieces(const py::list& pieces) {
        std::vector<std::string_view> views;
        views.reserve(pieces.size());
        for (const auto& p : pieces) views.push_back(utf8(p));
        return to_list(with_cache([&](PieceCache& c, std::vector<int32_t>& ids) {
            for (auto v : views) encoder.encode_piece(v, c, ids);
        }));
    }

    // Encodes each text; `threads` workers (0: one per core) take texts in turn, each with its own cache.
    py::list encode_batch(const py::list& texts, int threads) {
        if (encoder.pattern() == bpe::kCustom) throw py::value_error("this encoder has a custom pattern: use encode_pieces");
        std::vector<std::string_view> views;
        views.reserve(texts.size());
        for (const auto& t : texts) views.push_back(utf8(t));
        std::vector<std::vector<int32_t>> results(views.size());
        {
            py::gil_scoped_release nogil;
            size_t workers = threads > 0 ? size_t(threads) : std::max(1u, std::thread::hardware_concurrency());
            workers = std::min(workers, std::max<size_t>(1, views.size()));
            std::atomic<size_t> next{0};
            auto work = [&] {
                PieceCache own;
                for (size_t i; (i = next.fetch_add(1)) < views.size();) encoder.encode(views[i], own, results[i]);
            };
            std::vector<std::thread> pool;
            for (size_t k = 1; k < workers; ++k) pool.emplace_back(work);
            work();
            for (auto& t : pool) t.join();
        }
        py::list out(results.size());
        for (size_t i = 0; i < results.size(); ++i) out[i] = to_list(results[i]);
        return out;
    }
};

}  // namespace

void register_bpe(py::module_& m) {
    m.def("bpe_split", [](int pattern, const py::str& text) {
        auto p = to_pattern(pattern);
        if (p == bpe::kCustom) throw py::value_error("bpe_split needs a built-in pattern (1 gpt2, 2 cl100k)");
        auto view = utf8(text);
        py::list out;
        bpe::split(p, reinterpret_cast<const unsigned char*>(view.data()), view.size(), [&](size_t b, size_t e) {
            out.append(py::str(view.data() + b, e - b));
        });
        return out;
    }, py::arg("pattern"), py::arg("text"), "Pre-tokenize text with a built-in pattern; returns the pieces.");

    py::class_<PyEncoder>(m, "BPEEncoder", "Byte-level BPE encoder: pre-tokenize, then merge by rank.")
        .def(py::init([](const std::vector<int32_t>& byte_ids, const std::vector<std::array<int32_t, 3>>& merges,
                         int pattern) {
                 if (byte_ids.size() != 256) throw py::value_error("byte_ids must list the ids of all 256 bytes");
                 return new PyEncoder{Encoder(byte_ids, merges, to_pattern(pattern)), PieceCache(), {}};
             }),
             py::arg("byte_ids"), py::arg("merges"), py::arg("pattern"),
             "byte_ids[b] is the id of byte b; merges[r] = (left, right, merged) has rank r.")
        .def("encode", &PyEncoder::encode, py::arg("text"))
        .def("encode_pieces", &PyEncoder::encode_pieces, py::arg("pieces"))
        .def("encode_batch", &PyEncoder::encode_batch, py::arg("texts"), py::arg("threads") = 0);

    // train() releases the GIL: do not add text to the same trainer from another thread meanwhile.
    py::class_<Trainer>(m, "BPETrainer", "Counts pre-tokens of a corpus and learns BPE merges from them.")
        .def(py::init([](int pattern) { return new Trainer(to_pattern(pattern)); }), py::arg("pattern"))
        .def("add_text", [](Trainer& t, const py::str& text) { t.add_text(utf8(text)); }, py::arg("text"))
        .def("add_pieces", [](Trainer& t, const py::list& pieces) {
            for (const auto& p : pieces) t.add_piece(utf8(p));
        }, py::arg("pieces"))
        .def_property_readonly("num_words", &Trainer::num_words)
        .def("train", [](const Trainer& t, size_t num_merges, int64_t min_frequency, py::object progress) {
            std::function<void(size_t)> report;
            if (!progress.is_none())
                report = [&](size_t done) { py::gil_scoped_acquire gil; progress(done); };
            py::gil_scoped_release nogil;
            return t.train(num_merges, min_frequency, report);
        }, py::arg("num_merges"), py::arg("min_frequency") = 1, py::arg("progress") = py::none());
}

}  // namespace tinyllm
