// Golden cases of linear(): the weight in its source checkpoint's own tensors (AutoAWQ,
// AutoGPTQ with g_idx, or int8 + per-channel scale for W8A8), x, and y = x W^T.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "golden/spec.hpp"
#include "pagedinfer/linear.hpp"

namespace pagedinfer::golden::detail {
namespace {

std::vector<uint16_t> random_scales(std::mt19937_64& rng, std::size_t n, int64_t k) {
  // Scales so that y stays of order 1 for x in [-1, 1].
  std::uniform_real_distribution<float> dist(0.5f, 1.5f);
  std::vector<uint16_t> s(n);
  for (uint16_t& v : s) v = float_to_f16(dist(rng) / float(8 * std::sqrt(double(k))));
  return s;
}

// AutoAWQ's GEMM packing (quant.hpp): word (i, j), nibble p holds column 8j + order[p].
std::vector<int32_t> pack_awq(const std::vector<int32_t>& q, int64_t rows, int64_t n) {
  static const int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  std::vector<int32_t> out(std::size_t(rows * n / 8), 0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n / 8; ++j) {
      uint32_t word = 0;
      for (int p = 0; p < 8; ++p) word |= uint32_t(q[std::size_t(i * n + 8 * j + kOrder[p])]) << (4 * p);
      out[std::size_t(i * (n / 8) + j)] = int32_t(word);
    }
  return out;
}

struct Weight {
  QuantizedWeight w;
  LinearActivations default_mode = LinearActivations::float_;
};

// AWQ int4, zero points: q, z uniform; the tensors as AutoAWQ writes them.
Weight awq(Spec& spec, std::mt19937_64& rng, File& file, int64_t n, int64_t k) {
  const int32_t g = int32_t(spec.get<int64_t>("group_size", 128));
  PAGEDINFER_CHECK(g > 0 && k % g == 0 && n % 8 == 0, "golden", "awq needs n % 8 == 0 and k % group_size == 0");
  std::uniform_int_distribution<int32_t> nibble(0, 15);
  std::vector<int32_t> q(std::size_t(k * n)), z(std::size_t(k / g * n));  // [k, n] and [k/g, n]
  for (int32_t& v : q) v = nibble(rng);
  for (int32_t& v : z) v = nibble(rng);
  const std::vector<int32_t> qweight = pack_awq(q, k, n), qzeros = pack_awq(z, k / g, n);
  const std::vector<uint16_t> scales = random_scales(rng, std::size_t(k / g * n), k);
  file.tensors["qweight"] = make_tensor("I32", {k, n / 8}, qweight);
  file.tensors["qzeros"] = make_tensor("I32", {k / g, n / 8}, qzeros);
  file.tensors["scales"] = make_tensor("F16", {k / g, n}, scales);
  return {import_awq(qweight.data(), qzeros.data(), scales.data(), n, k, g)};
}

// GPTQ (v1 zeros: stored z - 1), optionally act-order: g_idx a shuffled assignment of k to groups.
Weight gptq(Spec& spec, std::mt19937_64& rng, File& file, int64_t n, int64_t k) {
  const int32_t g = int32_t(spec.get<int64_t>("group_size", 128));
  const int32_t bits = int32_t(spec.get<int64_t>("bits", 4));
  const bool act_order = spec.get<bool>("act_order", false);
  PAGEDINFER_CHECK((bits == 4 || bits == 8) && g > 0 && k % g == 0, "golden",
                   "gptq needs bits 4 or 8 and k % group_size == 0");
  const int per = 32 / bits;
  PAGEDINFER_CHECK(n % per == 0 && k % per == 0, "golden", "gptq needs n and k multiples of ", per);
  const int32_t top = (1 << bits) - 1;
  std::uniform_int_distribution<int32_t> qd(0, top), zd(0, top - 1);
  std::vector<int32_t> g_idx(static_cast<std::size_t>(k));
  for (int64_t i = 0; i < k; ++i) g_idx[std::size_t(i)] = int32_t(i / g);
  if (act_order) std::shuffle(g_idx.begin(), g_idx.end(), rng);
  std::vector<int32_t> qweight(std::size_t(k / per * n), 0), qzeros(std::size_t(k / g * (n / per)), 0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j)
      qweight[std::size_t(i / per * n + j)] |= int32_t(uint32_t(qd(rng)) << (bits * (i % per)));
  for (int64_t gr = 0; gr < k / g; ++gr)
    for (int64_t j = 0; j < n; ++j)
      qzeros[std::size_t(gr * (n / per) + j / per)] |= int32_t(uint32_t(zd(rng)) << (bits * (j % per)));
  const std::vector<uint16_t> scales = random_scales(rng, std::size_t(k / g * n), k);
  file.tensors["qweight"] = make_tensor("I32", {k / per, n}, qweight);
  file.tensors["qzeros"] = make_tensor("I32", {k / g, n / per}, qzeros);
  file.tensors["scales"] = make_tensor("F16", {k / g, n}, scales);
  file.tensors["g_idx"] = make_tensor("I32", {k}, g_idx);
  return {import_gptq(qweight.data(), qzeros.data(), scales.data(), g_idx.data(), n, k, bits, g)};
}

// W8A8: int8 weight, one scale per output channel (fp16-exact, stored as F32), symmetric.
Weight w8a8(std::mt19937_64& rng, File& file, int64_t n, int64_t k) {
  std::normal_distribution<float> dist(0.f, float(1 / std::sqrt(double(k))));
  std::vector<float> wf(std::size_t(n * k));
  for (float& v : wf) v = dist(rng);
  Weight out{quantize(wf.data(), DType::f32, n, k, k, QuantFormat{8, 0, QuantZero::symmetric}),
             LinearActivations::int8_per_token};
  std::vector<int8_t> weight(wf.size());
  std::vector<float> scale(static_cast<std::size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    scale[std::size_t(r)] = float(out.w.scale(r, 0));
    for (int64_t i = 0; i < k; ++i) weight[std::size_t(r * k + i)] = int8_t(out.w.q(r, i) - 128);
  }
  file.tensors["weight"] = make_tensor("I8", {n, k}, weight);
  file.tensors["weight_scale"] = make_tensor("F32", {n}, scale);
  return out;
}

}  // namespace

void generate_linear(Spec& spec, std::mt19937_64& rng, File& file) {
  const std::string format = spec.choice("format", "awq", {"awq", "gptq", "w8a8"});
  const int64_t m = spec.positive("m", 1, 1 << 16), n = spec.positive("n", 4096, 1 << 18);
  const int64_t k = spec.positive("k", 4096, 1 << 16);
  const DType dtype = spec.dtype("dtype", DType::bf16);
  const Weight weight = format == "awq" ? awq(spec, rng, file, n, k)
                        : format == "gptq" ? gptq(spec, rng, file, n, k)
                                           : w8a8(rng, file, n, k);
  const QuantizedWeight& w = weight.w;
  const std::string mode_name = spec.choice(
      "activations", weight.default_mode == LinearActivations::float_ ? "float" : "int8_per_token",
      {"float", "int8_per_token"});
  const LinearActivations mode = mode_name == "float" ? LinearActivations::float_ : LinearActivations::int8_per_token;
  const std::vector<uint8_t> x = random_values(rng, dtype, std::size_t(m * k), -1.f, 1.f);

  LinearParams p;
  p.m = m;
  p.k = k;
  p.x = {x.data(), dtype, k, k};
  p.activations = mode;
  std::vector<float> y(std::size_t(m * n));
  p.y = {y.data(), DType::f32, n, n};
  reference::linear(w, p);

  // Bound (the library's linear tests derive the same): group sums of L = group_size terms in
  // fp32, G groups combined, over the magnitude sum_k (|s q| + |offset|) |x_k| (x_k as quantized
  // for int8 activations): (L + G + 4) u mag + 4 u |y| + 2.01 u_out |y| + u |y| (F32 storage).
  const double u = 0x1p-24, L = double(w.group_size()), G = double(k / w.group_size());
  std::vector<float> wabs(std::size_t(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      wabs[std::size_t(r * k + i)] = float(w.error_magnitude(r, i));
  std::vector<float> bound(y.size());
  std::vector<double> xv(static_cast<std::size_t>(k));
  std::vector<int8_t> a(static_cast<std::size_t>(k));
  for (int64_t row = 0; row < m; ++row) {
    const uint8_t* xr = x.data() + std::size_t(row * k) * dtype_size(dtype);
    if (mode == LinearActivations::int8_per_token) {
      const double rs = reference::quantize_activation_row(xr, dtype, k, a.data());
      for (int64_t i = 0; i < k; ++i) xv[std::size_t(i)] = std::fabs(rs * a[std::size_t(i)]);
    } else {
      std::vector<float> f(static_cast<std::size_t>(k));
      convert(xr, dtype, f.data(), DType::f32, std::size_t(k));
      for (int64_t i = 0; i < k; ++i) xv[std::size_t(i)] = std::fabs(f[std::size_t(i)]);
    }
    for (int64_t c = 0; c < n; ++c) {
      double mag = 0;
      const float* wr = wabs.data() + c * k;
      for (int64_t i = 0; i < k; ++i) mag += wr[i] * xv[std::size_t(i)];
      const double e = std::fabs(y[std::size_t(row * n + c)]);
      bound[std::size_t(row * n + c)] = float((L + G + 4) * u * mag + (5 * u + 2.01 * unit_roundoff(dtype)) * e + 1e-7);
    }
  }
  file.tensors["x"] = make_tensor(dtype, {m, k}, x.data());
  add_output(file, "y", {m, n}, y, bound);
  file.metadata["pagedinfer.outputs"] = "y";
  file.metadata["pagedinfer.bound"] =
      std::string(mode == LinearActivations::float_
                      ? "x read exactly; "
                      : "x quantized per token: a = round_half_even(fp32(x * fp32(127 / max|x|))), scale max|x| / 127; ") +
      "group sums in fp32 (or exact int32), y rounded once to dtype; per element: (group_size + groups + 4) u "
      "sum_k (|s q| + |offset|) |x_k| + 5u |y| + 2.01 u_out |y| + 1e-7, u = 2^-24";
}

}  // namespace pagedinfer::golden::detail
