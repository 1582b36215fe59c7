// RoPE on Llama-3-8B shapes: a fused QKV buffer of 32 q + 8 k + 8 v heads of 128 (bf16) per
// token, 1 token (decode) and 512 tokens (a prompt at positions 0..511), 1 and 2 threads, with
// the library's fp32 table (Llama-3.1 scaling, 8192 positions). Memory-bound: bw_fraction counts
// q and k read and written, the table rows and positions read. Iterations rotate over copies
// of the QKV buffer that together exceed 8x the L3 ("cold").
//   rope_neox_t* / rope_gptj_t*   apply_rope in place on q and k
//   rope_append_t*                apply_rope_and_append_kv: q in place, K rotated and V copied
//                                 into random pages of an HND cache (page 16, 1 GiB pool);
//                                 counted: q read+written, k and v read, K and V written
#include <benchmark/benchmark.h>

#include <numeric>
#include <random>
#include <string>

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

constexpr int32_t kQ = 32, kKv = 8, kDim = 128, kPage = 16;
constexpr int64_t kTokenElems = int64_t(kQ + 2 * kKv) * kDim;
constexpr int64_t kPoolPages = 8192;  // 8192 pages x 64 KiB (K+V) = 512 MiB

const RopeCache& table() {
  static const RopeCache cache = [] {
    RopeConfig c;
    c.rotary_dim = kDim;
    c.max_position = 8192;
    c.theta = 500000;
    c.scaling = RopeScaling::llama3;
    c.factor = 8;
    c.original_max_position = 8192;
    return make_rope_cache(c);
  }();
  return cache;
}

struct Cache {
  bench::Bytes k, v;
  KVCacheView view;
  Cache() {
    const std::size_t bytes = std::size_t(kPoolPages) * kPage * kKv * kDim * 2;
    k = bench::alloc(bytes);
    v = bench::alloc(bytes);
    bench::fill_bf16(reinterpret_cast<uint16_t*>(k.get()), bytes / 2, 21);
    bench::fill_bf16(reinterpret_cast<uint16_t*>(v.get()), bytes / 2, 22);
    view = kv_cache_hnd(k.get(), v.get(), DType::bf16, kPoolPages, kPage, kKv, kDim, kDim);
  }
};

enum class Op { neox, gptj, append };

void run(benchmark::State& s, Op op, int64_t tokens, int threads) {
  const std::size_t copy_bytes = std::size_t(tokens * kTokenElems) * 2;
  const std::size_t copies = bench::cold_copies(double(copy_bytes));
  bench::Bytes qkv = bench::alloc(copy_bytes * copies);
  bench::fill_bf16(reinterpret_cast<uint16_t*>(qkv.get()), copy_bytes * copies / 2, 23);
  std::vector<int64_t> positions(static_cast<std::size_t>(tokens));
  std::iota(positions.begin(), positions.end(), int64_t(tokens == 1 ? 4095 : 0));  // decode at position 4095
  // Fused append: each copy writes its tokens into its own random pages.
  static Cache* cache = nullptr;
  std::vector<std::vector<int64_t>> slots;
  if (op == Op::append) {
    if (!cache) cache = new Cache;
    std::vector<int64_t> pages(kPoolPages);
    std::iota(pages.begin(), pages.end(), 0);
    std::mt19937 rng(24);
    for (std::size_t c = 0; c < copies; ++c) {
      std::shuffle(pages.begin(), pages.end(), rng);
      slots.emplace_back();
      for (int64_t t = 0; t < tokens; ++t) slots.back().push_back(pages[std::size_t(t / kPage)] * kPage + t % kPage);
    }
  }
  RopeParams p;
  p.style = op == Op::gptj ? RopeStyle::gptj : RopeStyle::neox;
  p.num_tokens = tokens;
  p.positions = positions.data();
  p.table = table().table();
  p.head_dim = kDim;
  p.num_q_heads = kQ;
  p.num_kv_heads = kKv;
  p.num_threads = threads;
  std::size_t c = 0;
  for (auto _ : s) {
    uint16_t* base = reinterpret_cast<uint16_t*>(qkv.get() + c * copy_bytes);
    p.q = {base, DType::bf16, kTokenElems, kDim};
    p.k = {base + kQ * kDim, DType::bf16, kTokenElems, kDim};
    if (op == Op::append) {
      apply_rope_and_append_kv({p, cache->view, {base + (kQ + kKv) * kDim, DType::bf16, kTokenElems, kDim},
                               slots[c].data()});
    } else {
      apply_rope(p);
    }
    c = (c + 1) % copies;
  }
  const double row = kDim * 2.0;
  const double per_token = op == Op::append ? (2.0 * kQ + 4.0 * kKv) * row : 2.0 * (kQ + kKv) * row;
  bench::report_bytes(s, double(tokens) * (per_token + kDim * 4.0 + 8.0), threads);
  s.SetLabel(std::string("kernel=") + rope_kernel_name(DType::bf16, DType::bf16) + " ceiling=dram");
}

void register_all() {
  const std::pair<const char*, Op> ops[] = {{"rope_neox", Op::neox}, {"rope_gptj", Op::gptj}, {"rope_append", Op::append}};
  for (auto [name, op] : ops)
    for (int64_t tokens : {1, 512})
      for (int t : {1, 2}) {
        const std::string tag =
            std::string("rope/") + name + "_t" + std::to_string(tokens) + "/bf16/threads:" + std::to_string(t) + "/cold";
        benchmark::RegisterBenchmark(tag.c_str(), run, op, tokens, t)->UseRealTime();
      }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
