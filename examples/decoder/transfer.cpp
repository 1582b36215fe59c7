// Disaggregated prefill / decode: a prefilled sequence leaves one engine as bytes (its state
// and its KV blocks in pagedinfer's flat transfer format, layer by layer) and enters another.
#include <cstring>
#include <stdexcept>
#include <string>

#include "engine_internal.hpp"

namespace decoder {

namespace {

constexpr uint32_t kMagic = 0x50444b56;  // "PDKV"

struct Writer {
  std::vector<uint8_t> out;
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
  auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& s) { return s->id == id; });
  if (it == running_.end() || (*it)->prefilling() || (*it)->generated == 0)
    throw std::invalid_argument("export_sequence: " + std::to_string(id) + " is not a prefilled running sequence");
  Sequence& s = **it;
  Writer w;
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
  const int32_t blocks = blocks_for(s.computed);
  w.put(model_.layers);
  w.put(config_.block_size);
  const size_t block_bytes = pagedinfer::kv_block_bytes(caches_[0]);
  for (const auto& cache : caches_) {
    const size_t at = w.out.size();
    w.out.resize(at + size_t(blocks) * block_bytes);
    pagedinfer::gather_blocks({cache, s.blocks.data(), blocks, w.out.data() + at, config_.num_threads});
  }
  for (int32_t b : s.blocks) blocks_.release(b);
  running_.erase(it);
  return w.out;
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
  s->tokens.resize(size_t(r.get<uint64_t>()));
  for (int32_t& t : s->tokens) t = r.get<int32_t>();
  const auto layers = r.get<int32_t>(), block_size = r.get<int32_t>();
  if (layers != model_.layers || block_size != config_.block_size)
    throw std::invalid_argument("import_sequence: exported with " + std::to_string(layers) + " layers and block size " +
                                std::to_string(block_size) + "; this engine has " + std::to_string(model_.layers) +
                                " and " + std::to_string(config_.block_size));
  const int32_t needed = blocks_for(int64_t(s->prompt_len) + s->max_new_tokens), used = blocks_for(s->computed);
  if (blocks_.free_blocks() < needed)
    throw OutOfBlocks("import_sequence: " + std::to_string(needed) + " KV blocks needed, " +
                      std::to_string(blocks_.free_blocks()) + " free");
  for (int32_t i = 0; i < needed; ++i) s->blocks.push_back(blocks_.allocate());
  const size_t block_bytes = pagedinfer::kv_block_bytes(caches_[0]);
  for (const auto& cache : caches_) {
    if (size_t(used) * block_bytes > data.size() - r.off) {
      for (int32_t b : s->blocks) blocks_.release(b);
      throw std::invalid_argument("import_sequence: the data is truncated");
    }
    pagedinfer::scatter_blocks({cache, data.data() + r.off, s->blocks.data(), used, config_.num_threads});
    r.off += size_t(used) * block_bytes;
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
  const size_t block_elems = size_t(config_.block_size) * size_t(model_.kv_size());
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
