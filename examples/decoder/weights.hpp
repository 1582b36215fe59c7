// Deterministic synthetic weights for a ModelConfig, quantized with pagedinfer::quantize.
//
// Every tensor is drawn from its own seeded stream (layer, tensor), uniform with variance
// 1 / fan_in, so the residual stream stays O(1) and the same config always gives the same
// model. Norm weights are 1 + small noise; the embedding is uniform in [-1, 1).
#pragma once
#include <cstdint>
#include <vector>

#include "config.hpp"

namespace decoder {

struct LayerWeights {
  std::vector<uint16_t> input_norm, post_norm;  // [hidden] bf16
  pagedinfer::QuantizedWeight qkv;              // [q + 2 kv, hidden]
  std::vector<uint16_t> qkv_bias;               // [q + 2 kv] bf16, empty without qkv_bias
  pagedinfer::QuantizedWeight o;                // [hidden, q]
  pagedinfer::QuantizedWeight gate_up;          // [2 intermediate, hidden], gate_up form
  pagedinfer::QuantizedWeight down;             // [hidden, intermediate]
};

struct ModelWeights {
  std::vector<uint16_t> embed;       // [vocab, hidden] bf16
  std::vector<LayerWeights> layers;  // config.stored_layers(); layer l uses layers[l % size]
  std::vector<uint16_t> final_norm;  // [hidden] bf16
  pagedinfer::QuantizedWeight lm_head;  // [vocab, hidden]

  const LayerWeights& layer(int32_t l) const { return layers[size_t(l) % layers.size()]; }
  int64_t bytes() const;  // of everything a forward pass reads (the stored layers once)
};

ModelWeights make_weights(const ModelConfig& config, uint64_t seed, int num_threads);

// Rank `rank` of `ranks`' part of whole-model weights, cut as the deployments cut them (no
// re-quantization, pagedinfer's shard_* functions): QKV and gate_up by output features (each
// rank's q, k, v heads and gate / up rows together; the QKV bias alike), o_proj and down by input
// features, the embedding and the LM head by vocabulary rows; norms are replicated. The result
// fits config.shard(ranks). Throws std::invalid_argument (or pagedinfer::Error for a split off
// the quantization groups) when the model does not divide.
ModelWeights shard_weights(const ModelConfig& config, const ModelWeights& whole, int rank, int ranks, int num_threads);

// The quantization format of config.weight_bits: int4 g128 with zero points (AWQ-style; group
// 128 where it divides k, else per-channel), or int8 per-channel symmetric.
pagedinfer::QuantFormat weight_format(const ModelConfig& config, int64_t k);

}  // namespace decoder
