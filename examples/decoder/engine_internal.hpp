// The engine's private parts, shared by engine.cpp (scheduling), forward.cpp (the model) and
// transfer.cpp (export / import).
#pragma once
#include <chrono>

#include "engine.hpp"
#include "parallel.hpp"

namespace decoder {

using Clock = std::chrono::steady_clock;

inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Adds the lifetime of the object to a counter.
class ScopedTimer {
 public:
  explicit ScopedTimer(double& total) : total_(total), start_(Clock::now()) {}
  ~ScopedTimer() { total_ += seconds_between(start_, Clock::now()); }

 private:
  double& total_;
  Clock::time_point start_;
};

struct Engine::Sequence {
  int64_t id = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t prompt_len = 0;
  int32_t computed = 0;         // leading tokens whose K/V are in the cache
  int32_t generated = 0;
  int32_t max_new_tokens = 0;
  int32_t eos = -1;
  SamplingParams sampling;
  std::vector<int32_t> blocks;  // reserved for prompt_len + max_new_tokens tokens
  Clock::time_point arrival;
  double first_token_seconds = -1;

  int32_t pending() const { return int32_t(tokens.size()) - computed; }
  bool prefilling() const { return computed < prompt_len; }
};

// One step's tokens, flattened along the token dimension, and its page table.
struct Engine::Batch {
  std::vector<Sequence*> seqs;
  std::vector<int32_t> token_ids;
  std::vector<int64_t> positions, slots;
  std::vector<int32_t> q_indptr, kv_len, block_table;
  int32_t table_cols = 0;
  std::vector<int32_t> sample_rows;    // batch rows whose logits are sampled
  std::vector<Sequence*> sample_seqs;  // their sequences

  void clear() {
    seqs.clear();
    token_ids.clear();
    positions.clear();
    slots.clear();
    q_indptr.assign(1, 0);
    kv_len.clear();
    block_table.clear();
    table_cols = 0;
    sample_rows.clear();
    sample_seqs.clear();
  }
  int64_t tokens() const { return int64_t(token_ids.size()); }
};

// The model's forward pass over a Batch; owns every activation buffer (grown, never shrunk,
// so steady-state steps allocate nothing).
class Engine::Forward {
 public:
  // `model` is this rank's shape (ModelConfig::shard) under tensor parallelism; `vocab` the
  // whole model's.
  Forward(const ModelConfig& model, int32_t vocab, const EngineConfig& config);
  // Runs every layer, writing K/V into `caches`, then the LM head for the sampled rows. Under
  // tensor parallelism every rank calls it with the same batch; rank 0 gets the logits.
  void run(const Batch& b, const ModelWeights& w, const std::vector<pagedinfer::KVCacheView>& caches, OpTimes& t);
  const float* logits(size_t sample) const { return logits_.data() + sample * size_t(vocab_); }
  // The next token of every sampled row (pagedinfer::sample, one call for the batch); rank 0
  // under tensor parallelism.
  void sample(const std::vector<pagedinfer::SamplingParams>& requests, int32_t* tokens);

 private:
  void embed(const Batch& b, const ModelWeights& w, OpTimes& t);
  // h += x W^T for a row-parallel weight: each rank's partial product in fp32, summed over the
  // ranks, added to the residual and rounded to bf16 once, as the fused residual does alone.
  void add_row_parallel(const pagedinfer::QuantizedWeight& w, const void* x, int64_t m, OpTimes& t);
  void lm_head(const ModelWeights& w, int64_t rows, OpTimes& t);

  void linear(const pagedinfer::QuantizedWeight& w, const void* x, int64_t m, void* y, pagedinfer::DType y_dtype,
              bool residual, bool silu, const std::vector<uint16_t>* bias);
  void* workspace(std::size_t bytes);

  ModelConfig model_;
  int32_t vocab_;
  EngineConfig config_;
  TensorParallel* tp_;
  pagedinfer::RopeCache rope_;
  std::vector<uint16_t> h_, x_, qkv_, attn_, gate_up_, sample_h_, sample_x_;  // bf16
  std::vector<float> logits_, partial_, residual_, local_logits_, gathered_;
  std::vector<uint8_t> workspace_;
};

}  // namespace decoder
