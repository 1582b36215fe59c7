#include "weights.hpp"

#include <cmath>

namespace decoder {

namespace {

// splitmix64: a stateless hash, so element i of a stream can be drawn independently (and the
// generation can run in parallel without changing the values).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [-1, 1) for element i of stream `stream`.
float uniform(uint64_t stream, uint64_t i) {
  return float(int64_t(mix(stream * 0x100000001b3ull + i) >> 40) - (int64_t(1) << 23)) / float(1 << 23);
}

uint64_t stream_id(uint64_t seed, int32_t layer, int32_t tensor) {
  return mix(seed ^ (uint64_t(layer + 1) << 32) ^ uint64_t(tensor));
}

std::vector<float> dense(uint64_t stream, int64_t rows, int64_t cols, float bound, int num_threads) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] = bound * uniform(stream, uint64_t(r * cols + c));
  return w;
}

std::vector<uint16_t> bf16_vector(uint64_t stream, int64_t n, float center, float spread) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = pagedinfer::float_to_bf16(center + spread * uniform(stream, uint64_t(i)));
  return v;
}

// Variance 1 / fan_in: uniform in +-sqrt(3 / fan_in).
pagedinfer::QuantizedWeight linear_weight(const ModelConfig& c, uint64_t stream, int64_t rows, int64_t cols,
                                          bool gate_up, int num_threads) {
  const std::vector<float> w = dense(stream, rows, cols, std::sqrt(3.0f / float(cols)), num_threads);
  pagedinfer::QuantizeOptions options(weight_format(c, cols));
  options.gate_up = gate_up;
  options.num_threads = num_threads;
  return pagedinfer::quantize(w.data(), pagedinfer::DType::f32, rows, cols, cols, options);
}

}  // namespace

pagedinfer::QuantFormat weight_format(const ModelConfig& c, int64_t k) {
  if (c.weight_bits == 8) return {8, 0, pagedinfer::QuantZero::symmetric};
  return {4, k % 128 == 0 ? 128 : 0, pagedinfer::QuantZero::zero_point};
}

int64_t ModelWeights::bytes() const {
  int64_t b = lm_head.bytes() + int64_t(final_norm.size()) * 2;
  for (const LayerWeights& l : layers)
    b += l.qkv.bytes() + l.o.bytes() + l.gate_up.bytes() + l.down.bytes() +
         int64_t(l.input_norm.size() + l.post_norm.size() + l.qkv_bias.size()) * 2;
  return b;
}

ModelWeights make_weights(const ModelConfig& c, uint64_t seed, int num_threads) {
  ModelWeights m;
  enum Tensor : int32_t { kEmbed, kInputNorm, kQkv, kQkvBias, kO, kPostNorm, kGateUp, kDown, kFinalNorm, kLmHead };
  {
    const std::vector<float> e = dense(stream_id(seed, -1, kEmbed), c.vocab, c.hidden, 1.0f, num_threads);
    m.embed.resize(e.size());
    pagedinfer::convert(e.data(), pagedinfer::DType::f32, m.embed.data(), pagedinfer::DType::bf16, e.size());
  }
  for (int32_t l = 0; l < c.stored_layers(); ++l) {
    LayerWeights w;
    w.input_norm = bf16_vector(stream_id(seed, l, kInputNorm), c.hidden, 1.0f, 0.1f);
    w.post_norm = bf16_vector(stream_id(seed, l, kPostNorm), c.hidden, 1.0f, 0.1f);
    w.qkv = linear_weight(c, stream_id(seed, l, kQkv), c.qkv_size(), c.hidden, false, num_threads);
    if (c.qkv_bias) w.qkv_bias = bf16_vector(stream_id(seed, l, kQkvBias), c.qkv_size(), 0.0f, 0.1f);
    w.o = linear_weight(c, stream_id(seed, l, kO), c.hidden, c.q_size(), false, num_threads);
    w.gate_up = linear_weight(c, stream_id(seed, l, kGateUp), 2 * int64_t(c.intermediate), c.hidden, true, num_threads);
    w.down = linear_weight(c, stream_id(seed, l, kDown), c.hidden, c.intermediate, false, num_threads);
    m.layers.push_back(std::move(w));
  }
  m.final_norm = bf16_vector(stream_id(seed, -1, kFinalNorm), c.hidden, 1.0f, 0.1f);
  m.lm_head = linear_weight(c, stream_id(seed, -1, kLmHead), c.vocab, c.hidden, false, num_threads);
  return m;
}

ModelWeights shard_weights(const ModelConfig& c, const ModelWeights& whole, int rank, int ranks, int num_threads) {
  const ModelConfig local = c.shard(ranks);  // validates the divisions
  const auto slice = [&](const std::vector<uint16_t>& v, int64_t offset, int64_t count) {
    return std::vector<uint16_t>(v.begin() + offset + rank * count, v.begin() + offset + (rank + 1) * count);
  };
  ModelWeights m;
  m.embed = slice(whole.embed, 0, int64_t(local.vocab) * c.hidden);
  const std::vector<int64_t> qkv_segments = {c.q_size(), c.kv_size(), c.kv_size()};
  for (const LayerWeights& w : whole.layers) {
    LayerWeights s;
    s.input_norm = w.input_norm;
    s.post_norm = w.post_norm;
    s.qkv = pagedinfer::shard_output_features(w.qkv, rank, ranks, qkv_segments, num_threads);
    if (!w.qkv_bias.empty()) {
      s.qkv_bias = slice(w.qkv_bias, 0, local.q_size());
      for (int64_t part : {int64_t(c.q_size()), int64_t(c.q_size() + c.kv_size())}) {
        const std::vector<uint16_t> kv = slice(w.qkv_bias, part, local.kv_size());
        s.qkv_bias.insert(s.qkv_bias.end(), kv.begin(), kv.end());
      }
    }
    s.o = pagedinfer::shard_input_features(w.o, rank, ranks, num_threads);
    s.gate_up = pagedinfer::shard_output_features(w.gate_up, rank, ranks, {}, num_threads);
    s.down = pagedinfer::shard_input_features(w.down, rank, ranks, num_threads);
    m.layers.push_back(std::move(s));
  }
  m.final_norm = whole.final_norm;
  m.lm_head = pagedinfer::shard_output_features(whole.lm_head, rank, ranks, {}, num_threads);
  return m;
}

}  // namespace decoder
