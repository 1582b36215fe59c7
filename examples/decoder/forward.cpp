// The decoder layer, exactly as the deployments cut it (see engine.hpp), on pagedinfer ops.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine_internal.hpp"

namespace decoder {

using pagedinfer::DType;

Engine::Forward::Forward(const ModelConfig& model, int32_t vocab, const EngineConfig& config)
    : model_(model), vocab_(vocab), config_(config), tp_(config.tensor_parallel) {
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

void Engine::Forward::sample(const std::vector<pagedinfer::SamplingParams>& requests, int32_t* tokens) {
  pagedinfer::SampleParams p;
  p.num_reqs = int64_t(requests.size());
  p.vocab = vocab_;
  p.logits = {logits_.data(), DType::f32, vocab_, 0};
  p.requests = requests.data();
  p.tokens = tokens;
  p.num_threads = config_.num_threads;
  p.workspace_bytes = pagedinfer::sample_workspace_size(p);
  p.workspace = workspace(p.workspace_bytes);
  pagedinfer::sample(p);
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

  embed(b, w, t);

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
    if (tp_) {
      add_row_parallel(lw.o, attn_.data(), T, t);
    } else {
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
      if (!tp_) linear(lw.down, gate_up_.data(), T, h_.data(), DType::bf16, true, false, nullptr);
    }
    if (tp_) add_row_parallel(lw.down, gate_up_.data(), T, t);
  }

  // LM head on the sampled rows only.
  sample_h_.resize(size_t(S * c.hidden));
  sample_x_.resize(size_t(S * c.hidden));
  logits_.resize(size_t(S * vocab_));
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
  lm_head(w, S, t);
}

// Under tensor parallelism each rank holds vocabulary rows [rank V / n, (rank + 1) V / n): it
// copies the rows of its tokens, zeros elsewhere, and the sum over the ranks (exact: one term
// is non-zero) is the embedding.
void Engine::Forward::embed(const Batch& b, const ModelWeights& w, OpTimes& t) {
  ScopedTimer timer(t.embed);
  const int64_t T = b.tokens(), hidden = model_.hidden, first = tp_ ? int64_t(tp_->rank()) * model_.vocab : 0;
  for (int64_t i = 0; i < T; ++i) {
    const int64_t row = b.token_ids[size_t(i)] - first;
    if (row >= 0 && row < model_.vocab)
      std::memcpy(&h_[size_t(i * hidden)], &w.embed[size_t(row * hidden)], size_t(hidden) * 2);
    else
      std::fill_n(&h_[size_t(i * hidden)], hidden, uint16_t(0));
  }
  if (!tp_) return;
  partial_.resize(size_t(T * hidden));
  pagedinfer::convert(h_.data(), DType::bf16, partial_.data(), DType::f32, partial_.size());
  {
    double in_collective = 0;
    {
      ScopedTimer collective(in_collective);
      tp_->all_reduce_sum(partial_.data(), partial_.size());
    }
    t.all_reduce += in_collective;
    t.embed -= in_collective;  // the embed timer still runs: counted once, as all_reduce
  }
  pagedinfer::convert(partial_.data(), DType::f32, h_.data(), DType::bf16, partial_.size());
}

void Engine::Forward::add_row_parallel(const pagedinfer::QuantizedWeight& w, const void* x, int64_t m, OpTimes& t) {
  const size_t n = size_t(m * model_.hidden);
  partial_.resize(n);
  {
    ScopedTimer timer(t.gemm);
    linear(w, x, m, partial_.data(), DType::f32, false, false, nullptr);
  }
  {
    ScopedTimer timer(t.all_reduce);
    tp_->all_reduce_sum(partial_.data(), n);
  }
  ScopedTimer timer(t.gemm);
  residual_.resize(n);
  pagedinfer::convert(h_.data(), DType::bf16, residual_.data(), DType::f32, n);
  for (size_t i = 0; i < n; ++i) residual_[i] += partial_[i];
  pagedinfer::convert(residual_.data(), DType::f32, h_.data(), DType::bf16, n);
}

// Logits of the sampled rows; under tensor parallelism each rank computes its vocabulary slice
// and rank 0 gathers them (vLLM's ParallelLMHead with a gather to the sampling rank).
void Engine::Forward::lm_head(const ModelWeights& w, int64_t rows, OpTimes& t) {
  if (!tp_) {
    ScopedTimer timer(t.gemm);
    linear(w.lm_head, sample_x_.data(), rows, logits_.data(), DType::f32, false, false, nullptr);
    return;
  }
  const size_t slice = size_t(rows) * size_t(model_.vocab);
  local_logits_.resize(slice);
  {
    ScopedTimer timer(t.gemm);
    linear(w.lm_head, sample_x_.data(), rows, local_logits_.data(), DType::f32, false, false, nullptr);
  }
  ScopedTimer timer(t.all_reduce);
  gathered_.resize(slice * size_t(tp_->size()));
  tp_->gather_to_root(local_logits_.data(), slice, gathered_.data());
  if (tp_->rank() != 0) return;
  for (int r = 0; r < tp_->size(); ++r)  // [rank][row][vocab / n] -> [row][vocab]
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(&logits_[size_t(i) * size_t(vocab_) + size_t(r) * size_t(model_.vocab)],
                  &gathered_[size_t(r) * slice + size_t(i) * size_t(model_.vocab)], size_t(model_.vocab) * 4);
}

}  // namespace decoder
