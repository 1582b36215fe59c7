// A continuous-batching engine on pagedinfer, cut the way the source deployments cut a decoder
// layer:
//   pre-attention   x = RMSNorm(h); qkv = x Wqkv (+ b); RoPE on q, k from the position-indexed
//                   table, with K and V written straight into the paged cache by slot mapping
//   attention       the weightless paged attention operator over the block tables
//   post-attention  h += attn Wo; x = RMSNorm(h); h += (SiLU(x Wgate) * x Wup) Wdown
// and the LM head RMSNorm(h) Wlm -> fp32 logits, sampled on the CPU.
//
// Each step decodes one token for every running sequence and prefills the next chunk of the
// others, all in one batch along the token dimension; requests join as blocks free up and
// leave when done. Blocks for a request's prompt and new tokens are reserved when it is
// admitted, so a step never runs out of blocks half way. Sequences may share a prompt's
// blocks (fork), with copy-on-write of a shared partial block. A prefilled sequence can be
// exported (tokens, sampling state, KV blocks) and imported into another engine, where it
// continues exactly as it would have.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>


#include "block_allocator.hpp"
#include "config.hpp"
#include "weights.hpp"

namespace decoder {

// A request's sampling options (pagedinfer::sample draws with them; its step is the request's
// count of generated tokens, so a request's tokens depend only on its logits and its seed).
struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (the highest logit, the lowest index on ties)
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off; else the smallest set of top tokens whose mass >= top_p
  uint64_t seed = 0;
};

struct Request {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  int32_t max_new_tokens = 16;
  SamplingParams sampling;
  int32_t eos = -1;  // stop token; -1: none
};

struct Result {
  std::vector<int32_t> tokens;     // generated tokens
  double first_token_seconds = 0;  // from add_request to the first token
};

// Seconds spent per op kind since construction (or reset_times).
// all_reduce: waiting in the tensor-parallel collectives (sums, the logits gather, the token
// broadcast), which includes waiting for the slowest rank.
struct OpTimes {
  double embed = 0, norm = 0, gemm = 0, rope = 0, attention = 0, sampling = 0, all_reduce = 0, step = 0;
  double kernels() const { return embed + norm + gemm + rope + attention + sampling; }
};

class Engine {
 public:
  Engine(const ModelConfig& model, const ModelWeights& weights, const EngineConfig& config);
  ~Engine();

  // Queues a request; it starts when blocks for its prompt and new tokens are free. Throws
  // OutOfBlocks if it could never fit the pool, std::invalid_argument for a bad request.
  void add_request(const Request& r);
  // A new sequence that shares every block of running sequence `parent` (whose tokens so far
  // must all be in the cache) and continues with its own sampling and length.
  void fork(int64_t parent, const Request& child);
  // One step: see the header comment. Returns false when nothing is waiting or running.
  bool step();
  void run_until_done();

  // Disaggregated serving. Exports a sequence whose prompt is prefilled (its first token
  // sampled) and removes it here; import continues it in this engine.
  std::vector<uint8_t> export_sequence(int64_t id);
  // The same into `out`, whose capacity is reused (a sender exporting many sequences avoids a
  // page fault per 4 KiB of every transfer).
  void export_sequence(int64_t id, std::vector<uint8_t>& out);
  void import_sequence(const std::vector<uint8_t>& data);

  // Benchmarks: a running sequence whose prompt r.prompt is already in the cache with
  // synthetic K/V (uniform bf16 in [-1, 1)) and whose first token is the prompt's last, as if
  // prefilled here. Decode costs do not depend on the values, and long contexts then need no
  // prefill.
  void add_synthetic_prefilled(const Request& r, uint64_t seed);

  bool finished(int64_t id) const { return results_.count(id) != 0; }
  const std::map<int64_t, Result>& results() const { return results_; }
  bool prefilled(int64_t id) const;  // running, prompt in the cache, first token sampled
  // Admission to first token of a running or finished sequence (-1 before its first token).
  double first_token_seconds(int64_t id) const;
  // Called with (request id, logits [vocab]) for every row that is sampled (tests); under tensor
  // parallelism on rank 0 only.
  std::function<void(int64_t, const float*)> on_logits;

  const OpTimes& times() const { return times_; }
  void reset_times() { times_ = OpTimes{}; }
  int64_t free_blocks() const { return blocks_.free_blocks(); }
  const ModelConfig& model() const { return model_; }

 private:
  struct Sequence;
  struct Batch;
  class Forward;

  void admit();
  void schedule(Batch& b);
  void make_writable(Sequence& s, int32_t block_index);
  void finish_step(Batch& b);
  void retire(Sequence& s);
  int32_t blocks_for(int64_t tokens) const;

  ModelConfig model_;
  ModelConfig local_;  // this rank's shape: model_.shard(ranks), or model_ alone
  const ModelWeights& weights_;
  EngineConfig config_;
  BlockAllocator blocks_;
  // KV pools on huge pages, as pagedinfer/kv_cache.hpp advises.
  using KVPool = std::vector<uint16_t, pagedinfer::HugePageAllocator<uint16_t>>;

  std::vector<KVPool> k_pool_, v_pool_;  // per layer, NHD or HND (EngineConfig::kv_hnd), bf16
  std::vector<pagedinfer::KVCacheView> caches_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::map<int64_t, Result> results_;
  std::unique_ptr<Forward> forward_;
  std::unique_ptr<Batch> batch_;
  std::vector<int32_t> sampled_;  // this step's tokens
  std::vector<pagedinfer::SamplingParams> sample_requests_;  // this step's draws
  OpTimes times_;
};

}  // namespace decoder
