// Golden files: parse_safetensors() on arbitrary bytes; a file that parses must serialize to a
// file that parses to the same tensors, and check() of it against itself must pass or refuse.
#include "fuzz_util.hpp"
#include "pagedinfer/golden.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace pagedinfer;
  golden::File f;
  if (!fuzz::accepted([&] { f = golden::parse_safetensors(data, size); })) return 0;
  const std::vector<uint8_t> bytes = golden::serialize_safetensors(f);
  const golden::File g = golden::parse_safetensors(bytes.data(), bytes.size());
  if (g.tensors.size() != f.tensors.size() || g.metadata != f.metadata) __builtin_trap();
  for (const auto& [name, t] : f.tensors) {
    const golden::Tensor& u = g.tensors.at(name);
    if (u.dtype != t.dtype || u.shape != t.shape || u.data != t.data) __builtin_trap();
    for (int64_t i = 0; i < std::min<int64_t>(t.numel(), 64); ++i) (void)t.get(i);
  }
  fuzz::accepted([&] {
    const golden::Report r = golden::check(f, f.tensors);
    (void)r.to_string();
  });
  return 0;
}
