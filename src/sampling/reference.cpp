// The oracle of sample(): the values of step 1 and v as written (fp32, rules.hpp), then every
// threshold, weight, sum and the draw in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "pagedinfer/sampling.hpp"
#include "sampling/rules.hpp"
#include "sampling/validate.hpp"

namespace pagedinfer::reference {

namespace {

constexpr const char* kWhere = "reference::sample";

std::vector<float> raw_row(const SampleParams& p, int64_t r) {
  const char* row = static_cast<const char*>(p.logits.data) + r * p.logits.stride_token * int64_t(dtype_size(p.logits.dtype));
  std::vector<float> raw(static_cast<size_t>(p.vocab));
  for (int64_t i = 0; i < p.vocab; ++i) {
    raw[size_t(i)] = detail::load_as_float(row, p.logits.dtype, size_t(i));
    if (std::isnan(raw[size_t(i)]) || raw[size_t(i)] == std::numeric_limits<float>::infinity())
      detail::fail_logit(kWhere, r, i, raw[size_t(i)]);
  }
  return raw;
}

// v of sampling.hpp (greedy: the penalized logits).
std::vector<float> processed_row(const SampleParams& p, int64_t r, const std::vector<float>& raw) {
  const SamplingParams& s = p.requests[r];
  std::vector<int32_t> counts(static_cast<size_t>(p.vocab), 0);
  if (p.prev_indptr)
    for (int64_t i = p.prev_indptr[r]; i < p.prev_indptr[r + 1]; ++i) ++counts[size_t(p.prev_tokens[i])];
  const float divisor = detail::greedy(s) ? 1.f : s.temperature;
  std::vector<float> v(raw.size());
  for (size_t i = 0; i < raw.size(); ++i)
    v[i] = (counts[i] > 0 ? detail::penalized(raw[i], counts[i], s) : raw[i]) / divisor;
  return v;
}

// Probabilities of request r's kept set (sampling.hpp, step 3), 0 elsewhere.
std::vector<double> probabilities(const SampleParams& p, int64_t r, const std::vector<float>& v) {
  const SamplingParams& s = p.requests[r];
  const int64_t n = p.vocab;
  const double m = *std::max_element(v.begin(), v.end());
  if (m == -std::numeric_limits<double>::infinity()) detail::fail_logit(kWhere, r, -1, 0.f);
  std::vector<double> probs(static_cast<size_t>(n), 0.0);
  if (detail::greedy(s)) {
    probs[size_t(std::find(v.begin(), v.end(), float(m)) - v.begin())] = 1.0;
    return probs;
  }
  double floor = -std::numeric_limits<double>::infinity();
  if (s.min_p > 0.f) floor = m + std::log(double(s.min_p));
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i)
    if (v[size_t(i)] >= floor) kept.push_back(i);
  const auto by_value = [&](int64_t a, int64_t b) { return v[size_t(a)] > v[size_t(b)]; };
  if (s.top_k > 0 && int64_t(s.top_k) < int64_t(kept.size())) {
    std::vector<int64_t> order = kept;
    std::nth_element(order.begin(), order.begin() + (s.top_k - 1), order.end(), by_value);
    const float t = v[size_t(order[size_t(s.top_k - 1)])];
    kept.erase(std::remove_if(kept.begin(), kept.end(), [&](int64_t i) { return v[size_t(i)] < t; }), kept.end());
  }
  const auto weight = [&](int64_t i) { return std::exp(double(v[size_t(i)]) - m); };
  if (s.top_p < 1.f) {
    std::vector<int64_t> order = kept;
    std::sort(order.begin(), order.end(), by_value);
    double total = 0;
    for (int64_t i : kept) total += weight(i);
    double mass = 0;
    float t = v[size_t(order.back())];
    for (int64_t i : order) {
      mass += weight(i);
      if (mass >= double(s.top_p) * total) {
        t = v[size_t(i)];
        break;
      }
    }
    kept.erase(std::remove_if(kept.begin(), kept.end(), [&](int64_t i) { return v[size_t(i)] < t; }), kept.end());
  }
  double total = 0;
  for (int64_t i : kept) total += weight(i);
  for (int64_t i : kept) probs[size_t(i)] = weight(i) / total;
  return probs;
}

}  // namespace

void sampling_probabilities(const SampleParams& p, int64_t r, double* probs) {
  detail::validate_sample(p, "reference::sampling_probabilities");
  PAGEDINFER_CHECK(r >= 0 && r < p.num_reqs, "reference::sampling_probabilities", "r = ", r,
                   " is outside [0, num_reqs = ", p.num_reqs, ")");
  const std::vector<double> pr = probabilities(p, r, processed_row(p, r, raw_row(p, r)));
  std::copy(pr.begin(), pr.end(), probs);
}

void sample(const SampleParams& p) {
  detail::validate_sample(p, kWhere);
  for (int64_t r = 0; r < p.num_reqs; ++r) {
    const std::vector<float> raw = raw_row(p, r);
    const std::vector<double> probs = probabilities(p, r, processed_row(p, r, raw));
    const double u = detail::uniform_of(p.requests[r].seed, p.requests[r].step);
    int64_t token = -1;
    double cum = 0;
    for (int64_t i = 0; i < p.vocab; ++i) {
      if (probs[size_t(i)] <= 0) continue;
      token = i;  // the last kept token, should rounding leave u uncovered
      cum += probs[size_t(i)];
      if (cum > u) break;
    }
    p.tokens[r] = int32_t(token);
    if (p.logprobs) {
      const double m = *std::max_element(raw.begin(), raw.end());
      double total = 0;
      for (float l : raw) total += std::exp(double(l) - m);
      p.logprobs[r] = float(double(raw[size_t(token)]) - m - std::log(total));
    }
  }
}

}  // namespace pagedinfer::reference
