#include "tensors.hpp"

#include <pybind11/stl.h>

#include <utility>

#include "c_api/dlpack_views.hpp"
#include "pagedinfer/error.hpp"

namespace pagedinfer::python {

namespace {
[[noreturn]] void fail(const std::string& name, const std::string& rule) {
  throw Error("pagedinfer: " + name + " " + rule);
}
}  // namespace

Borrowed::Borrowed(py::handle obj, std::string name) : name_(std::move(name)) {
  if (obj.is_none()) fail(name_, "must be a tensor, not None");
  if (!py::hasattr(obj, "__dlpack__"))
    fail(name_, "must be a tensor with __dlpack__ (torch.Tensor, numpy.ndarray), not " +
                    std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::object capsule = obj.attr("__dlpack__")();
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (!m) throw py::error_already_set();
  dlpack::usable(&m->dl_tensor, name_);  // on failure the capsule still owns (and frees) it
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");  // this object owns it now
  managed_ = m;
}

Borrowed::Borrowed(Borrowed&& other) noexcept : managed_(other.managed_), name_(std::move(other.name_)) {
  other.managed_ = nullptr;
}

Borrowed::~Borrowed() {
  if (managed_ && managed_->deleter) managed_->deleter(managed_);
}

int64_t Borrowed::size(int d) const { return dlpack::size(t(), d); }
int64_t Borrowed::stride(int d) const { return dlpack::stride(t(), d); }
int64_t Borrowed::numel() const { return dlpack::numel(t()); }
DType Borrowed::dtype() const { return dlpack::dtype(t(), name_); }

const Borrowed& Borrowed::dims(int n) const {
  dlpack::dims(t(), n, n, name_);
  return *this;
}

const Borrowed& Borrowed::dims_between(int lo, int hi) const {
  dlpack::dims(t(), lo, hi, name_);
  return *this;
}

const Borrowed& Borrowed::dtype_is(DLDataTypeCode code, int bits, const char* what) const {
  if (!is(code, bits)) fail(name_, std::string("must be ") + what);
  return *this;
}

const Borrowed& Borrowed::contiguous() const {
  dlpack::contiguous(t(), name_);
  return *this;
}

TokensView Borrowed::tokens() const { return dlpack::tokens(&t(), name_); }
OutTokensView Borrowed::out_tokens() const { return dlpack::out_tokens(&t(), name_); }

const char* dtype_torch_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
  }
  return "float32";
}

DType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "f32" || name == "torch.float32") return DType::f32;
  if (name == "bfloat16" || name == "bf16" || name == "torch.bfloat16") return DType::bf16;
  if (name == "float16" || name == "f16" || name == "torch.float16") return DType::f16;
  throw Error("pagedinfer: dtype '" + name + "' must be float32, bfloat16 or float16");
}

py::object empty_with(const std::vector<int64_t>& shape, const char* torch_dtype) {
  py::module_ torch = py::module_::import("torch");
  return torch.attr("empty")(py::tuple(py::cast(shape)), py::arg("dtype") = torch.attr(torch_dtype));
}

py::object empty_like_dtype(const std::vector<int64_t>& shape, DType dtype) {
  return empty_with(shape, dtype_torch_name(dtype));
}

}  // namespace pagedinfer::python
