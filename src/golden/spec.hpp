// Reading a case spec (golden.hpp): typed keys with defaults, every read recorded, so that the
// file's metadata holds the complete spec and an unknown key is an error.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/check.hpp"
#include "pagedinfer/dtype.hpp"
#include "pagedinfer/golden.hpp"

namespace pagedinfer::golden::detail {

using nlohmann::json;

class Spec {
 public:
  explicit Spec(json j) : in_(std::move(j)) {
    PAGEDINFER_CHECK(in_.is_object(), "golden", "a case spec is a JSON object, not ", in_.dump());
  }

  template <class T>
  T get(const std::string& key, const T& fallback) {
    T value = fallback;
    if (in_.contains(key)) {
      try {
        value = in_[key].get<T>();
      } catch (const json::exception&) {
        pagedinfer::detail::fail("golden", "spec key \"", key, "\" = ", in_[key].dump(), " has the wrong type");
      }
    }
    out_[key] = value;
    return value;
  }
  // A key without a default.
  template <class T>
  T require(const std::string& key) {
    PAGEDINFER_CHECK(in_.contains(key), "golden", "spec of op \"", out_.value("op", std::string()), "\" needs \"", key,
                     "\"");
    return get<T>(key, T{});
  }
  int64_t positive(const std::string& key, int64_t fallback, int64_t max = int64_t(1) << 20) {
    const int64_t v = get<int64_t>(key, fallback);
    PAGEDINFER_CHECK(v >= 1 && v <= max, "golden", "spec key \"", key, "\" = ", v, " must be in [1, ", max, "]");
    return v;
  }
  DType dtype(const std::string& key, DType fallback) {
    const std::string name = get<std::string>(key, dtype_name(fallback));
    for (DType t : {DType::f32, DType::bf16, DType::f16})
      if (name == dtype_name(t)) return t;
    pagedinfer::detail::fail("golden", "spec key \"", key, "\" = \"", name, "\" must be f32, bf16 or f16");
  }
  std::string choice(const std::string& key, const std::string& fallback, std::initializer_list<const char*> allowed) {
    const std::string v = get<std::string>(key, fallback);
    for (const char* a : allowed)
      if (v == a) return v;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    pagedinfer::detail::fail("golden", "spec key \"", key, "\" = \"", v, "\" must be one of ", list);
  }

  // The spec as used: every key read, with its value or default. Throws for keys never read.
  json finish() const {
    for (const auto& item : in_.items())
      PAGEDINFER_CHECK(out_.contains(item.key()), "golden", "spec key \"", item.key(), "\" is not a key of op \"",
                       out_.value("op", std::string()), "\" (docs/golden.md lists them)");
    return out_;
  }

 private:
  json in_;
  json out_ = json::object();
};

// safetensors name of a library dtype.
inline const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::f8_e4m3: return "F8_E4M3";
    case DType::f8_e5m2: return "F8_E5M2";
    case DType::i8: return "I8";
  }
  return "invalid";
}

// A tensor from typed host data (little-endian host assumed: x86-64 and aarch64).
template <class T>
Tensor make_tensor(const std::string& dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  const auto* b = reinterpret_cast<const uint8_t*>(values.data());
  t.data.assign(b, b + values.size() * sizeof(T));
  return t;
}

// A tensor of `n` elements of a library dtype at `data`.
inline Tensor make_tensor(DType dtype, std::vector<int64_t> shape, const void* data) {
  Tensor t;
  t.dtype = st_dtype(dtype);
  t.shape = std::move(shape);
  const auto* b = static_cast<const uint8_t*>(data);
  t.data.assign(b, b + std::size_t(t.numel()) * dtype_size(dtype));
  return t;
}

// n values uniform in [lo, hi), stored in `dtype` (rounded once).
inline std::vector<uint8_t> random_values(std::mt19937_64& rng, DType dtype, std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> f(n);
  for (float& v : f) v = dist(rng);
  std::vector<uint8_t> out(n * dtype_size(dtype));
  convert(f.data(), DType::f32, out.data(), dtype, n);
  return out;
}

// The output O (reference, F32) and O.bound of a golden file.
inline void add_output(File& file, const std::string& name, std::vector<int64_t> shape, const std::vector<float>& ref,
                       const std::vector<float>& bound) {
  file.tensors[name] = make_tensor("F32", shape, ref);
  file.tensors[name + ".bound"] = make_tensor("F32", std::move(shape), bound);
}

// Unit roundoff (half an ulp at 1) of a storage dtype.
inline double unit_roundoff(DType t) {
  return t == DType::f32 ? 0x1p-24 : t == DType::bf16 ? 0x1p-8 : 0x1p-11;
}

// Case generators, one per op: fill `file` (inputs, outputs, bounds) and metadata
// "pagedinfer.outputs" and "pagedinfer.bound"; the spec keys they read land in the spec.
void generate_attention(Spec& spec, std::mt19937_64& rng, File& file);
void generate_linear(Spec& spec, std::mt19937_64& rng, File& file);
void generate_rope(Spec& spec, std::mt19937_64& rng, File& file);
void generate_rms_norm(Spec& spec, std::mt19937_64& rng, File& file);

}  // namespace pagedinfer::golden::detail
