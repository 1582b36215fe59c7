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
#include <cstdlib>
#include <cstring>
#include <string>

#include "decoder/serve.hpp"

int main(int argc, char** argv) {
  std::string model = "tiny", activations = "int8";
  int layers = 0, distinct = 0, batch = 8, context = 256, decode = 32, chunk = 512, threads = 2, bits = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") model = value;
    else if (flag == "--layers") layers = std::atoi(value.c_str());
    else if (flag == "--distinct-layers") distinct = std::atoi(value.c_str());
    else if (flag == "--batch") batch = std::atoi(value.c_str());
    else if (flag == "--context") context = std::atoi(value.c_str());
    else if (flag == "--decode") decode = std::atoi(value.c_str());
    else if (flag == "--chunk") chunk = std::atoi(value.c_str());
    else if (flag == "--threads") threads = std::atoi(value.c_str());
    else if (flag == "--bits") bits = std::atoi(value.c_str());
    else if (flag == "--activations") activations = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  decoder::ModelConfig mc = decoder::model_preset(model);
  if (layers > 0) mc.layers = layers;
  mc.distinct_layers = distinct;
  mc.weight_bits = bits;
  decoder::EngineConfig ec;
  ec.prefill_chunk = chunk;
  ec.num_threads = threads;
  ec.max_batch_tokens = std::max(chunk, batch) + batch;
  ec.activations = activations == "float" ? pagedinfer::LinearActivations::float_
                                          : pagedinfer::LinearActivations::int8_per_token;
  ec.num_blocks = int64_t(batch) * ((context + decode + ec.block_size - 1) / ec.block_size + 1);
  const decoder::ModelWeights weights = decoder::make_weights(mc, 1, threads);
  std::printf("model %s: %d layers (%d distinct), hidden %d, %d/%d heads of %d, intermediate %d, vocab %d, "
              "int%d weights (%.2f GB), %s activations, %d threads\n",
              mc.name.c_str(), mc.layers, mc.stored_layers(), mc.hidden, mc.heads, mc.kv_heads, mc.head_dim,
              mc.intermediate, mc.vocab, bits, double(weights.bytes()) / 1e9, activations.c_str(), threads);
  decoder::Engine engine(mc, weights, ec);
  const decoder::ServeReport report = decoder::serve(engine, {batch, context, decode});
  std::printf("batch %d, context %d, decode %d, prefill chunk %d\n%s", batch, context, decode, chunk,
              report.text().c_str());
  return 0;
}
