// A dense, one-sequence-at-a-time model of the example decoder (examples/decoder/), written
// with the reference kernels and attention in double: what the engine's logits are checked
// against (test_decoder, and the tensor-parallel tests under MPI).
#pragma once
#include <cmath>
#include <numeric>
#include <vector>

#include "decoder/engine.hpp"
#include "pagedinfer/pagedinfer.hpp"
#include "test_util.hpp"

namespace testutil {

using namespace pagedinfer;
using decoder::ModelConfig;
using decoder::ModelWeights;

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  convert(v.data(), DType::f32, out.data(), DType::bf16, v.size());
  return out;
}

// y = x W^T (+ bias) (SiLU-mul) (+= residual), with the reference kernel; bf16 in and out.
inline void ref_linear(const QuantizedWeight& w, const std::vector<uint16_t>& x, int64_t m, std::vector<uint16_t>& y,
                LinearActivations mode, bool residual = false, bool silu = false,
                const std::vector<uint16_t>* bias = nullptr) {
  LinearParams p;
  p.m = m;
  p.k = w.k();
  p.x.data = x.data();
  p.x.stride_token = w.k();
  p.activations = mode;
  p.silu_mul = silu;
  const int64_t n = silu ? w.n() / 2 : w.n();
  if (!residual) y.assign(size_t(m * n), 0);
  p.y.data = y.data();
  p.y.stride_token = n;
  if (residual) {
    p.residual.data = y.data();
    p.residual.stride_token = n;
    p.residual.dtype = p.y.dtype;
  }
  if (bias && !bias->empty()) {
    p.bias = bias->data();
    p.bias_dtype = DType::bf16;
  }
  reference::linear(w, p);
}

inline std::vector<uint16_t> ref_norm(const std::vector<uint16_t>& h, int64_t tokens, int32_t dim,
                               const std::vector<uint16_t>& weight, float eps) {
  std::vector<uint16_t> out(h.size());
  RmsNormParams p;
  p.num_tokens = tokens;
  p.dim = dim;
  p.weight = weight.data();
  p.eps = eps;
  reference::rms_norm(with_io(p, {h.data(), DType::bf16, dim, dim}, {out.data(), DType::bf16, dim, dim}));
  return out;
}

// Logits [tokens.size(), vocab] of one sequence, all positions, dense and causal.
inline std::vector<float> dense_logits(const ModelConfig& c, const ModelWeights& w, const std::vector<int32_t>& tokens,
                                LinearActivations mode) {
  const int64_t L = int64_t(tokens.size());
  std::vector<uint16_t> h(static_cast<size_t>(L * c.hidden));
  for (int64_t t = 0; t < L; ++t)
    std::copy_n(&w.embed[size_t(tokens[size_t(t)]) * size_t(c.hidden)], c.hidden, &h[size_t(t * c.hidden)]);
  RopeConfig rc;
  rc.rotary_dim = c.head_dim;
  rc.max_position = c.max_position;
  rc.theta = c.rope_theta;
  const RopeCache rope = make_rope_cache(rc);
  std::vector<int64_t> positions(static_cast<size_t>(L));
  std::iota(positions.begin(), positions.end(), 0);
  for (int32_t l = 0; l < c.layers; ++l) {
    const decoder::LayerWeights& lw = w.layer(l);
    std::vector<uint16_t> x = ref_norm(h, L, c.hidden, lw.input_norm, c.rms_eps), qkv;
    ref_linear(lw.qkv, x, L, qkv, mode, false, false, &lw.qkv_bias);
    RopeParams rp;
    rp.num_tokens = L;
    rp.positions = positions.data();
    rp.table = rope.table();
    rp.head_dim = c.head_dim;
    rp.num_q_heads = c.heads;
    rp.q = {qkv.data(), DType::bf16, c.qkv_size(), c.head_dim};
    rp.num_kv_heads = c.kv_heads;
    rp.k = {qkv.data() + c.q_size(), DType::bf16, c.qkv_size(), c.head_dim};
    reference::apply_rope(rp);
    // Causal attention in double; GQA: query head hq reads KV head hq / (heads / kv_heads).
    std::vector<float> attn(static_cast<size_t>(L * c.q_size()));
    const auto at = [&](int64_t t, int64_t col) { return double(bf16_to_float(qkv[size_t(t * c.qkv_size() + col)])); };
    for (int64_t t = 0; t < L; ++t)
      for (int32_t hq = 0; hq < c.heads; ++hq) {
        const int32_t hk = hq / (c.heads / c.kv_heads);
        std::vector<double> score(static_cast<size_t>(t + 1));
        double top = -1e300;
        for (int64_t s = 0; s <= t; ++s) {
          double d = 0;
          for (int32_t e = 0; e < c.head_dim; ++e) d += at(t, hq * c.head_dim + e) * at(s, c.q_size() + hk * c.head_dim + e);
          score[size_t(s)] = d / std::sqrt(double(c.head_dim));
          top = std::max(top, score[size_t(s)]);
        }
        double total = 0;
        for (double& v : score) total += v = std::exp(v - top);
        for (int32_t e = 0; e < c.head_dim; ++e) {
          double o = 0;
          for (int64_t s = 0; s <= t; ++s) o += score[size_t(s)] * at(s, c.q_size() + c.kv_size() + hk * c.head_dim + e);
          attn[size_t(t * c.q_size() + hq * c.head_dim + e)] = float(o / total);
        }
      }
    ref_linear(lw.o, to_bf16(attn), L, h, mode, true);
    x = ref_norm(h, L, c.hidden, lw.post_norm, c.rms_eps);
    std::vector<uint16_t> gu;
    ref_linear(lw.gate_up, x, L, gu, mode, false, true);
    ref_linear(lw.down, gu, L, h, mode, true);
  }
  const std::vector<uint16_t> x = ref_norm(h, L, c.hidden, w.final_norm, c.rms_eps);
  std::vector<float> logits(static_cast<size_t>(L * c.vocab));
  LinearParams p;
  p.m = L;
  p.k = c.hidden;
  p.x.data = x.data();
  p.x.stride_token = c.hidden;
  p.y.data = logits.data();
  p.y.dtype = DType::f32;
  p.y.stride_token = c.vocab;
  p.activations = mode;
  reference::linear(w.lm_head, p);
  return logits;
}

