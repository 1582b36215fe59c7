// Disaggregated prefill / decode: a prefilled sequence leaves one engine as bytes (its state,
// then its KV cache in pagedinfer's KV transfer format, which the receiver validates before
// writing into its pool) and enters another, whatever its pool layout.
#include <cstring>
#include <stdexcept>
#include <string>

#include "engine_internal.hpp"

namespace decoder {

namespace {

constexpr uint32_t kMagic = 0x50444b56;  // "PDKV"

struct Writer {
  std::vector<uint8_t>& out;
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
};

struct Reader {
  const std::vector<uint8_t>& in;
  size_t off = 0;
  template <class T>
  T get() {
    T v;
    take(&v, sizeof(T));
    return v;
  }
  void take(void* dst, size_t n) {
    if (n > in.size() - off) throw std::invalid_argument("import_sequence: the data is truncated");
    std::memcpy(dst, in.data() + off, n);
    off += n;
  }
};

}  // namespace

std::vector<uint8_t> Engine::export_sequence(int64_t id) {
  std::vector<uint8_t> out;
  export_sequence(id, out);
  return out;
}

void Engine::export_sequence(int64_t id, std::vector<uint8_t>& out) {
  auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& s) { return s->id == id; });
  if (it == running_.end() || (*it)->prefilling() || (*it)->generated == 0)
    throw std::invalid_argument("export_sequence: " + std::to_string(id) + " is not a prefilled running sequence");
  Sequence& s = **it;
  out.clear();  // keeps the capacity: fresh pages cost a fault each
  Writer w{out};
  w.put(kMagic);
  w.put(s.id);
  w.put(s.prompt_len);
  w.put(s.computed);
  w.put(s.generated);
  w.put(s.max_new_tokens);
  w.put(s.eos);
  w.put(s.sampling);
  w.put(s.first_token_seconds);
  w.put(uint64_t(s.tokens.size()));
  for (int32_t t : s.tokens) w.put(t);
  const size_t kv_bytes = pagedinfer::kv_transfer_bytes(caches_[0], model_.layers, s.computed);
  w.put(uint64_t(kv_bytes));
  const size_t at = w.out.size();
  w.out.resize(at + kv_bytes);
  pagedinfer::export_kv({caches_.data(), model_.layers, s.blocks.data(), s.computed, w.out.data() + at, kv_bytes,
                         config_.num_threads});
  for (int32_t b : s.blocks) blocks_.release(b);
  running_.erase(it);
}

void Engine::import_sequence(const std::vector<uint8_t>& data) {
  Reader r{data};
  if (r.get<uint32_t>() != kMagic) throw std::invalid_argument("import_sequence: not an exported sequence");
  auto s = std::make_unique<Sequence>();
  s->id = r.get<int64_t>();
  s->prompt_len = r.get<int32_t>();
  s->computed = r.get<int32_t>();
  s->generated = r.get<int32_t>();
  s->max_new_tokens = r.get<int32_t>();
  s->eos = r.get<int32_t>();
  s->sampling = r.get<SamplingParams>();
  s->first_token_seconds = r.get<double>();
  const auto count = r.get<uint64_t>();
  if (count > (data.size() - r.off) / 4) throw std::invalid_argument("import_sequence: the data is truncated");
  s->tokens.resize(size_t(count));
  for (int32_t& t : s->tokens) {
    t = r.get<int32_t>();
    if (t < 0 || t >= model_.vocab) throw std::invalid_argument("import_sequence: a token is outside the vocabulary");
  }
  if (s->computed < 1 || s->computed >= int32_t(s->tokens.size()) || s->prompt_len > s->computed)
    throw std::invalid_argument("import_sequence: inconsistent sequence state (not a prefilled sequence)");
  const auto kv_bytes = r.get<uint64_t>();
  if (kv_bytes != data.size() - r.off) throw std::invalid_argument("import_sequence: the data is truncated");
  const int32_t needed = blocks_for(int64_t(s->prompt_len) + s->max_new_tokens);
  if (blocks_.free_blocks() < needed)
    throw OutOfBlocks("import_sequence: " + std::to_string(needed) + " KV blocks needed, " +
                      std::to_string(blocks_.free_blocks()) + " free");
  for (int32_t i = 0; i < needed; ++i) s->blocks.push_back(blocks_.allocate());
  // import_kv checks the transfer (checksum, layers, block size, heads, page count) before it
  // writes into these fresh blocks; a transfer of another token count is refused after.
  try {
    const pagedinfer::KVTransferInfo info =
        pagedinfer::import_kv({caches_.data(), model_.layers, data.data() + r.off, size_t(kv_bytes), s->blocks.data(),
                               blocks_for(s->computed), config_.num_threads});
    if (info.num_tokens != s->computed)
      throw std::invalid_argument("import_sequence: the KV holds " + std::to_string(info.num_tokens) +
                                  " tokens; the sequence has " + std::to_string(s->computed));
  } catch (...) {
    for (int32_t b : s->blocks) blocks_.release(b);
    throw;
  }
  s->arrival = Clock::now();
  running_.push_back(std::move(s));
}

void Engine::add_synthetic_prefilled(const Request& r, uint64_t seed) {
  add_request(r);  // validates, and queues at the back
  std::unique_ptr<Sequence> s = std::move(waiting_.back());
  waiting_.pop_back();
  const int32_t needed = blocks_for(int64_t(s->prompt_len) + s->max_new_tokens), used = blocks_for(s->prompt_len);
  if (blocks_.free_blocks() < needed)
    throw OutOfBlocks("add_synthetic_prefilled: " + std::to_string(needed) + " KV blocks needed, " +
                      std::to_string(blocks_.free_blocks()) + " free");
  for (int32_t i = 0; i < needed; ++i) s->blocks.push_back(blocks_.allocate());
  const size_t block_elems = size_t(config_.block_size) * size_t(local_.kv_size());
  uint64_t state = seed;
  for (int32_t l = 0; l < model_.layers; ++l)
    for (KVPool* pool : {&k_pool_[size_t(l)], &v_pool_[size_t(l)]})
      for (int32_t i = 0; i < used; ++i) {
        uint16_t* block = pool->data() + size_t(s->blocks[size_t(i)]) * block_elems;
        for (size_t e = 0; e < block_elems; ++e) {
          state = state * 6364136223846793005ull + 1442695040888963407ull;  // LCG: fast and plenty here
          block[e] = pagedinfer::float_to_bf16(float(int32_t(state >> 40) - (1 << 23)) / float(1 << 23));
        }
      }
  s->computed = s->prompt_len;
  s->tokens.push_back(s->tokens.back());
  s->generated = 1;
  s->first_token_seconds = 0;
  running_.push_back(std::move(s));
}

}  // namespace decoder
