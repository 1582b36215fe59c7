// The tensor-parallel decoder engine (examples/distributed) under mpirun: one decode step of 8
// sequences at 1024 tokens of context on Qwen2-7B shapes (as bench_e2e: 2 distinct layers
// cycled through 28, synthetic prefilled K/V), at whatever ranks x threads the job has:
//   mpirun --bind-to core -np 2 bench_distributed --threads 1     2 ranks of one thread
//   mpirun --bind-to none -np 1 bench_distributed --threads 2     one rank of 2 threads
// (--bind-to none for a rank of several threads: Open MPI binds each rank to one core when it
// starts at most 2.)
// Counters (rank 0 prints): tokens/s; all_reduce_fraction = the share of the step spent in the
// collectives (sums after o_proj and down, the logits gather, the token broadcast, including
// waiting for the slower rank); bw_fraction = the bytes every rank streams per step (its weight
// shard, layer by layer, its LM head slice and its KV heads) over the DRAM read that all ranks
// measure at once at the start of the run; allreduce_MB_per_step = payload per rank.
// Configurations are separate jobs (ranks and threads are fixed per job); compare their
// bw_fraction, each against its own job's probe. Alternating a 2-rank step with a 2-thread
// one-process step inside one job was tried: the idle rank and the idle OpenMP workers then
// share the cores with the timed engine and distort both sides.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "decoder/engine.hpp"
#include "decoder/weights.hpp"
#include "mpi_tensor_parallel.hpp"
#include "roofline.hpp"

namespace {

constexpr int32_t kBatch = 8, kContext = 1024, kMaxNew = 256;
int threads = 1;
double machine_read_gbs = 0;  // every rank's DRAM read probe, run at once, summed

struct Setup {
  decoder::ModelConfig model;
  decoder::ModelWeights weights;  // this rank's shard (or the whole model on one rank)
  distributed::MpiTensorParallel tp{MPI_COMM_WORLD};
  double step_bytes = 0;          // streamed by all ranks per decode step

  Setup() {
    model = decoder::model_preset("qwen2-7b");
    model.distinct_layers = 2;
    weights = decoder::make_weights(model, 1, threads);
    if (tp.size() > 1) weights = decoder::shard_weights(model, weights, tp.rank(), tp.size(), threads);
    const decoder::ModelConfig local = model.shard(tp.size());
    double rank_bytes = double(weights.lm_head.bytes());
    for (int32_t l = 0; l < model.layers; ++l) {
      const decoder::LayerWeights& w = weights.layer(l);
      rank_bytes += double(w.qkv.bytes() + w.o.bytes() + w.gate_up.bytes() + w.down.bytes());
    }
    rank_bytes += double(kBatch) * kContext * model.layers * local.kv_size() * 2 * 2;  // K and V, bf16
    step_bytes = rank_bytes * tp.size();
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

// An engine of kBatch running sequences whose kContext tokens are cached (synthetic K/V).
std::unique_ptr<decoder::Engine> make_engine(const decoder::ModelWeights& w, int num_threads,
                                             decoder::TensorParallel* tp) {
  const Setup& s = setup();
  decoder::EngineConfig ec;
  ec.num_threads = num_threads;
  ec.num_blocks = int64_t(kBatch) * ((kContext + kMaxNew) / ec.block_size + 1);
  ec.tensor_parallel = tp;
  auto engine = std::make_unique<decoder::Engine>(s.model, w, ec);
  for (int32_t r = 0; r < kBatch; ++r) {
    decoder::Request q;
    q.id = r;
    for (int32_t i = 0; i < kContext; ++i) q.prompt.push_back((r * 7919 + i * 104729) % s.model.vocab);
    q.max_new_tokens = kMaxNew;
    engine->add_synthetic_prefilled(q, uint64_t(r) + 1);
  }
  engine->step();  // warm-up: buffers reach their steady size
  engine->reset_times();
  return engine;
}

void decode_step(benchmark::State& state) {
  Setup& s = setup();
  const auto owned = make_engine(s.weights, threads, s.tp.size() > 1 ? &s.tp : nullptr);
  decoder::Engine& engine = *owned;
  s.tp.reset_stats();
  for (auto _ : state) engine.step();
  const decoder::OpTimes& t = engine.times();
  const double it = double(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(double(kBatch) * it, benchmark::Counter::kIsRate);
  state.counters["all_reduce_fraction"] = t.all_reduce / t.step;
  state.counters["bw_fraction"] =
      benchmark::Counter(s.step_bytes * it / (machine_read_gbs * 1e9), benchmark::Counter::kIsRate);
  state.counters["allreduce_MB_per_step"] = double(s.tp.stats().all_reduce_bytes) / it / 1e6;
  state.SetLabel("ranks=" + std::to_string(s.tp.size()) + " threads=" + std::to_string(threads) + " ceiling=dram");
}

// The reporter of ranks other than 0: their results are rank 0's.
class Silent : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<char*> args;  // rank 0 alone writes --benchmark_out files
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (rank == 0 || std::strncmp(argv[i], "--benchmark_out", 15) != 0) args.push_back(argv[i]);
  }
  int args_count = int(args.size());
  benchmark::Initialize(&args_count, args.data());
  MPI_Barrier(MPI_COMM_WORLD);
  machine_read_gbs = bench::ceilings(threads).dram_read_gbs;  // every rank at once
  MPI_Allreduce(MPI_IN_PLACE, &machine_read_gbs, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::printf("DRAM read, %d rank(s) x %d thread(s) reading at once: %.1f GB/s\n", size, threads, machine_read_gbs);
  setup();  // weights built before timing starts
  benchmark::RegisterBenchmark(("tp/decode_qwen2_7b_shape_b8_ctx1024/ranks:" + std::to_string(size) +
                                "/threads:" + std::to_string(threads))
                                   .c_str(),
                               decode_step)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(16);  // the same count on every rank: their collectives pair up
  if (rank == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    Silent quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
