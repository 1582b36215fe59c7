// The op families' binding functions (one file each) and what they share.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "tensors.hpp"

namespace pagedinfer::python {

void bind_kv_cache(py::module_& m);
void bind_attention(py::module_& m, py::module_& ref);
void bind_cascade(py::module_& m);
void bind_norm_rope(py::module_& m, py::module_& ref);
void bind_linear(py::module_& m, py::module_& ref);
void bind_sampling(py::module_& m, py::module_& ref);
#ifdef PAGEDINFER_WITH_GOLDEN
void bind_golden(py::module_& m);
#endif

// A paged KV cache over two pool tensors that it keeps alive.
struct KVCache {
  py::object k, v;
  KVCacheView view;
  py::object k_scales = py::none(), v_scales = py::none();  // an int8 cache's row scales, kept alive
};

// 64-byte aligned scratch memory for one call.
struct Scratch {
  std::unique_ptr<void, decltype(&std::free)> p{nullptr, &std::free};
  explicit Scratch(std::size_t bytes)
      : p(bytes ? std::aligned_alloc(64, (bytes + 63) / 64 * 64) : nullptr, &std::free) {
    if (bytes && !p) throw std::bad_alloc();
  }
  void* get() const { return p.get(); }
};

// int32 / int64 index arrays from a tensor or a Python sequence, copied.
std::vector<int32_t> int32_values(py::handle obj, const char* name);
std::vector<int64_t> int64_values(py::handle obj, const char* name);

}  // namespace pagedinfer::python
