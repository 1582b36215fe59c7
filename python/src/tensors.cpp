#include "tensors.hpp"

#include <pybind11/stl.h>

#include <utility>

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
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");  // this object now owns it
  managed_ = m;
  if (t().device.device_type != kDLCPU) fail(name_, "must be in CPU memory");
}

Borrowed::Borrowed(Borrowed&& other) noexcept : managed_(other.managed_), name_(std::move(other.name_)) {
  other.managed_ = nullptr;
}

Borrowed::~Borrowed() {
  if (managed_ && managed_->deleter) managed_->deleter(managed_);
}

int64_t Borrowed::size(int d) const { return t().shape[d < 0 ? d + ndim() : d]; }

int64_t Borrowed::stride(int d) const {
  if (d < 0) d += ndim();
  if (t().strides) return t().strides[d];
  int64_t s = 1;
  for (int i = ndim() - 1; i > d; --i) s *= t().shape[i];
  return s;
}

int64_t Borrowed::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim(); ++i) n *= t().shape[i];
  return n;
}

DType Borrowed::dtype() const {
  if (is(kDLFloat, 32)) return DType::f32;
  if (is(kDLBfloat, 16)) return DType::bf16;
  if (is(kDLFloat, 16)) return DType::f16;
  fail(name_, "must be float32, bfloat16 or float16");
}

const Borrowed& Borrowed::dims(int n) const {
  if (ndim() != n) fail(name_, "must have " + std::to_string(n) + " dimensions, not " + std::to_string(ndim()));
  return *this;
}

const Borrowed& Borrowed::dims_between(int lo, int hi) const {
  if (ndim() < lo || ndim() > hi)
    fail(name_, "must have " + std::to_string(lo) + " to " + std::to_string(hi) + " dimensions, not " +
                    std::to_string(ndim()));
  return *this;
}

const Borrowed& Borrowed::dtype_is(DLDataTypeCode code, int bits, const char* what) const {
  if (!is(code, bits)) fail(name_, std::string("must be ") + what);
  return *this;
}

const Borrowed& Borrowed::contiguous() const {
  int64_t expect = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (size(i) != 1 && stride(i) != expect) fail(name_, "must be contiguous");
    expect *= size(i);
  }
  return *this;
}

TokensView Borrowed::tokens() const {
  dims_between(2, 3);
  if (size(-1) > 1 && stride(-1) != 1) fail(name_, "must have unit stride along its last dimension");
  // Strides of size-1 dimensions carry no information (DLPack exporters may report any value):
  // take the compact ones there.
  const bool heads = ndim() == 3;
  const int64_t head = heads && size(1) > 1 ? stride(1) : size(-1);
  const int64_t token = size(0) > 1 ? stride(0) : (heads ? size(1) * head : size(-1));
  return {data(), dtype(), token, head};
}

OutTokensView Borrowed::out_tokens() const {
  const TokensView v = tokens();
  return {data(), v.dtype, v.stride_token, v.stride_head};
}

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
