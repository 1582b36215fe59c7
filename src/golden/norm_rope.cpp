// Golden cases of apply_rope (by position ids, from a cos/sin table) and rms_norm /
// fused_add_rms_norm. The references run on fp32 copies of the inputs, so the stored results
// are the double-precision values rounded once to F32.
#include <algorithm>
#include <cmath>

#include "golden/spec.hpp"
#include "pagedinfer/norm.hpp"
#include "pagedinfer/rope.hpp"

namespace pagedinfer::golden::detail {
namespace {

std::vector<float> to_f32(const std::vector<uint8_t>& values, DType t) {
  std::vector<float> f(values.size() / dtype_size(t));
  convert(values.data(), t, f.data(), DType::f32, f.size());
  return f;
}

}  // namespace

void generate_rope(Spec& spec, std::mt19937_64& rng, File& file) {
  const DType dtype = spec.dtype("dtype", DType::bf16);
  const int64_t tokens = spec.positive("num_tokens", 16, 1 << 20);
  const int32_t hq = int32_t(spec.positive("num_q_heads", 8, 1024));
  const int32_t hkv = int32_t(spec.positive("num_kv_heads", hq, 1024));
  const int32_t d = int32_t(spec.positive("head_dim", 128, 1024));
  RopeConfig cfg;
  cfg.rotary_dim = int32_t(spec.positive("rotary_dim", d, d));
  cfg.max_position = spec.positive("max_position", 4096, int64_t(1) << 24);
  cfg.theta = spec.get<double>("theta", 10000.0);
  cfg.scaling = parse_rope_scaling(spec.choice("scaling", "none", {"none", "linear", "dynamic_ntk", "yarn", "llama3"}));
  cfg.factor = spec.get<double>("factor", 1.0);
  cfg.original_max_position = spec.get<int64_t>("original_max_position", 0);
  cfg.beta_fast = spec.get<double>("beta_fast", 32.0);
  cfg.beta_slow = spec.get<double>("beta_slow", 1.0);
  cfg.attn_factor = spec.get<double>("attn_factor", 1.0);
  cfg.low_freq_factor = spec.get<double>("low_freq_factor", 1.0);
  cfg.high_freq_factor = spec.get<double>("high_freq_factor", 4.0);
  const std::string style = spec.choice("style", "neox", {"neox", "gptj"});
  const RopeCache table = make_rope_cache(cfg);

  std::uniform_int_distribution<int64_t> pos_dist(0, cfg.max_position - 1);
  std::vector<int64_t> positions(static_cast<std::size_t>(tokens));
  for (int64_t& p : positions) p = pos_dist(rng);
  const std::vector<uint8_t> q = random_values(rng, dtype, std::size_t(tokens) * hq * d, -2.f, 2.f);
  const std::vector<uint8_t> k = random_values(rng, dtype, std::size_t(tokens) * hkv * d, -2.f, 2.f);
  std::vector<float> q_out = to_f32(q, dtype), k_out = to_f32(k, dtype);

  RopeParams p;
  p.style = style == "neox" ? RopeStyle::neox : RopeStyle::gptj;
  p.num_tokens = tokens;
  p.positions = positions.data();
  p.table = table.table();
  p.head_dim = d;
  p.num_q_heads = hq;
  p.q = {q_out.data(), DType::f32, int64_t(hq) * d, d};
  p.num_kv_heads = hkv;
  p.k = {k_out.data(), DType::f32, int64_t(hkv) * d, d};
  reference::apply_rope(p);

  // Bound (as the library's RoPE tests): |x1 c| + |x2 s| <= 2 max|x| max|c, s| = mag, two fp32
  // roundings of that size; one rounding to dtype; the F32 storage of the reference.
  double xmax = 0, cmax = 0;
  for (const std::vector<uint8_t>* t : {&q, &k})
    for (float v : to_f32(*t, dtype)) xmax = std::max(xmax, double(std::fabs(v)));
  for (float c : table.cos_sin) cmax = std::max(cmax, double(std::fabs(c)));
  const double u = 0x1p-24, fp32 = 2 * u * 2 * xmax * cmax, us = unit_roundoff(dtype);
  const double floor = dtype == DType::f16 ? 0x1p-25 : 0.0;  // half the f16 subnormal step
  auto bounds = [&](const std::vector<float>& ref) {
    std::vector<float> b(ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i)
      b[i] = float(fp32 + us * (std::fabs(ref[i]) + fp32) + u * std::fabs(ref[i]) + floor);
    return b;
  };
  file.tensors["q"] = make_tensor(dtype, {tokens, hq, d}, q.data());
  file.tensors["k"] = make_tensor(dtype, {tokens, hkv, d}, k.data());
  file.tensors["positions"] = make_tensor("I64", {tokens}, positions);
  file.tensors["cos_sin_cache"] = make_tensor("F32", {cfg.max_position, cfg.rotary_dim}, table.cos_sin);
  add_output(file, "q_out", {tokens, hq, d}, q_out, bounds(q_out));
  add_output(file, "k_out", {tokens, hkv, d}, k_out, bounds(k_out));
  file.metadata["pagedinfer.outputs"] = "q_out,k_out";
  file.metadata["pagedinfer.bound"] =
      "rotation in fp32 from the given cos_sin_cache (vLLM layout [max_position, rotary_dim]: cos then sin), "
      "rounded once to dtype; per element: 4u max|x| max|c,s| + u_out (|ref| + that) + u|ref| (+ 2^-25 for f16), u = 2^-24";
}

void generate_rms_norm(Spec& spec, std::mt19937_64& rng, File& file) {
  const DType dtype = spec.dtype("dtype", DType::bf16);
  const DType wdtype = spec.dtype("weight_dtype", dtype);
  const int64_t tokens = spec.positive("num_tokens", 16, 1 << 20);
  const int32_t dim = int32_t(spec.positive("hidden_size", 4096, 1 << 20));
  const float eps = spec.get<float>("eps", 1e-6f);
  const bool fused = spec.get<bool>("fused_add", false);
  const bool gemma = spec.get<bool>("gemma", false);
  const std::size_t count = std::size_t(tokens) * dim;
  const std::vector<uint8_t> x = random_values(rng, dtype, count, -2.f, 2.f);
  const std::vector<uint8_t> residual = random_values(rng, dtype, count, -4.f, 4.f);
  const std::vector<uint8_t> weight = random_values(rng, wdtype, std::size_t(dim), 0.5f, 1.5f);

  RmsNormParams p;
  p.num_tokens = tokens;
  p.dim = dim;
  p.weight = weight.data();
  p.weight_dtype = wdtype;
  p.eps = eps;
  p.weight_plus_one = gemma;
  // The fused add's residual is rounded to dtype by contract: form it in dtype first, then
  // normalize its fp32 copy.
  std::vector<uint8_t> stored = x;
  if (fused) {
    std::vector<uint8_t> res = residual, out(x.size());
    p.input = {x.data(), dtype, dim, dim};
    p.output = {out.data(), dtype, dim, dim};
    p.residual = {res.data(), dtype, dim, dim};
    reference::fused_add_rms_norm(p);
    stored = res;
    p.residual = {};
  }
  const std::vector<float> in = to_f32(stored, dtype);
  std::vector<float> out(count);
  p.input = {in.data(), DType::f32, dim, dim};
  p.output = {out.data(), DType::f32, dim, dim};
  reference::rms_norm(p);

  // Bound (as the library's norm tests): fp32 relative error (dim / 2 + 6) u, one rounding to
  // dtype, the F32 storage; with the fused add, one more ulp of dtype for a residual that a
  // candidate rounded differently in one element.
  const double u = 0x1p-24, us = unit_roundoff(dtype), fp32 = (dim / 2.0 + 6.0) * u;
  const double floor = dtype == DType::f16 ? 0x1p-25 : 0.0;
  std::vector<float> bound(count), res_bound(count);
  for (std::size_t i = 0; i < count; ++i) {
    bound[i] = float(std::fabs(out[i]) * (fp32 + us * (1 + fp32) + 2 * u + (fused ? 2 * us : 0.0)) + floor);
    res_bound[i] = float(2 * us * std::fabs(in[i]));
  }
  file.tensors["x"] = make_tensor(dtype, {tokens, dim}, x.data());
  file.tensors["weight"] = make_tensor(wdtype, {dim}, weight.data());
  add_output(file, "out", {tokens, dim}, out, bound);
  file.metadata["pagedinfer.outputs"] = "out";
  if (fused) {
    file.tensors["residual"] = make_tensor(dtype, {tokens, dim}, residual.data());
    add_output(file, "residual_out", {tokens, dim}, in, res_bound);
    file.metadata["pagedinfer.outputs"] = "out,residual_out";
  }
  file.metadata["pagedinfer.bound"] =
      std::string(fused ? "residual_out = round_dtype(fp32(x + residual)), within one ulp; out = rmsnorm(residual_out). " : "") +
      "y = x / sqrt(mean(x^2) + eps) * w (gemma: 1 + w) in fp32, rounded once to dtype; per element: |ref| ((hidden_size/2 + 6) u "
      "+ u_out (1 + ...) + 2u" + (fused ? " + 2 u_out" : "") + ") (+ 2^-25 for f16), u = 2^-24";
}

}  // namespace pagedinfer::golden::detail
