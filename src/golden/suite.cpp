// The standard suite: the ops of one decoder layer at the shapes of the models our users serve.
#include <nlohmann/json.hpp>

#include "pagedinfer/golden.hpp"

namespace pagedinfer::golden {
namespace {

using nlohmann::json;

struct Model {
  const char* name;
  int64_t hidden, intermediate;
  int32_t q_heads, kv_heads, head_dim;
  double rope_theta, norm_eps;
  int32_t page_size;  // the decode page size this model's cases use (all three sizes are covered)
};

// Shapes from the models' Hugging Face configs.
constexpr Model kModels[] = {
    {"qwen2-7b", 3584, 18944, 28, 4, 128, 1e6, 1e-6, 16},
    {"llama3-8b", 4096, 14336, 32, 8, 128, 5e5, 1e-5, 64},
    {"qwen-1.8b", 2048, 5504, 16, 16, 128, 1e4, 1e-6, 128},
};

}  // namespace

std::vector<std::string> standard_suite() {
  std::vector<json> specs;
  for (const Model& m : kModels) {
    const std::string p = m.name;
    const json heads = {{"num_q_heads", m.q_heads}, {"num_kv_heads", m.kv_heads}, {"head_dim", m.head_dim}};
    json attn = heads;
    attn["op"] = "attention";
    // A decode batch of ragged lengths (a page boundary, one page, long and short requests).
    json decode = attn;
    decode.update({{"name", p + "-attention-decode-page" + std::to_string(m.page_size)},
                   {"page_size", m.page_size},
                   {"kv_lens", {1, 17, 128, 255, 513, 1000, 1531, 2048}}});
    specs.push_back(decode);
    // The same decode over 8-bit caches: fp8 e4m3 with per-tensor scales (vLLM's), int8 with a
    // scale per row.
    for (const char* kv : {"f8_e4m3", "i8"}) {
      json quantized = decode;
      quantized.update({{"name", p + "-attention-decode-" + (std::string(kv) == "i8" ? "int8" : "fp8") + "-kv"},
                        {"kv_dtype", kv}});
      specs.push_back(quantized);
    }
    // A fresh 512-token prompt, and a mixed step: a prefill chunk after 384 cached tokens with
    // three decodes (vLLM's chunked prefill), both on 16-token pages.
    json prefill = attn;
    prefill.update({{"name", p + "-attention-prefill512"}, {"page_size", 16}, {"q_lens", {512}}, {"kv_lens", {512}}});
    specs.push_back(prefill);
    json mixed = attn;
    mixed.update({{"name", p + "-attention-chunked-prefill"},
                  {"page_size", 16},
                  {"q_lens", {128, 1, 1, 1}},
                  {"kv_lens", {512, 77, 300, 1024}}});
    specs.push_back(mixed);
    // Speculative verification: draft trees of 8 and 24 tokens over cached prefixes (a custom mask).
    json tree = attn;
    tree.update({{"name", p + "-attention-tree-verify"},
                 {"page_size", 16},
                 {"q_lens", {8, 24}},
                 {"kv_lens", {520, 1000}},
                 {"tree_mask", true}});
    specs.push_back(tree);
    json rope = heads;
    rope.update({{"op", "rope"}, {"name", p + "-rope-prefill512"}, {"num_tokens", 512}, {"theta", m.rope_theta},
                 {"max_position", 32768}});
    specs.push_back(rope);
    specs.push_back({{"op", "rms_norm"}, {"name", p + "-fused-add-rms-norm-decode8"}, {"num_tokens", 8},
                     {"hidden_size", m.hidden}, {"eps", m.norm_eps}, {"fused_add", true}});
    specs.push_back({{"op", "rms_norm"}, {"name", p + "-fused-add-rms-norm-prefill512"}, {"num_tokens", 512},
                     {"hidden_size", m.hidden}, {"eps", m.norm_eps}, {"fused_add", true}});
    const int64_t qkv = int64_t(m.q_heads + 2 * m.kv_heads) * m.head_dim;
    // Linear layers: AWQ qkv_proj at decode batches, GPTQ act-order down_proj, W8A8 o_proj on a
    // prefill chunk.
    for (int64_t rows : {1, 8})
      specs.push_back({{"op", "linear"}, {"name", p + "-awq-g128-qkv-proj-m" + std::to_string(rows)}, {"format", "awq"},
                       {"group_size", 128}, {"m", rows}, {"n", qkv}, {"k", m.hidden}});
    specs.push_back({{"op", "linear"}, {"name", p + "-gptq-act-order-down-proj-m8"}, {"format", "gptq"},
                     {"act_order", true}, {"group_size", 128}, {"m", 8}, {"n", m.hidden}, {"k", m.intermediate}});
    specs.push_back({{"op", "linear"}, {"name", p + "-w8a8-o-proj-m64"}, {"format", "w8a8"}, {"m", 64},
                     {"n", m.hidden}, {"k", m.hidden}});
  }
  std::vector<std::string> out;
  for (const json& s : specs) out.push_back(s.dump());
  return out;
}

}  // namespace pagedinfer::golden
