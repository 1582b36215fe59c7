// Disaggregated prefill / decode over two MPI ranks (disaggregated.hpp): rank 0 prefills,
// rank 1 decodes; rank 1 starts busy with `--local` requests of its own and takes the prefilled
// sequences into its running batch as they arrive.
//
//   mpirun -np 2 disaggregated_serve [--batch R prompts] [--local N] [the other serve_decoder
//        flags: --model, --layers, --distinct-layers, --context, --decode, --threads, ...]
//
// Rank 1 prints, per transferred sequence, time to first token split into prefill, transfer
// (export, wire, import) and first decode step, and the transfer's bytes and GB/s.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "decoder/serve.hpp"
#include "decoder/weights.hpp"
#include "disaggregated.hpp"
#include "mpi_program.hpp"

namespace {

int run(int argc, char** argv) {
  decoder::ServeOptions o;  // --batch is the number of prompts sent from rank 0
  o.batch = 4;
  o.decode = 16;
  o.threads = 1;
  int local = 2;
  const auto own = [&](const std::string& flag, const std::string& value) {
    if (flag != "--local") return false;
    local = std::atoi(value.c_str());
    return true;
  };
  if (!decoder::parse_serve_flags(argc, argv, o, own)) return 2;
  const int requests = o.batch, context = o.context, decode = o.decode;
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "disaggregated_serve runs on 2 ranks (prefill, decode), not %d\n", size);
    return 2;
  }
  const decoder::ModelConfig mc = o.model_config();
  decoder::EngineConfig ec = o.engine_config();
  ec.kv_hnd = rank == 1;  // the decode rank keeps another pool layout: pages move all the same
  ec.num_blocks = int64_t(requests + local) * ((context + decode + ec.block_size - 1) / ec.block_size + 1);
  const decoder::ModelWeights weights = decoder::make_weights(mc, 1, o.threads);
  decoder::Engine engine(mc, weights, ec);
  const auto request = [&](int64_t id, int32_t length) {
    decoder::Request r;
    r.id = id;
    for (int32_t i = 0; i < length; ++i) r.prompt.push_back(int32_t((id * 7919 + i * 104729) % mc.vocab));
    r.max_new_tokens = decode;
    return r;
  };
  if (rank == 0) {
    std::vector<decoder::Request> prompts;
    for (int r = 0; r < requests; ++r) prompts.push_back(request(r, context));
    distributed::run_prefill(engine, prompts, MPI_COMM_WORLD, 1);
    return 0;
  }
  for (int r = 0; r < local; ++r) engine.add_request(request(1000 + r, 32));
  const auto timings = distributed::run_decode(engine, requests, MPI_COMM_WORLD, 0);
  std::printf("model %s, %d layers; %d prompts of %d tokens prefilled on rank 0 (NHD pool), decoded on rank 1 (HND pool) "
              "beside %d local requests; %d thread(s) per rank\n",
              mc.name.c_str(), mc.layers, requests, context, local, o.threads);
  for (const auto& [id, t] : timings)
    std::printf("request %lld: first token %.1f ms = prefill %.1f + transfer %.2f (export %.2f, wire %.2f, import %.2f) "
                "+ first decode step %.2f; %.2f MB at %.2f GB/s on the wire, %.2f GB/s export to import\n",
                static_cast<long long>(id),
                1e3 * (t.prefill_seconds + t.transfer_seconds() + t.first_step_seconds), 1e3 * t.prefill_seconds,
                1e3 * t.transfer_seconds(), 1e3 * t.export_seconds, 1e3 * t.wire_seconds, 1e3 * t.import_seconds,
                1e3 * t.first_step_seconds, double(t.bytes) / 1e6, double(t.bytes) / t.wire_seconds / 1e9,
                double(t.bytes) / t.transfer_seconds() / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return distributed::run_mpi_program(argc, argv, "disaggregated_serve", run);
}
