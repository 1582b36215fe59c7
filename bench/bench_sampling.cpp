// sample() on a serving batch: 64 requests of fp32 logits over Qwen2's vocabulary (152064), 1
// and 2 threads. Memory-bound when the rules are selective: bw_fraction counts the logits read
// once against the same-run DRAM read. Iterations rotate over copies of the logits that together
// exceed 8x the L3, so each call reads them from DRAM ("cold"), as after an LM head.
//   sample_topk_topp_*   top-k 50, top-p 0.9, temperature 0.7 (a common chat setting)
//   sample_topp_*        top-p 0.9 alone: the nucleus over the whole vocabulary
//   sample_plain_*       temperature 1 alone (vLLM's defaults): every token can be drawn
//   sample_greedy_*      temperature 0
//   sample_penalties_*   top-k 50 / top-p 0.9 with repetition, presence and frequency penalties
//                        over 1024 previous tokens per request
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

constexpr int64_t kReqs = 64, kVocab = 152064;

enum class Rules { topk_topp, topp, plain, greedy, penalties };

void run(benchmark::State& s, Rules rules, int threads) {
  const std::size_t batch_bytes = std::size_t(kReqs * kVocab) * 4;
  const std::size_t copies = bench::cold_copies(double(batch_bytes));
  bench::Bytes logits = bench::alloc(batch_bytes * copies);
  {
    // Logits shaped like a language model's: a few large values over a broad normal body.
    std::mt19937 rng(3);
    std::normal_distribution<float> body(0.f, 2.f);
    auto* l = reinterpret_cast<float*>(logits.get());
    for (std::size_t i = 0; i < batch_bytes / 4 * copies; ++i) l[i] = body(rng) + (rng() % 5000 == 0 ? 12.f : 0.f);
  }
  std::vector<SamplingParams> requests(kReqs);
  std::vector<int64_t> indptr(kReqs + 1, 0);
  std::vector<int32_t> prev;
  for (int64_t r = 0; r < kReqs; ++r) {
    SamplingParams& q = requests[size_t(r)];
    q.seed = uint64_t(r);
    q.temperature = rules == Rules::greedy ? 0.f : rules == Rules::plain ? 1.f : 0.7f;
    if (rules == Rules::topk_topp || rules == Rules::penalties) q.top_k = 50;
    if (rules == Rules::topk_topp || rules == Rules::penalties || rules == Rules::topp) q.top_p = 0.9f;
    if (rules == Rules::penalties) {
      q.repetition_penalty = 1.1f;
      q.presence_penalty = 0.5f;
      q.frequency_penalty = 0.2f;
      for (int i = 0; i < 1024; ++i) prev.push_back(int32_t((r * 7919 + i * 104729) % kVocab));
    }
    indptr[size_t(r) + 1] = int64_t(prev.size());
  }
  std::vector<int32_t> tokens(kReqs);
  SampleParams p;
  p.num_reqs = kReqs;
  p.vocab = kVocab;
  p.requests = requests.data();
  if (rules == Rules::penalties) {
    p.prev_indptr = indptr.data();
    p.prev_tokens = prev.data();
  }
  p.tokens = tokens.data();
  p.num_threads = threads;
  const std::size_t ws_bytes = sample_workspace_size(p);
  bench::Bytes ws = bench::alloc(ws_bytes);
  p.workspace = ws.get();
  p.workspace_bytes = ws_bytes;
  std::size_t c = 0;
  for (auto _ : s) {
    p.logits = {logits.get() + c * batch_bytes, DType::f32, kVocab, 0};
    for (auto& q : requests) ++q.step;
    sample(p);
    c = (c + 1) % copies;
  }
  bench::report_bytes(s, double(batch_bytes), threads);
  s.counters["requests_per_s"] = benchmark::Counter(double(kReqs), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(std::string("kernel=") + sample_kernel_name() + " ceiling=dram");
}

void register_all() {
  const std::pair<const char*, Rules> cases[] = {{"sample_topk_topp", Rules::topk_topp},
                                                 {"sample_topp", Rules::topp},
                                                 {"sample_plain", Rules::plain},
                                                 {"sample_greedy", Rules::greedy},
                                                 {"sample_penalties", Rules::penalties}};
  for (auto [name, rules] : cases)
    for (int t : {1, 2}) {
      const std::string tag = std::string("sampling/") + name + "_b64_v152064/threads:" + std::to_string(t) + "/cold";
      benchmark::RegisterBenchmark(tag.c_str(), run, rules, t)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
