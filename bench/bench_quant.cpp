// Load-time weight packing at a Llama-3-8B MLP projection's shape (14336 x 4096): the
// importers from their checkpoint arrays, quantize() from bf16, and load_weight() of a saved
// weight. Bytes counted: the source read plus the packed weight written (the allocation and
// first touch of the new weight are part of each call, as at load time); counter source_GBps
// is the source alone, the figure a model loader sees.
#include <benchmark/benchmark.h>

#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

constexpr int64_t kN = 14336, kK = 4096, kGroup = 128;

// Random bytes for a checkpoint array; fp16 scale fields are overwritten with finite values.
std::vector<uint8_t> random_bytes(std::size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  bench::fill_random(v.data(), n, seed);
  return v;
}

void finite_scales(std::vector<uint8_t>& blocks, std::size_t block_bytes) {
  const uint16_t d = float_to_f16(0.01f);
  for (std::size_t b = 0; b < blocks.size(); b += block_bytes) std::memcpy(&blocks[b], &d, 2);
}

void run(benchmark::State& s, const std::function<QuantizedWeight(int)>& make, double source_bytes, int threads) {
  int64_t packed = 0;
  for (auto _ : s) {
    const QuantizedWeight w = make(threads);
    packed = w.bytes();
    benchmark::DoNotOptimize(packed);
  }
  bench::report_bytes(s, source_bytes + double(packed), threads);
  s.counters["source_GBps"] = benchmark::Counter(source_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  static const std::vector<uint8_t> q4 = [] {
    auto v = random_bytes(std::size_t(kN * kK / 32 * 18), 1);
    finite_scales(v, 18);
    return v;
  }();
  static const std::vector<uint8_t> q8 = [] {
    auto v = random_bytes(std::size_t(kN * kK / 32 * 34), 2);
    finite_scales(v, 34);
    return v;
  }();
  static const std::vector<uint8_t> packed_q = random_bytes(std::size_t(kN * kK / 2), 3);
  static const std::vector<uint8_t> zeros = random_bytes(std::size_t(kK / kGroup * kN / 2), 4);
  static const std::vector<uint16_t> scales(std::size_t(kK / kGroup * kN), float_to_f16(0.01f));
  static const std::vector<int32_t> g_idx = [] {
    std::vector<int32_t> g(static_cast<std::size_t>(kK));
    for (int64_t i = 0; i < kK; ++i) g[std::size_t(i)] = int32_t(i % (kK / kGroup));  // act-order
    return g;
  }();
  static const std::vector<uint16_t> bf16 = [] {
    std::vector<uint16_t> w(std::size_t(kN * kK));
    std::mt19937 rng(5);
    std::normal_distribution<float> d(0.f, 0.02f);
    for (uint16_t& x : w) x = float_to_bf16(d(rng));
    return w;
  }();
  static const std::vector<uint8_t> saved = save_weight(quantize(bf16.data(), DType::bf16, kN, kK, kK, QuantizeOptions(QuantFormat{4, 128, QuantZero::zero_point})));
  const auto* qw = reinterpret_cast<const int32_t*>(packed_q.data());
  const auto* qz = reinterpret_cast<const int32_t*>(zeros.data());
  const double grouped = double(packed_q.size() + zeros.size() + scales.size() * 2);
  struct Case {
    const char* name;
    std::function<QuantizedWeight(int)> make;
    double source_bytes;
  };
  const Case cases[] = {
      {"import_q4_0", [](int t) { return import_q4_0(q4.data(), kN, kK, t); }, double(q4.size())},
      {"import_q8_0", [](int t) { return import_q8_0(q8.data(), kN, kK, t); }, double(q8.size())},
      {"import_awq_g128", [=](int t) { return import_awq(qw, qz, scales.data(), kN, kK, kGroup, t); }, grouped},
      {"import_gptq_act_order_g128",
       [=](int t) { return import_gptq(qw, qz, scales.data(), g_idx.data(), kN, kK, 4, kGroup, t); },
       grouped + double(g_idx.size() * 4)},
      {"quantize_bf16_int4_g128",
       [](int t) {
         QuantizeOptions o(QuantFormat{4, 128, QuantZero::zero_point});
         o.num_threads = t;
         return quantize(bf16.data(), DType::bf16, kN, kK, kK, o);
       },
       double(bf16.size() * 2)},
      {"pack_bf16_unquantized",
       [](int t) {
         QuantizeOptions o(QuantFormat::unquantized(DType::bf16));
         o.num_threads = t;
         return quantize(bf16.data(), DType::bf16, kN, kK, kK, o);
       },
       double(bf16.size() * 2)},
      {"load_weight_int4_g128", [](int) { return load_weight(saved.data(), saved.size()); }, double(saved.size())},
  };
  for (int t : {1, 2})
    for (const Case& c : cases) {
      const std::string name = std::string("quant/") + c.name + "_14336x4096/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), run, c.make, c.source_bytes, t)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
