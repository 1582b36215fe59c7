// Scheduling: admission, the step's batch, copy-on-write, sampling and retirement.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "engine_internal.hpp"

namespace decoder {

Engine::Engine(const ModelConfig& model, const ModelWeights& weights, const EngineConfig& config)
    : model_(model),
      local_(config.tensor_parallel ? model.shard(config.tensor_parallel->size()) : model),
      weights_(weights),
      config_(config),
      blocks_(config.num_blocks) {
  if (config.block_size < 1 || config.prefill_chunk < 1 || config.max_batch_tokens < 1 || config.max_running < 1 ||
      config.num_threads < 1)
    throw std::invalid_argument("EngineConfig: block_size, prefill_chunk, max_batch_tokens, max_running and "
                                "num_threads must be >= 1");
  if (int32_t(weights.layers.size()) != model.stored_layers() || weights.lm_head.n() != local_.vocab ||
      weights.layers[0].qkv.n() != local_.qkv_size())
    throw std::invalid_argument("Engine: the weights were made for another ModelConfig (or another rank count)");
  const size_t pool = size_t(config.num_blocks) * size_t(config.block_size) * size_t(local_.kv_size());
  const auto view = config.kv_hnd ? pagedinfer::kv_cache_hnd : pagedinfer::kv_cache_nhd;
  for (int32_t l = 0; l < model.layers; ++l) {
    k_pool_.emplace_back(pool);
    v_pool_.emplace_back(pool);
    caches_.push_back(view(k_pool_.back().data(), v_pool_.back().data(), pagedinfer::DType::bf16, config.num_blocks,
                           config.block_size, local_.kv_heads, local_.head_dim, local_.head_dim));
  }
  forward_ = std::make_unique<Forward>(local_, model.vocab, config);
  batch_ = std::make_unique<Batch>();
}

Engine::~Engine() = default;

int32_t Engine::blocks_for(int64_t tokens) const {
  return int32_t((tokens + config_.block_size - 1) / config_.block_size);
}

void Engine::add_request(const Request& r) {
  if (r.prompt.empty()) throw std::invalid_argument("request " + std::to_string(r.id) + ": empty prompt");
  if (r.max_new_tokens < 1) throw std::invalid_argument("request " + std::to_string(r.id) + ": max_new_tokens < 1");
  for (int32_t t : r.prompt)
    if (t < 0 || t >= model_.vocab)
      throw std::invalid_argument("request " + std::to_string(r.id) + ": token " + std::to_string(t) +
                                  " is outside the vocabulary");
  const int64_t total = int64_t(r.prompt.size()) + r.max_new_tokens;
  if (total > model_.max_position)
    throw std::invalid_argument("request " + std::to_string(r.id) + ": " + std::to_string(total) +
                                " tokens exceed max_position " + std::to_string(model_.max_position));
  if (blocks_for(total) > blocks_.num_blocks())
    throw OutOfBlocks("request " + std::to_string(r.id) + " needs " + std::to_string(blocks_for(total)) +
                      " KV blocks; the pool has " + std::to_string(blocks_.num_blocks()));
  auto s = std::make_unique<Sequence>();
  s->id = r.id;
  s->tokens = r.prompt;
  s->prompt_len = int32_t(r.prompt.size());
  s->max_new_tokens = r.max_new_tokens;
  s->eos = r.eos;
  s->sampling = r.sampling;
  s->arrival = Clock::now();
  waiting_.push_back(std::move(s));
}

void Engine::fork(int64_t parent, const Request& child) {
  auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& s) { return s->id == parent; });
  if (it == running_.end()) throw std::invalid_argument("fork: sequence " + std::to_string(parent) + " is not running");
  const Sequence& p = **it;
  if (p.prefilling()) throw std::invalid_argument("fork: sequence " + std::to_string(parent) + " is still prefilling");
  auto s = std::make_unique<Sequence>(p);  // tokens, counts and arrival; own blocks and sampling below
  s->id = child.id;
  s->sampling = child.sampling;
  s->eos = child.eos;
  s->max_new_tokens = std::max(child.max_new_tokens, p.generated);
  const int32_t shared = blocks_for(p.computed), needed = blocks_for(int64_t(p.prompt_len) + s->max_new_tokens);
  if (blocks_.free_blocks() < needed - shared)
    throw OutOfBlocks("fork: " + std::to_string(needed - shared) + " more KV blocks needed, " +
                      std::to_string(blocks_.free_blocks()) + " free");
  s->blocks.assign(p.blocks.begin(), p.blocks.begin() + shared);
  for (int32_t b : s->blocks) blocks_.share(b);
  while (int32_t(s->blocks.size()) < needed) s->blocks.push_back(blocks_.allocate());
  running_.push_back(std::move(s));
}

