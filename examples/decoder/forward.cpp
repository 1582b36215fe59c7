// The decoder layer, exactly as the deployments cut it (see engine.hpp), on pagedinfer ops.
#include <cmath>
#include <cstring>

#include "engine_internal.hpp"

namespace decoder {

using pagedinfer::DType;

Engine::Forward::Forward(const ModelConfig& model, const EngineConfig& config) : model_(model), config_(config) {
  pagedinfer::RopeConfig rc;
  rc.rotary_dim = model.head_dim;
  rc.max_position = model.max_position;
  rc.theta = model.rope_theta;
  rope_ = pagedinfer::make_rope_cache(rc);
}

void* Engine::Forward::workspace(std::size_t bytes) {
  if (workspace_.size() < bytes + 64) workspace_.resize(bytes + 64);
  const auto base = reinterpret_cast<uintptr_t>(workspace_.data());
  return workspace_.data() + (64 - base % 64) % 64;
}

// y = x W^T (+ bias) (then SiLU(gate) * up) (+= into y when residual), bf16 x.
void Engine::Forward::linear(const pagedinfer::QuantizedWeight& w, const void* x, int64_t m, void* y, DType y_dtype,
                             bool residual, bool silu, const std::vector<uint16_t>* bias) {
  pagedinfer::LinearParams p;
  p.m = m;
  p.k = w.k();
  p.x.data = x;
  p.x.dtype = DType::bf16;
  p.x.stride_token = w.k();
  p.y.data = y;
  p.y.dtype = y_dtype;
  p.y.stride_token = silu ? w.n() / 2 : w.n();
  if (residual) {
    p.residual.data = y;
    p.residual.stride_token = p.y.stride_token;
    p.residual.dtype = p.y.dtype;
  }
  if (bias && !bias->empty()) {
    p.bias = bias->data();
    p.bias_dtype = DType::bf16;
  }
  p.silu_mul = silu;
  p.activations = config_.activations;
  p.num_threads = config_.num_threads;
  p.workspace_bytes = pagedinfer::linear_workspace_size(w, p);
  p.workspace = workspace(p.workspace_bytes);
  pagedinfer::linear(w, p);
}

void Engine::Forward::run(const Batch& b, const ModelWeights& w, const std::vector<pagedinfer::KVCacheView>& caches,
                          OpTimes& t) {
  const ModelConfig& c = model_;
  const int64_t T = b.tokens(), S = int64_t(b.sample_rows.size());
  const int32_t R = int32_t(b.seqs.size());
  const int threads = config_.num_threads;
  h_.resize(size_t(T * c.hidden));
  x_.resize(size_t(T * c.hidden));
  qkv_.resize(size_t(T * c.qkv_size()));
  attn_.resize(size_t(T * c.q_size()));
  gate_up_.resize(size_t(T * c.intermediate));

  {
    ScopedTimer timer(t.embed);
    for (int64_t i = 0; i < T; ++i)
      std::memcpy(&h_[size_t(i * c.hidden)], &w.embed[size_t(b.token_ids[size_t(i)]) * size_t(c.hidden)],
                  size_t(c.hidden) * 2);
  }

  pagedinfer::AttentionPlan plan;
  {
    ScopedTimer timer(t.attention);
    pagedinfer::AttentionProblem problem;
    problem.num_reqs = R;
    problem.q_indptr = b.q_indptr.data();
    problem.kv_len = b.kv_len.data();
    problem.num_q_heads = c.heads;
    problem.num_kv_heads = c.kv_heads;
    problem.head_dim_qk = problem.head_dim_v = c.head_dim;
    problem.num_threads = threads;
    problem.kv_chunk = config_.batch_invariant ? -1 : 0;
    plan = pagedinfer::plan_attention(problem);
  }

  pagedinfer::RmsNormParams norm;
  norm.num_tokens = T;
  norm.dim = c.hidden;
  norm.eps = c.rms_eps;
  norm.num_threads = threads;
  norm.input = {h_.data(), DType::bf16, c.hidden, c.hidden};
  norm.output = {x_.data(), DType::bf16, c.hidden, c.hidden};

  for (int32_t l = 0; l < c.layers; ++l) {
    const LayerWeights& lw = w.layer(l);
    // Pre-attention.
    {
      ScopedTimer timer(t.norm);
      norm.weight = lw.input_norm.data();
      pagedinfer::rms_norm(norm);
    }
    {
      ScopedTimer timer(t.gemm);
      linear(lw.qkv, x_.data(), T, qkv_.data(), DType::bf16, false, false, &lw.qkv_bias);
    }
    {
      ScopedTimer timer(t.rope);
      pagedinfer::RopeParams rp;
      rp.num_tokens = T;
      rp.positions = b.positions.data();
      rp.table = rope_.table();
      rp.head_dim = c.head_dim;
      rp.num_q_heads = c.heads;
      rp.q = {qkv_.data(), DType::bf16, c.qkv_size(), c.head_dim};
      rp.num_kv_heads = c.kv_heads;
      rp.k = {qkv_.data() + c.q_size(), DType::bf16, c.qkv_size(), c.head_dim};
      rp.num_threads = threads;
      const pagedinfer::TokensView v{qkv_.data() + c.q_size() + c.kv_size(), DType::bf16, c.qkv_size(), c.head_dim};
      pagedinfer::apply_rope_and_append_kv({rp, caches[size_t(l)], v, b.slots.data()});
    }
    // The weightless attention operator.
    {
      ScopedTimer timer(t.attention);
      pagedinfer::AttentionParams ap;
      ap.q = {qkv_.data(), DType::bf16, c.qkv_size(), c.head_dim};
      ap.q_indptr = b.q_indptr.data();
      ap.num_q_heads = c.heads;
      ap.cache = caches[size_t(l)];
      ap.pages.num_reqs = R;
      ap.pages.kv_len = b.kv_len.data();
      ap.pages.block_table = b.block_table.data();
      ap.pages.block_table_cols = b.table_cols;
      ap.out = {attn_.data(), DType::bf16, c.q_size(), c.head_dim};
      ap.scale = 1.0f / std::sqrt(float(c.head_dim));
      ap.causal = true;
      ap.workspace = workspace(plan.workspace_bytes);
      ap.workspace_bytes = plan.workspace_bytes;
      pagedinfer::paged_attention(plan, ap);
    }
    // Post-attention.
    {
      ScopedTimer timer(t.gemm);
      linear(lw.o, attn_.data(), T, h_.data(), DType::bf16, true, false, nullptr);
    }
    {
      ScopedTimer timer(t.norm);
      norm.weight = lw.post_norm.data();
      pagedinfer::rms_norm(norm);
    }
    {
      ScopedTimer timer(t.gemm);
      linear(lw.gate_up, x_.data(), T, gate_up_.data(), DType::bf16, false, true, nullptr);
      linear(lw.down, gate_up_.data(), T, h_.data(), DType::bf16, true, false, nullptr);
    }
  }

  // LM head on the sampled rows only.
  sample_h_.resize(size_t(S * c.hidden));
  sample_x_.resize(size_t(S * c.hidden));
  logits_.resize(size_t(S * c.vocab));
  if (S == 0) return;
  for (int64_t i = 0; i < S; ++i)
    std::memcpy(&sample_h_[size_t(i * c.hidden)], &h_[size_t(b.sample_rows[size_t(i)]) * size_t(c.hidden)],
                size_t(c.hidden) * 2);
  {
    ScopedTimer timer(t.norm);
    norm.num_tokens = S;
    norm.weight = w.final_norm.data();
    norm.input = {sample_h_.data(), DType::bf16, c.hidden, c.hidden};
    norm.output = {sample_x_.data(), DType::bf16, c.hidden, c.hidden};
    pagedinfer::rms_norm(norm);
  }
  {
    ScopedTimer timer(t.gemm);
    linear(w.lm_head, sample_x_.data(), S, logits_.data(), DType::f32, false, false, nullptr);
  }
}

}  // namespace decoder
