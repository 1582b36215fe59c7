// A Llama/Qwen-style decoder's shape and the serving settings of the example engine.
#pragma once
#include <cstdint>
#include <string>

#include "pagedinfer/pagedinfer.hpp"

namespace decoder {

struct ModelConfig {
  std::string name = "tiny";
  int32_t hidden = 128;
  int32_t heads = 4;         // query heads
  int32_t kv_heads = 2;      // GQA groups
  int32_t head_dim = 32;
  int32_t intermediate = 256;
  int32_t layers = 2;
  int32_t vocab = 512;
  double rope_theta = 10000.0;
  float rms_eps = 1e-6f;
  bool qkv_bias = false;     // Qwen2 has a bias on the fused QKV projection
  int32_t max_position = 4096;
  // Weights: int4 AWQ-style (group 128, zero points) or int8 per-channel symmetric.
  int32_t weight_bits = 4;
  // Distinct layers actually stored; the rest repeat them (for model shapes whose full weights
  // would take too long to generate; the report says when this is the case).
  int32_t distinct_layers = 0;  // 0: all layers distinct

  int32_t q_size() const { return heads * head_dim; }
  int32_t kv_size() const { return kv_heads * head_dim; }
  int32_t qkv_size() const { return q_size() + 2 * kv_size(); }
  int32_t stored_layers() const { return distinct_layers > 0 && distinct_layers < layers ? distinct_layers : layers; }

  // The shape one of `ranks` tensor-parallel ranks computes: heads, KV heads, intermediate and
  // vocabulary divided (each must divide; throws std::invalid_argument naming the one that does
  // not).
  ModelConfig shard(int ranks) const;
};

// tiny (tests), qwen2-7b, llama3-8b; throws std::invalid_argument for another name.
ModelConfig model_preset(const std::string& name);

class TensorParallel;  // parallel.hpp

struct EngineConfig {
  int32_t block_size = 16;        // tokens per KV block
  int64_t num_blocks = 1024;      // KV blocks in the pool (per layer)
  int32_t prefill_chunk = 512;    // prompt tokens per sequence per step
  int32_t max_batch_tokens = 2048;  // tokens per step, all sequences together
  int32_t max_running = 64;       // sequences decoding at once
  int num_threads = 1;
  // int8 per-token activations (W4A8 / W8A8): every row's result is independent of the batch
  // around it, so a sequence decodes to the same tokens alone, batched or after a transfer.
  // float (W4A16 / W8A16): the same up to fp32 rounding.
  pagedinfer::LinearActivations activations = pagedinfer::LinearActivations::int8_per_token;
  // Never split attention over KV chunks: split plans depend on the batch, so they would make a
  // sequence's numbers depend on its neighbours.
  bool batch_invariant = true;
  // KV pools in HND ([pages, heads, page_size, dim]) instead of NHD: sequences move between
  // engines of either layout.
  bool kv_hnd = false;
  // Tensor parallel: this engine is one rank (with weights from shard_weights); null: alone.
  TensorParallel* tensor_parallel = nullptr;
};

}  // namespace decoder