void Engine::admit() {
  while (!waiting_.empty() && int32_t(running_.size()) < config_.max_running) {
    Sequence& s = *waiting_.front();
    const int32_t needed = blocks_for(int64_t(s.prompt_len) + s.max_new_tokens);
    if (blocks_.free_blocks() < needed) break;  // first come, first served
    for (int32_t i = 0; i < needed; ++i) s.blocks.push_back(blocks_.allocate());
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

// A block about to be written that other sequences also own is replaced by a private copy.
void Engine::make_writable(Sequence& s, int32_t index) {
  const int32_t old = s.blocks[size_t(index)];
  if (blocks_.owners(old) == 1) return;
  const int32_t fresh = blocks_.allocate();  // fork() checked that enough blocks were free
  const int32_t pair[2] = {old, fresh};
  for (const auto& cache : caches_) pagedinfer::copy_blocks({cache, pair, 1, config_.num_threads});
  blocks_.release(old);
  s.blocks[size_t(index)] = fresh;
}

void Engine::schedule(Batch& b) {
  b.clear();
  int64_t budget = config_.max_batch_tokens;
  const auto add = [&](Sequence& s, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
      const int32_t pos = s.computed + i, index = pos / config_.block_size;
      if (pos % config_.block_size == 0 || i == 0) make_writable(s, index);
      b.token_ids.push_back(s.tokens[size_t(pos)]);
      b.positions.push_back(pos);
      b.slots.push_back(int64_t(s.blocks[size_t(index)]) * config_.block_size + pos % config_.block_size);
    }
    b.seqs.push_back(&s);
    b.q_indptr.push_back(int32_t(b.token_ids.size()));
    b.kv_len.push_back(s.computed + n);
    b.table_cols = std::max(b.table_cols, int32_t(s.blocks.size()));
    if (s.computed + n == int32_t(s.tokens.size())) {  // every known token is in: sample the next
      b.sample_rows.push_back(int32_t(b.token_ids.size()) - 1);
      b.sample_seqs.push_back(&s);
    }
    budget -= n;
  };
  // Decoding sequences first (one token each), then prompt chunks.
  for (auto& s : running_)
    if (!s->prefilling() && budget > 0) add(*s, 1);
  for (auto& s : running_)
    if (s->prefilling() && budget > 0)
      add(*s, int32_t(std::min<int64_t>({s->prompt_len - s->computed, config_.prefill_chunk, budget})));
  b.block_table.assign(b.seqs.size() * size_t(b.table_cols), 0);
  for (size_t r = 0; r < b.seqs.size(); ++r)
    std::copy(b.seqs[r]->blocks.begin(), b.seqs[r]->blocks.end(), b.block_table.begin() + std::ptrdiff_t(r * size_t(b.table_cols)));
}

bool Engine::step() {
  admit();
  if (running_.empty()) return !waiting_.empty();
  ScopedTimer timer(times_.step);
  Batch& b = *batch_;
  schedule(b);
  forward_->run(b, weights_, caches_, times_);
  finish_step(b);
  return true;
}

// Samples on this engine, or under tensor parallelism on rank 0 (the only one with logits),
// which broadcasts the tokens.
void Engine::finish_step(Batch& b) {
  for (size_t r = 0; r < b.seqs.size(); ++r) b.seqs[r]->computed += b.q_indptr[r + 1] - b.q_indptr[r];
  TensorParallel* tp = config_.tensor_parallel;
  std::vector<int32_t>& tokens = sampled_;
  tokens.assign(b.sample_seqs.size(), 0);
  if (!tp || tp->rank() == 0) {
    ScopedTimer timer(times_.sampling);
    sample_requests_.resize(b.sample_seqs.size());
    for (size_t i = 0; i < b.sample_seqs.size(); ++i) {
      const Sequence& s = *b.sample_seqs[i];
      if (on_logits) on_logits(s.id, forward_->logits(i));
      pagedinfer::SamplingParams& q = sample_requests_[i];
      q.temperature = s.sampling.temperature;
      q.top_k = s.sampling.top_k;
      q.top_p = s.sampling.top_p;
      q.seed = s.sampling.seed;
      q.step = uint64_t(s.generated);  // the draw depends on (seed, step) only
    }
    if (!tokens.empty()) forward_->sample(sample_requests_, tokens.data());
  }
  if (tp && !tokens.empty()) {
    ScopedTimer timer(times_.all_reduce);
    tp->broadcast_from_root(tokens.data(), tokens.size());
  }
  for (size_t i = 0; i < b.sample_seqs.size(); ++i) {
    Sequence& s = *b.sample_seqs[i];
    s.tokens.push_back(tokens[i]);
    if (s.generated++ == 0) s.first_token_seconds = seconds_between(s.arrival, Clock::now());
  }
  for (Sequence* s : b.sample_seqs)
    if (s->generated >= s->max_new_tokens || s->tokens.back() == s->eos) retire(*s);
  running_.erase(std::remove(running_.begin(), running_.end(), nullptr), running_.end());
}

// Records the result, returns the blocks and leaves a null in running_ (erased by the caller).
void Engine::retire(Sequence& s) {
  Result& r = results_[s.id];
  r.tokens.assign(s.tokens.begin() + s.prompt_len, s.tokens.end());
  r.first_token_seconds = s.first_token_seconds;
  for (int32_t b : s.blocks) blocks_.release(b);
  for (auto& p : running_)
    if (p.get() == &s) p.reset();
}

void Engine::run_until_done() {
  while (step()) {
  }
}

double Engine::first_token_seconds(int64_t id) const {
  for (const auto& s : running_)
    if (s->id == id) return s->first_token_seconds;
  const auto done = results_.find(id);
  if (done == results_.end()) throw std::invalid_argument("first_token_seconds: no sequence " + std::to_string(id));
  return done->second.first_token_seconds;
}

bool Engine::prefilled(int64_t id) const {
  for (const auto& s : running_)
    if (s->id == id) return !s->prefilling() && s->generated > 0;
  return false;
}

}  // namespace decoder
