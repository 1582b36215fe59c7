#include "config.hpp"

#include <stdexcept>
#include <utility>

namespace decoder {

ModelConfig ModelConfig::shard(int ranks) const {
  if (ranks < 1) throw std::invalid_argument("ModelConfig::shard: ranks = " + std::to_string(ranks) + " must be >= 1");
  ModelConfig c = *this;
  for (auto [value, name] : {std::pair{&c.heads, "heads"}, std::pair{&c.kv_heads, "kv_heads"},
                             std::pair{&c.intermediate, "intermediate"}, std::pair{&c.vocab, "vocab"}}) {
    if (*value % ranks != 0)
      throw std::invalid_argument("ModelConfig::shard: " + std::string(name) + " = " + std::to_string(*value) +
                                  " does not divide by " + std::to_string(ranks) + " ranks");
    *value /= ranks;
  }
  return c;
}

ModelConfig model_preset(const std::string& name) {
  ModelConfig c;
  c.name = name;
  if (name == "tiny") return c;
  if (name == "qwen2-7b") {  // Qwen2-7B: config.json of the released model
    c.hidden = 3584;
    c.heads = 28;
    c.kv_heads = 4;
    c.head_dim = 128;
    c.intermediate = 18944;
    c.layers = 28;
    c.vocab = 152064;
    c.rope_theta = 1000000.0;
    c.rms_eps = 1e-6f;
    c.qkv_bias = true;
    c.max_position = 32768;
    return c;
  }
  if (name == "llama3-8b") {  // Llama-3-8B
    c.hidden = 4096;
    c.heads = 32;
    c.kv_heads = 8;
    c.head_dim = 128;
    c.intermediate = 14336;
    c.layers = 32;
    c.vocab = 128256;
    c.rope_theta = 500000.0;
    c.rms_eps = 1e-5f;
    c.max_position = 8192;
    return c;
  }
  throw std::invalid_argument("unknown model '" + name + "' (tiny, qwen2-7b, llama3-8b)");
}

}  // namespace decoder
