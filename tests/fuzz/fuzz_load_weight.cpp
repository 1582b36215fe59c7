// load_weight() on arbitrary bytes. An odd first byte fixes the checksum up over the rest (by
// the rule of the file's version field), so that mutations also reach the checks after it
// (trailing bytes, the act-order permutation).
// A weight that loads must then run: linear() on one row, compared with the reference.
#include "fuzz_util.hpp"

namespace {

constexpr uint64_t kBasis = 0xcbf29ce484222325ull, kPrime = 0x100000001b3ull;

// The file format's checksums (serialize.cpp), written from its description: version 1 is
// FNV-1a 64 over bytes; version 2 runs FNV-1a steps over 8-byte words in four lanes, folds the
// high half down after each step, takes trailing bytes into lane 0 and combines lanes and length.
uint64_t file_checksum(uint32_t version, const uint8_t* p, std::size_t n) {
  auto step = [](uint64_t h, uint64_t v, bool fold) {
    h = (h ^ v) * kPrime;
    return fold ? h ^ (h >> 32) : h;
  };
  if (version == 1) {
    uint64_t h = kBasis;
    for (std::size_t i = 0; i < n; ++i) h = step(h, p[i], false);
    return h;
  }
  uint64_t lane[4];
  for (uint64_t l = 0; l < 4; ++l) lane[l] = kBasis ^ l;
  const std::size_t whole = n / 32 * 32;
  for (std::size_t i = 0; i < whole; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    lane[i / 8 % 4] = step(lane[i / 8 % 4], v, true);
  }
  for (std::size_t i = whole; i < n; ++i) lane[0] = step(lane[0], p[i], false);
  uint64_t h = kBasis ^ uint64_t(n);
  for (uint64_t l : lane) h = step(h, l, true);
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace pagedinfer;
  if (size < 1) return 0;
  std::vector<uint8_t> bytes(data + 1, data + size);
  if ((data[0] & 1) && bytes.size() >= 16) {
    uint32_t version;
    std::memcpy(&version, bytes.data() + 8, 4);
    const uint64_t sum = file_checksum(version, bytes.data(), bytes.size() - 8);
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
  }
  QuantizedWeight w;
  if (!fuzz::accepted([&] { w = load_weight(bytes.data(), bytes.size()); })) return 0;
  if (w.n() * w.k() > (1 << 20)) return 0;
  fuzz::Buffer x(std::size_t(w.k()), DType::f32), y(std::size_t(w.n()), DType::f32), ref(std::size_t(w.n()), DType::f32);
  for (int64_t i = 0; i < w.k(); ++i) static_cast<float*>(x.data())[i] = float(i % 7) / 7.f - 0.5f;
  LinearParams p;
  p.m = 1;
  p.k = w.k();
  p.x = {x.data(), DType::f32, w.k(), w.k()};
  p.y = {y.data(), DType::f32, w.n(), w.n()};
  fuzz::Bytes ws(linear_workspace_size(w, p));
  p.workspace = ws.data();
  p.workspace_bytes = linear_workspace_size(w, p);
  linear(w, p);
  p.y.data = ref.data();
  reference::linear(w, p);
  for (int64_t r = 0; r < w.n(); ++r) {
    double magnitude = 0;  // sum_k |w x|: the scale of the fp32 rounding errors
    for (int64_t i = 0; i < w.k(); ++i) magnitude += std::fabs(w.dequantize(r, i) * x.at(std::size_t(i)));
    if (std::isfinite(magnitude))
      fuzz::expect_close(y.at(std::size_t(r)), ref.at(std::size_t(r)), 1e-4 * magnitude + 1e-6, "load_weight");
  }
  return 0;
}
