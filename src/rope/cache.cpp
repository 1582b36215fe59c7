// Frequencies and cos/sin tables for every scaling rule of rope.hpp, computed in double.
#include <algorithm>
#include <cmath>
#include <string>

#include "common/check.hpp"
#include "pagedinfer/rope.hpp"

namespace pagedinfer {

namespace {

constexpr double kPi = 3.14159265358979323846;

void validate_config(const RopeConfig& c, const char* where) {
  PAGEDINFER_CHECK(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0, where, "config.rotary_dim = ", c.rotary_dim,
                   " must be even and >= 2");
  PAGEDINFER_CHECK(c.theta > 1 && std::isfinite(c.theta), where, "config.theta = ", c.theta, " must be > 1");
  // 2^24 positions of rotary_dim 512 are 32 GiB of table: far beyond any model's context.
  PAGEDINFER_CHECK(c.max_position >= 1 && c.max_position <= (int64_t(1) << 24), where, "config.max_position = ",
                   c.max_position, " must be in [1, 2^24]");
  PAGEDINFER_CHECK(c.rotary_dim <= 1024, where, "config.rotary_dim = ", c.rotary_dim, " must be <= 1024");
  PAGEDINFER_CHECK(c.scaling == RopeScaling::none || c.scaling == RopeScaling::linear ||
                       c.scaling == RopeScaling::dynamic_ntk || c.scaling == RopeScaling::yarn ||
                       c.scaling == RopeScaling::llama3,
                   where, "config.scaling = ", int(c.scaling), " is not a RopeScaling");
  if (c.scaling == RopeScaling::none) return;
  PAGEDINFER_CHECK(c.factor >= 1 && std::isfinite(c.factor), where, "config.factor = ", c.factor, " must be >= 1");
  if (c.scaling == RopeScaling::linear) return;
  PAGEDINFER_CHECK(c.original_max_position >= 1, where, "config.original_max_position = ", c.original_max_position,
                   " must be >= 1 for this scaling");
  if (c.scaling == RopeScaling::dynamic_ntk)
    PAGEDINFER_CHECK(c.rotary_dim > 2, where, "config.rotary_dim must be > 2 for dynamic NTK scaling");
  if (c.scaling == RopeScaling::llama3)
    PAGEDINFER_CHECK(c.high_freq_factor >= c.low_freq_factor && c.low_freq_factor > 0, where,
                     "config.low_freq_factor = ", c.low_freq_factor, " and high_freq_factor = ", c.high_freq_factor,
                     " must satisfy 0 < low <= high");
  if (c.scaling == RopeScaling::yarn)
    PAGEDINFER_CHECK(c.beta_fast > 0 && c.beta_slow > 0, where, "config.beta_fast and beta_slow must be > 0");
}

std::vector<double> plain_freq(int32_t rotary_dim, double theta) {
  std::vector<double> f(std::size_t(rotary_dim / 2));
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = std::pow(theta, -2.0 * double(i) / rotary_dim);
  return f;
}

// YaRN: the dimension index at which the wavelength completes `rotations` turns over the
// original context.
double yarn_correction_dim(double rotations, const RopeConfig& c) {
  return c.rotary_dim * std::log(double(c.original_max_position) / (rotations * 2 * kPi)) / (2 * std::log(c.theta));
}

std::vector<double> yarn_freq(const RopeConfig& c) {
  const std::vector<double> extrapolated = plain_freq(c.rotary_dim, c.theta);
  const double low = std::max(0.0, std::floor(yarn_correction_dim(c.beta_fast, c)));
  double high = std::min(double(c.rotary_dim - 1), std::ceil(yarn_correction_dim(c.beta_slow, c)));
  if (high == low) high += 0.001;  // avoid a zero-width ramp
  std::vector<double> f(extrapolated.size());
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double keep = 1.0 - ramp;  // share of the extrapolated (unscaled) frequency
    f[i] = extrapolated[i] / c.factor * (1.0 - keep) + extrapolated[i] * keep;
  }
  return f;
}

std::vector<double> llama3_freq(const RopeConfig& c) {
  std::vector<double> f = plain_freq(c.rotary_dim, c.theta);
  const double l0 = double(c.original_max_position);
  const double low_freq_wavelen = l0 / c.low_freq_factor, high_freq_wavelen = l0 / c.high_freq_factor;
  for (double& x : f) {
    const double wavelen = 2 * kPi / x;
    if (wavelen < high_freq_wavelen) continue;
    if (wavelen > low_freq_wavelen) {
      x /= c.factor;
    } else {
      const double smooth = (l0 / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
      x = (1 - smooth) * x / c.factor + smooth * x;
    }
  }
  return f;
}

}  // namespace

std::vector<double> rope_inv_freq(const RopeConfig& c) {
  validate_config(c, "rope_inv_freq");
  switch (c.scaling) {
    case RopeScaling::none: return plain_freq(c.rotary_dim, c.theta);
    case RopeScaling::linear: {
      std::vector<double> f = plain_freq(c.rotary_dim, c.theta);
      for (double& x : f) x /= c.factor;
      return f;
    }
    case RopeScaling::dynamic_ntk: {
      const double len = double(c.max_position), l0 = double(c.original_max_position);
      if (len <= l0) return plain_freq(c.rotary_dim, c.theta);
      const double base =
          c.theta * std::pow(c.factor * len / l0 - (c.factor - 1), double(c.rotary_dim) / (c.rotary_dim - 2));
      return plain_freq(c.rotary_dim, base);
    }
    case RopeScaling::yarn: return yarn_freq(c);
    case RopeScaling::llama3: return llama3_freq(c);
  }
  detail::fail("rope_inv_freq", "config.scaling = ", int(c.scaling), " is not a RopeScaling value");
}

double rope_magnitude(const RopeConfig& c) {
  validate_config(c, "rope_magnitude");
  if (c.scaling != RopeScaling::yarn) return 1.0;
  return (c.factor <= 1 ? 1.0 : 0.1 * std::log(c.factor) + 1.0) * c.attn_factor;
}

RopeScaling parse_rope_scaling(const std::string& name) {
  const std::pair<const char*, RopeScaling> names[] = {{"none", RopeScaling::none}, {"linear", RopeScaling::linear},
                                                       {"dynamic_ntk", RopeScaling::dynamic_ntk},
                                                       {"yarn", RopeScaling::yarn}, {"llama3", RopeScaling::llama3}};
  for (auto [n, v] : names)
    if (name == n) return v;
  detail::fail("parse_rope_scaling", "scaling \"", name, "\" must be none, linear, dynamic_ntk, yarn or llama3");
}

RopeCache make_rope_cache(const RopeConfig& c) {
  const std::vector<double> f = rope_inv_freq(c);
  const double m = rope_magnitude(c);
  RopeCache cache;
  cache.max_position = c.max_position;
  cache.rotary_dim = c.rotary_dim;
  const std::size_t half = f.size();
  cache.cos_sin.resize(std::size_t(c.max_position) * std::size_t(c.rotary_dim));
  for (int64_t p = 0; p < c.max_position; ++p) {
    float* row = cache.cos_sin.data() + std::size_t(p) * std::size_t(c.rotary_dim);
    for (std::size_t i = 0; i < half; ++i) {
      const double angle = double(p) * f[i];
      row[i] = float(std::cos(angle) * m);
      row[half + i] = float(std::sin(angle) * m);
    }
  }
  return cache;
}

}  // namespace pagedinfer
