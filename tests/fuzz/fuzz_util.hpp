// What the fuzz targets share: exact-size buffers (so AddressSanitizer sees one byte past the
// end) and decoding of dtypes, sizes and values from the input.
#pragma once
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"

namespace fuzz {

using namespace pagedinfer;

// `bytes` bytes, 64-byte aligned, exactly that long (no rounding up), filled with values in
// [-1, 1] of `dtype` (or zeros).
class Buffer {
 public:
  Buffer(std::size_t elements, DType dtype, FuzzedDataProvider* fdp = nullptr)
      : bytes_(elements * dtype_size(dtype)), dtype_(dtype) {
    data_ = bytes_ ? ::operator new(bytes_, std::align_val_t(64)) : nullptr;
    if (!is_float_dtype(dtype)) {  // 8-bit KV codes: finite ones (no NaN), magnitude below 2 for fp8
      for (std::size_t i = 0; i < bytes_; ++i) static_cast<uint8_t*>(data_)[i] = fdp ? fdp->ConsumeIntegral<uint8_t>() & 0xbf : 0;
      return;
    }
    std::vector<float> f(elements);
    for (float& v : f) v = fdp ? fdp->ConsumeFloatingPointInRange(-1.f, 1.f) : 0.f;
    if (bytes_) convert(f.data(), DType::f32, data_, dtype, elements);
  }
  ~Buffer() {
    if (data_) ::operator delete(data_, std::align_val_t(64));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  std::size_t size() const { return bytes_ / dtype_size(dtype_); }
  // Copies another buffer of the same size.
  void copy_from(const Buffer& other) {
    if (bytes_) std::memcpy(data_, other.data_, bytes_);
  }
  float at(std::size_t i) const {
    float f;
    convert(static_cast<const char*>(data_) + i * dtype_size(dtype_), dtype_, &f, DType::f32, 1);
    return f;
  }

 private:
  std::size_t bytes_;
  DType dtype_;
  void* data_;
};

// Workspace: `bytes` bytes, 64-byte aligned, exactly that long.
class Bytes {
 public:
  explicit Bytes(std::size_t bytes) : data_(bytes ? ::operator new(bytes, std::align_val_t(64)) : nullptr) {}
  ~Bytes() {
    if (data_) ::operator delete(data_, std::align_val_t(64));
  }
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  void* data() const { return data_; }

 private:
  void* data_;
};

// Elements a [rows, heads, dim] view with these strides spans: what its buffer must hold.
inline std::size_t extent(int64_t rows, int64_t stride_row, int64_t heads, int64_t stride_head, int64_t dim) {
  if (rows <= 0 || heads <= 0 || dim <= 0) return 0;
  return std::size_t(std::max<int64_t>(0, (rows - 1) * stride_row + (heads - 1) * stride_head + dim));
}

inline DType any_dtype(FuzzedDataProvider& in) { return DType(in.ConsumeIntegralInRange<int>(0, 2)); }
inline DType half_dtype(FuzzedDataProvider& in) { return in.ConsumeBool() ? DType::bf16 : DType::f16; }
// A KV cache's dtype: bf16, f16 or one of the 8-bit types.
inline DType kv_dtype(FuzzedDataProvider& in) {
  constexpr DType kTypes[] = {DType::bf16, DType::f16, DType::i8, DType::f8_e4m3, DType::f8_e5m2};
  return kTypes[in.ConsumeIntegralInRange<int>(0, 4)];
}

// Runs f; a pagedinfer::Error is a valid outcome (bad input refused). Returns whether f ran.
template <class F>
bool accepted(F&& f) {
  try {
    f();
    return true;
  } catch (const Error&) {
    return false;
  }
}

// An invariant of a result: traps (a crash libFuzzer reports, with the input) when it fails.
inline void require(bool holds, const char* what) {
  if (holds) return;
  std::fprintf(stderr, "%s\n", what);
  __builtin_trap();
}

// Kernel results against the reference, within an absolute tolerance: loose, for gross errors
// only (the tests check the derived bounds). Non-finite values must match in kind.
inline void expect_close(double got, double ref, double tol, const char* what) {
  if (std::isfinite(ref) != std::isfinite(got) || std::fabs(got - ref) > tol) {
    if (std::isnan(ref) && std::isnan(got)) return;
    std::fprintf(stderr, "%s: kernel %g, reference %g\n", what, double(got), double(ref));
    __builtin_trap();
  }
}

}  // namespace fuzz