// Every sampled row of request r against the dense model: `seen` holds the engine's logits of
// each token it generated (`out`). Bound, as test_decoder states it: five bf16 flips on a path,
// 2% of the logits' spread.
inline void expect_logits_match_dense(const ModelConfig& c, const ModelWeights& w, const decoder::Request& r,
                                      const std::vector<int32_t>& out, const std::vector<std::vector<float>>& seen,
                                      LinearActivations mode) {
  std::vector<int32_t> all = r.prompt;
  all.insert(all.end(), out.begin(), out.end() - 1);
  const std::vector<float> dense = dense_logits(c, w, all, mode);
  ASSERT_EQ(seen.size(), out.size());
  for (size_t s = 0; s < out.size(); ++s) {
    const float* d = &dense[(r.prompt.size() - 1 + s) * size_t(c.vocab)];
    double spread = 0, worst = 0;
    for (int32_t v = 0; v < c.vocab; ++v) spread = std::max(spread, std::fabs(double(d[v])));
    for (int32_t v = 0; v < c.vocab; ++v) worst = std::max(worst, std::fabs(double(seen[s][size_t(v)]) - d[v]));
    EXPECT_LE(worst, 0.02 * spread) << "request " << r.id << " token " << s;
  }
}

// A request of prompt_len deterministic tokens; sampled at `temperature` (top-k 50, top-p 0.9),
// greedy at 0.
inline decoder::Request request(int64_t id, int32_t prompt_len, int32_t new_tokens, uint64_t seed, float temperature) {
  decoder::Request r;
  r.id = id;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt.push_back(int32_t((id * 131 + i * 17 + 5) % 512));
  r.max_new_tokens = new_tokens;
  r.sampling.temperature = temperature;
  r.sampling.top_k = temperature > 0 ? 50 : 0;
  r.sampling.top_p = temperature > 0 ? 0.9f : 1.0f;
  r.sampling.seed = seed;
  return r;
}

inline std::vector<int32_t> run_alone(const ModelConfig& c, const ModelWeights& w, const decoder::EngineConfig& e,
                                      const decoder::Request& r) {
  decoder::Engine engine(c, w, e);
  engine.add_request(r);
  engine.run_until_done();
  return engine.results().at(r.id).tokens;
}

}  // namespace testutil
