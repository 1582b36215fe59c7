// The decoder engine tensor parallel over the ranks of an MPI job (examples/decoder, cut as the
// deployments cut it: decoder/parallel.hpp).
//
//   mpirun -np N tp_decoder [--model tiny|qwen2-7b|llama3-8b] [--layers L] [--distinct-layers D]
//                           [--batch B] [--context C] [--decode T] [--threads P] [--bits 4|8]
//                           [--activations int8|float]
//
// Every rank builds the same deterministic weights and keeps its shard; rank 0 prints the
// serving report (first-token latency, decode tokens/s, the share of the decode step spent in the
// collectives) and the all-reduce payload per decode step. One rank runs the engine alone.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "decoder/serve.hpp"
#include "decoder/weights.hpp"
#include "mpi_tensor_parallel.hpp"

namespace {

int run(int argc, char** argv) {
  std::string model = "tiny", activations = "int8";
  int layers = 0, distinct = 0, batch = 8, context = 128, decode = 32, threads = 1, bits = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") model = value;
    else if (flag == "--layers") layers = std::atoi(value.c_str());
    else if (flag == "--distinct-layers") distinct = std::atoi(value.c_str());
    else if (flag == "--batch") batch = std::atoi(value.c_str());
    else if (flag == "--context") context = std::atoi(value.c_str());
    else if (flag == "--decode") decode = std::atoi(value.c_str());
    else if (flag == "--threads") threads = std::atoi(value.c_str());
    else if (flag == "--bits") bits = std::atoi(value.c_str());
    else if (flag == "--activations") activations = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  distributed::MpiTensorParallel tp(MPI_COMM_WORLD);
  decoder::ModelConfig mc = decoder::model_preset(model);
  if (layers > 0) mc.layers = layers;
  mc.distinct_layers = distinct;
  mc.weight_bits = bits;
  decoder::EngineConfig ec;
  ec.num_threads = threads;
  ec.max_batch_tokens = std::max(ec.prefill_chunk, batch) + batch;
  ec.activations = activations == "float" ? pagedinfer::LinearActivations::float_
                                          : pagedinfer::LinearActivations::int8_per_token;
  ec.num_blocks = int64_t(batch) * ((context + decode + ec.block_size - 1) / ec.block_size + 1);
  const bool parallel = tp.size() > 1;
  if (parallel) ec.tensor_parallel = &tp;
  decoder::ModelWeights weights = decoder::make_weights(mc, 1, threads);
  if (parallel) weights = decoder::shard_weights(mc, weights, tp.rank(), tp.size(), threads);
  decoder::Engine engine(mc, weights, ec);
  tp.reset_stats();
  const decoder::ServeReport report = decoder::serve(engine, {batch, context, decode});
  if (tp.rank() == 0) {
    std::printf("model %s: %d layers (%d distinct), hidden %d, %d/%d heads of %d, intermediate %d, vocab %d, int%d "
                "weights (%.3f GB on each rank), %s activations\n",
                mc.name.c_str(), mc.layers, mc.stored_layers(), mc.hidden, mc.heads, mc.kv_heads, mc.head_dim,
                mc.intermediate, mc.vocab, bits, double(weights.bytes()) / 1e9, activations.c_str());
    std::printf("%d rank(s) x %d thread(s); batch %d, context %d, decode %d\n%s", tp.size(), threads, batch, context,
                decode, report.text().c_str());
    // Per decode step: the embedding's sum, then o_proj's and down's in every layer, each of
    // batch x hidden fp32 values.
    const double step_bytes = double(2 * mc.layers + 1) * batch * mc.hidden * 4;
    std::printf("all-reduce per decode step per rank: %d sums of %.1f KB = %.2f MB (fp32)\n", 2 * mc.layers + 1,
                batch * mc.hidden * 4 / 1e3, step_bytes / 1e6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int code = 1;
  try {
    code = run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tp_decoder: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}
