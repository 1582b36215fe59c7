#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace decoder {

namespace {

// Uniform in [0, 1) from (seed, step): splitmix64 of the pair.
double uniform01(uint64_t seed, uint64_t step) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + step + 0x632be59bd9b4e019ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return double(x >> 11) / double(uint64_t(1) << 53);
}

}  // namespace

int32_t sample(const float* logits, int32_t vocab, const SamplingParams& p, uint64_t step) {
  if (p.temperature <= 0.0f) return int32_t(std::max_element(logits, logits + vocab) - logits);
  // Candidates by descending logit (ties: lower index first), cut by top-k.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  const auto higher = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  const size_t keep = p.top_k > 0 ? std::min<size_t>(size_t(p.top_k), order.size()) : order.size();
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(keep), order.end(), higher);
  order.resize(keep);
  // Softmax at the temperature, in double.
  std::vector<double> prob(keep);
  const double top = logits[order[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += prob[i] = std::exp((double(logits[order[i]]) - top) / p.temperature);
  // Top-p: the shortest prefix with mass >= top_p.
  size_t n = keep;
  if (p.top_p < 1.0f) {
    double mass = 0;
    for (n = 0; n < keep;) {
      mass += prob[n++] / total;
      if (mass >= p.top_p) break;
    }
  }
  double kept = 0;
  for (size_t i = 0; i < n; ++i) kept += prob[i];
  double u = uniform01(p.seed, step) * kept;
  for (size_t i = 0; i < n; ++i) {
    u -= prob[i];
    if (u < 0) return order[i];
  }
  return order[n - 1];
}

}  // namespace decoder
