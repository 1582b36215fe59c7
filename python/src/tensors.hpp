// Tensors from Python without copies: any object with __dlpack__ (torch, numpy, JAX) is borrowed
// as a DLTensor for the duration of one call and described to the library as a view.
#pragma once
#include <dlpack/dlpack.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "c_api/dlpack_views.hpp"
#include "pagedinfer/pagedinfer.hpp"

namespace pagedinfer::python {

namespace py = pybind11;

// A DLTensor borrowed from a Python object (its __dlpack__ capsule), released when this goes.
class Borrowed {
 public:
  Borrowed(py::handle obj, std::string name);
  Borrowed(Borrowed&& other) noexcept;
  Borrowed(const Borrowed&) = delete;
  ~Borrowed();

  const DLTensor& t() const { return managed_->dl_tensor; }
  const std::string& name() const { return name_; }
  int ndim() const { return t().ndim; }
  int64_t size(int d) const;    // negative d counts from the end
  int64_t stride(int d) const;  // elements
  int64_t numel() const;
  void* data() const { return static_cast<char*>(t().data) + t().byte_offset; }

  // The storage dtype; throws pagedinfer::Error naming the tensor for any other.
  DType dtype() const;
  bool is(DLDataTypeCode code, int bits) const { return dlpack::is(t(), code, bits); }
  // Throws unless the tensor has `n` dimensions / this dtype / unit stride along its last dim.
  const Borrowed& dims(int n) const;
  const Borrowed& dims_between(int lo, int hi) const;
  const Borrowed& dtype_is(DLDataTypeCode code, int bits, const char* what) const;
  const Borrowed& contiguous() const;

  // [tokens, heads, dim] views of a 2-d ([tokens, dim], one head) or 3-d tensor.
  TokensView tokens() const;
  OutTokensView out_tokens() const;

 private:
  DLManagedTensor* managed_ = nullptr;
  std::string name_;
};

// An optional tensor argument: None gives an empty optional-like holder.
inline bool given(py::handle obj) { return !obj.is_none(); }

// A new torch tensor (or numpy array when torch is missing) of this shape and dtype.
py::object empty_like_dtype(const std::vector<int64_t>& shape, DType dtype);
py::object empty_with(const std::vector<int64_t>& shape, const char* torch_dtype);

DType parse_dtype(const std::string& name);
const char* dtype_torch_name(DType t);

}  // namespace pagedinfer::python
