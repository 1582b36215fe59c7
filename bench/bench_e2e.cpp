// End to end: the example decoder engine (examples/decoder/) decoding a batch on Qwen2-7B
// shapes (28 layers; hidden 3584; 28 query / 4 KV heads of 128; intermediate 18944; vocab
// 152064; int4 AWQ-style g128 weights, W4A8 on VNNI where present). Each iteration is one
// decode step of 8 sequences at 1024 tokens of context.
//   Weights: 2 distinct layers are generated and the 28 layers cycle through them (generating
//   all 7B weights takes minutes); 2 layers are 250 MB, far beyond the L3, so every layer
//   still streams its weights from DRAM as a full model would.
//   Context: the 1024 prompt tokens' K/V are synthetic (Engine::add_synthetic_prefilled),
//   since a real prefill of 8 x 1024 tokens would take minutes here; decode reads them the
//   same way.
// Counters: tokens/s; kernel_fraction = time inside pagedinfer calls / step time, and
// glue_fraction = the rest (scheduling, batch metadata, copies, allocation).
#include <benchmark/benchmark.h>

#include "decoder/engine.hpp"
#include "roofline.hpp"

namespace {

// Bytes one decode step reads at least once: weights of every executed layer and the LM head,
// and the K and V of every sequence's context (bf16).
double step_bytes(const decoder::ModelConfig& mc, const decoder::ModelWeights& w, int32_t batch, int32_t context) {
  double b = double(w.lm_head.bytes());
  for (int32_t i = 0; i < mc.layers; ++i) {
    const decoder::LayerWeights& l = w.layers[size_t(i) % w.layers.size()];
    b += double(l.qkv.bytes() + l.o.bytes() + l.gate_up.bytes() + l.down.bytes());
  }
  return b + double(batch) * context * mc.layers * 2.0 * mc.kv_size() * 2.0;
}

void run(benchmark::State& s, int32_t batch, int threads) {
  decoder::ModelConfig mc = decoder::model_preset("qwen2-7b");
  mc.distinct_layers = 2;
  static const decoder::ModelWeights weights = decoder::make_weights(mc, 1, 2);
  decoder::EngineConfig ec;
  ec.num_threads = threads;
  const int32_t context = 1024, max_new = 256;
  ec.num_blocks = int64_t(batch) * ((context + max_new) / ec.block_size + 1);
  decoder::Engine engine(mc, weights, ec);
  for (int32_t r = 0; r < batch; ++r) {
    decoder::Request q;
    q.id = r;
    for (int32_t i = 0; i < context; ++i) q.prompt.push_back((r * 7919 + i * 104729) % mc.vocab);
    q.max_new_tokens = max_new;
    engine.add_synthetic_prefilled(q, uint64_t(r) + 1);
  }
  engine.step();  // warm-up: buffers reach their steady size
  engine.reset_times();
  for (auto _ : s) engine.step();
  const decoder::OpTimes& t = engine.times();
  s.counters["tokens/s"] = benchmark::Counter(double(batch) * double(s.iterations()), benchmark::Counter::kIsRate);
  s.counters["kernel_fraction"] = t.kernels() / t.step;
  s.counters["glue_fraction"] = 1.0 - t.kernels() / t.step;
  s.counters["gemm_fraction"] = t.gemm / t.step;
  s.counters["attention_fraction"] = t.attention / t.step;
  s.counters["weights_GB"] = double(weights.bytes()) / 1e9;
  const double floor = step_bytes(mc, weights, batch, context) / (bench::ceilings(threads).dram_read_gbs * 1e9);
  s.counters["step_floor_ms"] = floor * 1e3;
  s.counters["step_vs_floor"] = floor / (t.step / double(s.iterations()));
}

void register_all() {
  for (int32_t batch : {8, 32})
    for (int t : {1, 2})
      benchmark::RegisterBenchmark(("e2e/e2e_decode_qwen2_7b_shape_b" + std::to_string(batch) + "_ctx1024/threads:" +
                                    std::to_string(t)).c_str(),
                                   run, batch, t)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->Iterations(batch == 8 ? 24 : 8);
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
