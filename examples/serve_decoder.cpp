// A Llama/Qwen-style decoder serving a continuous batch on pagedinfer (examples/decoder/).
//
//   serve_decoder [--model tiny|qwen2-7b|llama3-8b] [--layers N] [--distinct-layers N]
//                 [--batch B] [--context C] [--decode D] [--chunk N] [--threads T]
//                 [--bits 4|8] [--activations int8|float]
//
// Builds the model with deterministic synthetic weights (quantized by pagedinfer::quantize),
// runs B requests of C prompt tokens that each generate D tokens, and prints first-token
// latency, decode tokens per second and the share of decode time per op.
#include <cstdio>

#include "decoder/serve.hpp"
#include "decoder/weights.hpp"

int main(int argc, char** argv) {
  decoder::ServeOptions o;
  if (!decoder::parse_serve_flags(argc, argv, o)) return 2;
  const decoder::ModelConfig mc = o.model_config();
  const decoder::EngineConfig ec = o.engine_config();
  const decoder::ModelWeights weights = decoder::make_weights(mc, 1, o.threads);
  std::printf("model %s: %d layers (%d distinct), hidden %d, %d/%d heads of %d, intermediate %d, vocab %d, "
              "int%d weights (%.2f GB), %s activations, %d threads\n",
              mc.name.c_str(), mc.layers, mc.stored_layers(), mc.hidden, mc.heads, mc.kv_heads, mc.head_dim,
              mc.intermediate, mc.vocab, o.bits, double(weights.bytes()) / 1e9, o.activations.c_str(), o.threads);
  decoder::Engine engine(mc, weights, ec);
  const decoder::ServeReport report = decoder::serve(engine, o.run());
  std::printf("batch %d, context %d, decode %d, prefill chunk %d\n%s", o.batch, o.context, o.decode, o.chunk,
              report.text().c_str());
  return 0;
}
