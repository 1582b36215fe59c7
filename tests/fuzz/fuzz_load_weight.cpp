// load_weight() on arbitrary bytes. An odd first byte fixes the checksum up over the rest (by
// the rule of the file's version field), so that mutations also reach the checks after it
// (trailing bytes, the act-order permutation).
// A weight that loads must then run: linear() on one row, compared with the reference.
#include "fuzz_util.hpp"
#include "weight_file.hpp"


extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace pagedinfer;
  if (size < 1) return 0;
  std::vector<uint8_t> bytes(data + 1, data + size);
  if ((data[0] & 1) && bytes.size() >= 16) {
    uint32_t version;
    std::memcpy(&version, bytes.data() + 8, 4);
    const uint64_t sum = testutil::weight_file_checksum(version, bytes.data(), bytes.size() - 8);
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
