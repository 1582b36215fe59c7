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

#include "decoder/serve.hpp"
#include "decoder/weights.hpp"
#include "mpi_program.hpp"
#include "mpi_tensor_parallel.hpp"

namespace {

int run(int argc, char** argv) {
  decoder::ServeOptions o;
  o.context = 128;
  o.threads = 1;
  if (!decoder::parse_serve_flags(argc, argv, o)) return 2;
  distributed::MpiTensorParallel tp(MPI_COMM_WORLD);
  const decoder::ModelConfig mc = o.model_config();
  decoder::EngineConfig ec = o.engine_config();
  const int threads = o.threads, batch = o.batch;
  const bool parallel = tp.size() > 1;
  if (parallel) ec.tensor_parallel = &tp;
  decoder::ModelWeights weights = decoder::make_weights(mc, 1, threads);
  if (parallel) weights = decoder::shard_weights(mc, weights, tp.rank(), tp.size(), threads);
  decoder::Engine engine(mc, weights, ec);
  tp.reset_stats();
  const decoder::ServeReport report = decoder::serve(engine, o.run());
  if (tp.rank() == 0) {
    std::printf("model %s: %d layers (%d distinct), hidden %d, %d/%d heads of %d, intermediate %d, vocab %d, int%d "
                "weights (%.3f GB on each rank), %s activations\n",
                mc.name.c_str(), mc.layers, mc.stored_layers(), mc.hidden, mc.heads, mc.kv_heads, mc.head_dim,
                mc.intermediate, mc.vocab, o.bits, double(weights.bytes()) / 1e9, o.activations.c_str());
    std::printf("%d rank(s) x %d thread(s); batch %d, context %d, decode %d\n%s", tp.size(), threads, batch, o.context,
                o.decode, report.text().c_str());
    // Per decode step: the embedding's sum, then o_proj's and down's in every layer, each of
    // batch x hidden fp32 values.
    const double step_bytes = double(2 * mc.layers + 1) * batch * mc.hidden * 4;
    std::printf("all-reduce per decode step per rank: %d sums of %.1f KB = %.2f MB (fp32)\n", 2 * mc.layers + 1,
                batch * mc.hidden * 4 / 1e3, step_bytes / 1e6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return distributed::run_mpi_program(argc, argv, "tp_decoder", run); }
