// Runs the library's kernels on a golden case's inputs, read back from the file's tensors as a
// user of the file would, and returns the outputs by the file's output names (in the case's
// dtype). Shared by test_golden and test_differential.
#pragma once
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagedinfer/golden.hpp"
#include "pagedinfer/pagedinfer.hpp"
#include "test_util.hpp"

namespace goldenrun {

using namespace pagedinfer;
using golden::File;
using golden::Tensor;
using nlohmann::json;

inline DType dtype_of(const Tensor& t) {
  return t.dtype == "F32" ? DType::f32 : t.dtype == "BF16" ? DType::bf16 : DType::f16;
}
inline const char* st_name(DType t) { return t == DType::f32 ? "F32" : t == DType::bf16 ? "BF16" : "F16"; }

inline Tensor zeros(DType t, std::vector<int64_t> shape) {
  Tensor out{st_name(t), std::move(shape), {}};
  out.data.resize(std::size_t(out.numel()) * dtype_size(t));
  return out;
}

template <class T>
std::vector<T> values(const Tensor& t) {
  std::vector<T> out(std::size_t(t.numel()));
  std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

// 64-byte aligned scratch memory.
struct Scratch {
  std::vector<uint8_t> bytes;
  void* data = nullptr;
  explicit Scratch(std::size_t n) : bytes(n + 64) {
    data = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
  }
};

inline std::map<std::string, Tensor> run_attention(const File& f, const json& spec, int threads) {
  const Tensor &q = f.tensors.at("q"), &k = f.tensors.at("k_cache"), &v = f.tensors.at("v_cache");
  const std::vector<int32_t> query_start = values<int32_t>(f.tensors.at("query_start_loc"));
  const std::vector<int32_t> seq_lens = values<int32_t>(f.tensors.at("seq_lens"));
  const std::vector<int32_t> table = values<int32_t>(f.tensors.at("block_table"));
  const int32_t hq = int32_t(q.shape[1]), dq = int32_t(q.shape[2]), hkv = int32_t(k.shape[2]), dv = int32_t(v.shape[3]);
  const AttentionProblem pr = testutil::attention_problem(query_start, seq_lens, hq, hkv, dq, dv, threads);
  const AttentionPlan plan = plan_attention(pr);
  const DType out_t = dtype_of(q);
  std::map<std::string, Tensor> out{{"out", zeros(out_t, {q.shape[0], hq, dv})},
                                    {"lse", zeros(DType::f32, {q.shape[0], hq})}};
  Scratch ws(plan.workspace_bytes);
  std::vector<float> alibi, sinks;
  if (f.tensors.count("alibi_slopes")) alibi = values<float>(f.tensors.at("alibi_slopes"));
  if (f.tensors.count("sinks")) sinks = values<float>(f.tensors.at("sinks"));
  std::vector<uint8_t> mask;
  std::vector<int64_t> mask_indptr;
  if (f.tensors.count("custom_mask")) {
    mask = values<uint8_t>(f.tensors.at("custom_mask"));
    mask_indptr = values<int64_t>(f.tensors.at("mask_indptr"));
  }
  AttentionParams p;
  p.q = {q.data.data(), out_t, int64_t(hq) * dq, dq};
  p.q_indptr = query_start.data();
  p.num_q_heads = hq;
  p.cache = golden::attention_cache(f);
  p.pages.num_reqs = pr.num_reqs;
  p.pages.kv_len = seq_lens.data();
  p.pages.block_table = table.data();
  p.pages.block_table_cols = int32_t(f.tensors.at("block_table").shape[1]);
  p.out = {out["out"].data.data(), out_t, int64_t(hq) * dv, dv};
  p.lse = reinterpret_cast<float*>(out["lse"].data.data());
  p.scale = spec["scale"].get<float>();
  p.causal = spec["causal"].get<bool>();
  p.window_left = spec["window_left"].get<int32_t>();
  p.softcap = spec["softcap"].get<float>();
  p.alibi_slopes = alibi.empty() ? nullptr : alibi.data();
  p.sinks = sinks.empty() ? nullptr : sinks.data();
  if (!mask_indptr.empty()) p.custom_mask = mask.data(), p.mask_indptr = mask_indptr.data();
  p.workspace = ws.data;
  p.workspace_bytes = plan.workspace_bytes;
  paged_attention(plan, p);
  return out;
}

inline QuantizedWeight weight_of(const File& f, const json& spec, int64_t n, int64_t k) {
  const std::string format = spec["format"];
  const int32_t g = format == "w8a8" ? 0 : spec["group_size"].get<int32_t>();
  if (format == "awq")
    return import_awq(values<int32_t>(f.tensors.at("qweight")).data(), values<int32_t>(f.tensors.at("qzeros")).data(),
                      values<uint16_t>(f.tensors.at("scales")).data(), n, k, g);
  if (format == "gptq")
    return import_gptq(values<int32_t>(f.tensors.at("qweight")).data(), values<int32_t>(f.tensors.at("qzeros")).data(),
                       values<uint16_t>(f.tensors.at("scales")).data(), values<int32_t>(f.tensors.at("g_idx")).data(),
                       n, k, spec["bits"].get<int32_t>(), g);
  // int8 weight x per-channel scale, requantized exactly (each row's largest |q| is 127).
  const std::vector<int8_t> q = values<int8_t>(f.tensors.at("weight"));
  const std::vector<float> s = values<float>(f.tensors.at("weight_scale"));
  std::vector<float> w(q.size());
  for (std::size_t i = 0; i < q.size(); ++i) w[i] = float(q[i]) * s[i / std::size_t(k)];
  return quantize(w.data(), DType::f32, n, k, k, QuantFormat{8, 0, QuantZero::symmetric});
}

inline std::map<std::string, Tensor> run_linear(const File& f, const json& spec, int threads) {
  const Tensor& x = f.tensors.at("x");
  const int64_t m = x.shape[0], k = x.shape[1], n = f.tensors.at("y").shape[1];
  const QuantizedWeight w = weight_of(f, spec, n, k);
  const DType t = dtype_of(x);
  std::map<std::string, Tensor> out{{"y", zeros(t, {m, n})}};
  LinearParams p;
  p.m = m;
  p.k = k;
  p.x = {x.data.data(), t, k, k};
  p.y = {out["y"].data.data(), t, n, n};
  p.activations = spec["activations"] == "float" ? LinearActivations::float_ : LinearActivations::int8_per_token;
  p.num_threads = threads;
  Scratch ws(linear_workspace_size(w, p));
  p.workspace = ws.data;
  p.workspace_bytes = linear_workspace_size(w, p);
  linear(w, p);
  return out;
}

inline std::map<std::string, Tensor> run_rope(const File& f, const json& spec, int threads) {
  Tensor q = f.tensors.at("q"), k = f.tensors.at("k");
  const Tensor& table = f.tensors.at("cos_sin_cache");
  const std::vector<int64_t> positions = values<int64_t>(f.tensors.at("positions"));
  const DType t = dtype_of(q);
  const int32_t d = int32_t(q.shape[2]);
  RopeParams p;
  p.style = spec["style"] == "neox" ? RopeStyle::neox : RopeStyle::gptj;
  p.num_tokens = q.shape[0];
  p.positions = positions.data();
  p.table = {table.data.data(), DType::f32, table.shape[0], int32_t(table.shape[1])};
  p.head_dim = d;
  p.num_q_heads = int32_t(q.shape[1]);
  p.q = {q.data.data(), t, q.shape[1] * d, d};
  p.num_kv_heads = int32_t(k.shape[1]);
  p.k = {k.data.data(), t, k.shape[1] * d, d};
  p.num_threads = threads;
  apply_rope(p);
  return {{"q_out", q}, {"k_out", k}};
}

inline std::map<std::string, Tensor> run_rms_norm(const File& f, const json& spec, int threads) {
  Tensor x = f.tensors.at("x");
  const Tensor& w = f.tensors.at("weight");
  const DType t = dtype_of(x);
  const int32_t dim = int32_t(x.shape[1]);
  RmsNormParams p;
  p.num_tokens = x.shape[0];
  p.dim = dim;
  p.input = {x.data.data(), t, dim, dim};
  p.output = {x.data.data(), t, dim, dim};
  p.weight = w.data.data();
  p.weight_dtype = dtype_of(w);
  p.eps = spec["eps"].get<float>();
  p.weight_plus_one = spec["gemma"].get<bool>();
  p.num_threads = threads;
  if (!spec["fused_add"].get<bool>()) {
    rms_norm(p);
    return {{"out", x}};
  }
  Tensor residual = f.tensors.at("residual");
  p.residual = {residual.data.data(), t, dim, dim};
  fused_add_rms_norm(p);
  return {{"out", x}, {"residual_out", residual}};
}

// The outputs of the library's kernels (the ones selected now) on a case's inputs.
inline std::map<std::string, Tensor> run_case(const File& f, int threads = 1) {
  const json spec = json::parse(f.metadata.at("pagedinfer.spec"));
  const std::string op = spec["op"];
  if (op == "attention") return run_attention(f, spec, threads);
  if (op == "linear") return run_linear(f, spec, threads);
  if (op == "rope") return run_rope(f, spec, threads);
  return run_rms_norm(f, spec, threads);
}

}  // namespace goldenrun
