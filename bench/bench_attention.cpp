// Paged attention on real model shapes (Llama-3-8B / Qwen2-7B: 32 query heads, 8 KV heads,
// head dim 128, bf16 KV), reported against the same run's ceilings (roofline.hpp).
//   decode_*  memory-bound: bytes of K, V, q and out per step -> bw_fraction. KV caches are
//             replicated (each copy with its own shuffled block table) until the data touched
//             exceeds 8x the L3, and iterations rotate over the copies: "cold", as in a model
//             whose layers each read their own cache.
//   dense_*   the same data layout with one page per sequence (contiguous), same kernel.
//   Paged cold decode also reports page_bw_fraction: against the read bandwidth of scattered
//   chunks of one page row (roofline.hpp's scattered_read_gbs), the ceiling a shuffled block
//   table leaves. The report's header prints that ceiling for several chunk sizes beside the
//   same loop reading in order (print_page_read_ceilings).
//   prefill_* / vllm_*  compute-bound: 4 * head_dim flops per visible (query, key) pair and
//             head -> peak_fraction of the bf16 dot peak (the target the project set), "hot".
//   mla_decode_*  DeepSeek's latent cache (V inside K), compute-bound -> peak_fraction.
//   tree_verify_*  a speculative draft tree under a custom mask, against plain causal.
//   cascade_vs_flat_*  64 decodes over a shared prefix: cascade attention against flat.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"
#include "attention_setup.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

using bench::alloc;
using bench::Bytes;
using bench::fill_bf16;
using bench::kHeadDim;
using bench::kKvHeads;
using bench::kQoHeads;
using bench::Setup;
using bench::Shape;

Setup& setup_for(const Shape& s) {
  static std::unique_ptr<Setup> current;  // one shape's memory at a time
  if (!current || current->shape.tag != s.tag) {
    current.reset();
    current = std::make_unique<Setup>(s);
  }
  return *current;
}

void run_attention(benchmark::State& state, const Shape& shape, int threads) {
  Setup& s = setup_for(shape);
  const AttentionPlan plan = s.plan(threads);
  std::vector<AttentionParams> params;
  for (int32_t c = 0; c < s.copies; ++c) {
    params.push_back(s.params(c));
    params.back().workspace = s.workspace.get();
    params.back().workspace_bytes = s.workspace_bytes;
  }
  int32_t c = 0;
  for (auto _ : state) {
    paged_attention(plan, params[std::size_t(c)]);
    c = (c + 1) % s.copies;
  }
  state.counters["threads"] = threads;
  state.counters["copies"] = s.copies;
  const char* kernel = attention_kernel_name(DType::bf16, DType::bf16);
  if (shape.q_len == 1) {
    bench::report_bytes(state, s.kv_bytes, threads);
    state.counters["flops_per_byte"] = s.flops / s.kv_bytes;
    state.SetLabel(std::string("kernel=") + kernel + " fetch=" + attention_kv_fetch_name() + " ceiling=dram");
    if (!shape.dense && shape.cold) {
      // Against what reading the cache's scattered page rows allows at all (one KV head's page:
      // page x head_dim x 2 bytes, 4 KiB here): 0.6-0.75 of dram_read on this machine.
      const double chunk = double(shape.page) * kHeadDim * 2;
      const double gbs = bench::scattered_read_gbs(threads, std::size_t(chunk));
      state.counters["page_read_gbs"] = gbs;
      state.counters["page_bw_fraction"] =
          benchmark::Counter(s.kv_bytes * double(state.iterations()) / (gbs * 1e9), benchmark::Counter::kIsRate);
    }
  } else {
    const bool bf16_dot = std::string(kernel) == "avx512_bf16_dot";
    const auto& ceil = bench::ceilings(threads);
    bench::report_flops(state, s.flops, bf16_dot ? ceil.bf16_dot_gflops : ceil.fp32_fma_gflops);
    state.counters["flops_per_byte"] = s.flops / s.kv_bytes;
    state.SetLabel(std::string("kernel=") + kernel + " unit=" + (bf16_dot ? "bf16_dot" : "fp32_fma"));
  }
}

// Times `main` alternately against `other` (bench::time_against), both rotating over their
// copies; returns other time / main time and reports main's bytes against the DRAM read.
double run_alternated(benchmark::State& state, Setup& main, Setup& other, int threads) {
  const AttentionPlan plan = main.plan(threads), other_plan = other.plan(threads);
  int32_t c = 0;  // both rotate over their copies, one step per iteration
  const auto run = [&c](Setup& s, const AttentionPlan& p) {
    AttentionParams params = s.params(c % s.copies);
    params.workspace = s.workspace.get();
    params.workspace_bytes = s.workspace_bytes;
    paged_attention(p, params);
  };
  const double ratio = bench::time_against(state, [&] { run(main, plan), ++c; }, [&] { run(other, other_plan); });
  state.counters["threads"] = threads;
  bench::report_bytes(state, main.kv_bytes, threads);
  state.SetLabel(std::string("kernel=") + attention_kernel_name(DType::bf16, main.kv) + " ceiling=dram");
  return ratio;
}

// Paged decode against its dense twin on the same machine: the two setups are timed
// alternately (bench::time_against). Time: paged. paged_vs_dense = dense time / paged time
// (1: paging costs nothing; the target is >= 0.95).
void run_paged_vs_dense(benchmark::State& state, const Shape& paged_shape, const Shape& dense_shape, int threads) {
  Setup paged(paged_shape), dense(dense_shape);
  state.counters["paged_vs_dense"] = run_alternated(state, paged, dense, threads);
}

// Decode over another cache dtype against the same decode over bf16, timed alternately. Time:
// the other dtype's. speedup = bf16 time / its time. 8-bit caches (i8 with row scales, fp8):
// the target is >= 1.7; f16: >= 0.9 (the same bytes, issue 25's "within 10%"). bw_fraction
// counts the call's own bytes (scales included).
void run_kv_vs_bf16(benchmark::State& state, const Shape& shape, DType kv, int threads) {
  Setup other(shape, kv), bf16(shape);
  state.counters["speedup"] = run_alternated(state, other, bf16, threads);
}

// Speculative verification: each request checks a draft tree of q_len nodes (EAGLE-like: each
// node's parent one of the 8 before it) over its prefix, with a packed custom mask, timed
// alternately with the same call under a plain causal mask. peak_fraction counts the pairs the
// tree mask leaves visible; causal_vs_tree = causal time / tree time (1: the mask costs nothing,
// though the causal call also computes the draft-to-draft pairs the tree hides).
void run_tree_vs_causal(benchmark::State& state, const Shape& shape, int threads) {
  Setup& s = setup_for(shape);
  const AttentionPlan plan = s.plan(threads);
  std::mt19937 rng(5);
  std::vector<uint8_t> mask;
  std::vector<int64_t> mask_indptr{0};
  double pairs = 0;
  const int32_t prefix = shape.ctx - shape.q_len;
  for (int32_t r = 0; r < shape.batch; ++r) {
    std::vector<int32_t> parent(std::size_t(shape.q_len), -1);
    std::vector<uint8_t> seg(std::size_t((int64_t(shape.q_len) * shape.ctx + 7) / 8), 0);
    for (int32_t i = 0; i < shape.q_len; ++i) {
      if (i > 0) parent[std::size_t(i)] = i - 1 - int32_t(rng() % std::min(i, 8));
      std::vector<int32_t> keys(static_cast<std::size_t>(prefix));
      std::iota(keys.begin(), keys.end(), 0);
      for (int32_t a = i; a >= 0; a = parent[std::size_t(a)]) keys.push_back(prefix + a);
      for (int32_t j : keys) {
        const int64_t k = int64_t(i) * shape.ctx + j;
        seg[std::size_t(k / 8)] |= uint8_t(1u << (k % 8));
      }
      pairs += double(keys.size());
    }
    mask.insert(mask.end(), seg.begin(), seg.end());
    mask_indptr.push_back(int64_t(mask.size()));
  }
  int32_t c = 0;
  const auto run = [&](bool tree) {
    AttentionParams p = s.params(c % s.copies);
    p.workspace = s.workspace.get();
    p.workspace_bytes = s.workspace_bytes;
    if (tree) p.custom_mask = mask.data(), p.mask_indptr = mask_indptr.data();
    paged_attention(plan, p);
  };
  state.counters["causal_vs_tree"] = bench::time_against(state, [&] { run(true), ++c; }, [&] { run(false); });
  state.counters["threads"] = threads;
  const char* kernel = attention_kernel_name(DType::bf16, DType::bf16);
  const bool bf16_dot = std::string(kernel) == "avx512_bf16_dot";
  const auto& ceil = bench::ceilings(threads);
  bench::report_flops(state, pairs * kQoHeads * 4 * kHeadDim, bf16_dot ? ceil.bf16_dot_gflops : ceil.fp32_fma_gflops);
  state.SetLabel(std::string("kernel=") + kernel + " unit=" + (bf16_dot ? "bf16_dot" : "fp32_fma"));
}

// MLA decode (DeepSeek-V3 / Kimi K2 absorbed): 128 query heads over one latent KV head of 576
// (V = its first 512, no second pool), bf16, page 64, shuffled. 8 requests of 4096; two cache
// copies alternate so that each step reads from memory. Compute-bound: 128 query rows per
// key, so peak_fraction against the unit the kernel runs on.
void run_mla_decode(benchmark::State& state, int threads) {
  constexpr int32_t kBatch = 8, kCtx = 4096, kPage = 64, kHeads = 128, kDk = 576, kDv = 512;
  constexpr int32_t kCols = kCtx / kPage, kCopies = 2;
  const int64_t pages = int64_t(kBatch) * kCols * kCopies;
  const std::size_t elems = std::size_t(pages) * kPage * kDk;
  Bytes kv = alloc(elems * 2), q = alloc(std::size_t(kBatch) * kHeads * kDk * 2), out = alloc(std::size_t(kBatch) * kHeads * kDv * 2);
  fill_bf16(reinterpret_cast<uint16_t*>(kv.get()), elems, 1);
  fill_bf16(reinterpret_cast<uint16_t*>(q.get()), std::size_t(kBatch) * kHeads * kDk, 2);
  std::vector<int32_t> perm(static_cast<std::size_t>(pages)), q_indptr{0}, kv_len(kBatch, kCtx);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
  for (int32_t r = 0; r < kBatch; ++r) q_indptr.push_back(r + 1);
  AttentionProblem pr;
  pr.num_reqs = kBatch;
  pr.q_indptr = q_indptr.data();
  pr.kv_len = kv_len.data();
  pr.num_q_heads = kHeads;
  pr.num_kv_heads = 1;
  pr.head_dim_qk = kDk;
  pr.head_dim_v = kDv;
  pr.num_threads = threads;
  const AttentionPlan plan = plan_attention(pr);
  Bytes ws = alloc(plan.workspace_bytes);
  AttentionParams p;
  p.q = {q.get(), DType::bf16, kHeads * kDk, kDk};
  p.q_indptr = q_indptr.data();
  p.num_q_heads = kHeads;
  p.cache = kv_cache_mla(kv.get(), DType::bf16, pages, kPage, kDk, kDv);
  p.pages.num_reqs = kBatch;
  p.pages.kv_len = kv_len.data();
  p.pages.block_table_cols = kCols;
  p.out = {out.get(), DType::bf16, kHeads * kDv, kDv};
  p.scale = 1.f / std::sqrt(192.f);
  p.workspace = ws.get();
  p.workspace_bytes = plan.workspace_bytes;
  int32_t c = 0;
  for (auto _ : state) {
    p.pages.block_table = perm.data() + std::size_t(c) * kBatch * kCols;
    paged_attention(plan, p);
    c = (c + 1) % kCopies;
  }
  const char* kernel = attention_kernel_name(DType::bf16, DType::bf16);
  const bool bf16_dot = std::string(kernel) == "avx512_bf16_dot";
  const auto& ceil = bench::ceilings(threads);
  const double flops = double(kBatch) * kHeads * kCtx * 2.0 * (kDk + kDv);
  bench::report_flops(state, flops, bf16_dot ? ceil.bf16_dot_gflops : ceil.fp32_fma_gflops);
  state.counters["threads"] = threads;
  state.counters["flops_per_byte"] = flops / (double(kBatch) * kCtx * kDk * 2);
  state.SetLabel(std::string("kernel=") + kernel + " unit=" + (bf16_dot ? "bf16_dot" : "fp32_fma"));
}

// Shared prefixes: 64 requests decode over one 4096-token prompt prefix and 128 tokens each of
// their own, as cascade attention (the prefix level once for the group) and as flat attention
// over the same pages (each block table: the prefix pages, then the request's), timed
// alternately. Layers' caches rotate over copies larger than the L3 (the prefix alone, 16 MiB
// per layer, would otherwise stay cached for the flat call's 64 re-reads). speedup = flat time
// / cascade time.
void run_cascade_vs_flat(benchmark::State& state, int threads) {
  constexpr int32_t kReqs = 64, kPrefix = 4096, kSuffix = 128, kPage = 16;
  constexpr int32_t kPrefixPages = kPrefix / kPage, kSuffixPages = kSuffix / kPage;
  const int32_t layer_pages = kPrefixPages + kReqs * kSuffixPages;
  const std::size_t page_bytes = std::size_t(kPage) * kKvHeads * kHeadDim * 2;
  const int32_t copies = int32_t(bench::cold_copies(2.0 * double(page_bytes) * layer_pages));
  const int64_t pages = int64_t(layer_pages) * copies;
  Bytes k = alloc(page_bytes * std::size_t(pages)), v = alloc(page_bytes * std::size_t(pages));
  fill_bf16(reinterpret_cast<uint16_t*>(k.get()), page_bytes * std::size_t(pages) / 2, 1);
  fill_bf16(reinterpret_cast<uint16_t*>(v.get()), page_bytes * std::size_t(pages) / 2, 2);
  const std::size_t q_elems = std::size_t(kReqs) * kQoHeads * kHeadDim;
  Bytes q = alloc(q_elems * 2), out = alloc(q_elems * 2);
  fill_bf16(reinterpret_cast<uint16_t*>(q.get()), q_elems, 3);
  std::vector<int32_t> perm(static_cast<std::size_t>(pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(4));
  // Per copy: the prefix's pages, each request's suffix pages, and the flat tables of both.
  std::vector<std::vector<int32_t>> prefix(copies), suffix(copies), flat(copies);
  for (int32_t c = 0; c < copies; ++c) {
    const int32_t* ids = perm.data() + std::size_t(c) * layer_pages;
    prefix[std::size_t(c)].assign(ids, ids + kPrefixPages);
    suffix[std::size_t(c)].assign(ids + kPrefixPages, ids + layer_pages);
    for (int32_t r = 0; r < kReqs; ++r) {
      flat[std::size_t(c)].insert(flat[std::size_t(c)].end(), ids, ids + kPrefixPages);
      const int32_t* own = ids + kPrefixPages + r * kSuffixPages;
      flat[std::size_t(c)].insert(flat[std::size_t(c)].end(), own, own + kSuffixPages);
    }
  }
  std::vector<int32_t> q_indptr(kReqs + 1), group_indptr{0, kReqs}, prefix_len{kPrefix}, suffix_len(kReqs, kSuffix),
      flat_len(kReqs, kPrefix + kSuffix);
  std::iota(q_indptr.begin(), q_indptr.end(), 0);
  const CascadePlan cplan = plan_cascade({1, group_indptr.data(), prefix_len.data(), kReqs, q_indptr.data(),
                                          suffix_len.data(), kQoHeads, kKvHeads, kHeadDim, kHeadDim, threads});
  const AttentionPlan fplan = plan_attention(bench::problem(q_indptr, flat_len, threads));
  Bytes ws = alloc(std::max(cplan.workspace_bytes, fplan.workspace_bytes));
  const KVCacheView cache = kv_cache_hnd(k.get(), v.get(), DType::bf16, pages, kPage, kKvHeads, kHeadDim, kHeadDim);
  const TokensView qv{q.get(), DType::bf16, kQoHeads * kHeadDim, kHeadDim};
  const OutTokensView ov{out.get(), DType::bf16, kQoHeads * kHeadDim, kHeadDim};
  int32_t c = 0;
  const auto cascade = [&] {
    CascadeParams p;
    p.q = qv;
    p.cache = cache;
    p.shared_pages = {1, prefix_len.data(), prefix[std::size_t(c)].data(), kPrefixPages};
    p.unique_pages = {kReqs, suffix_len.data(), suffix[std::size_t(c)].data(), kSuffixPages};
    p.out = ov;
    p.scale = 1.f / std::sqrt(float(kHeadDim));
    p.workspace = ws.get();
    p.workspace_bytes = cplan.workspace_bytes;
    cascade_attention(cplan, p);
  };
  const auto flat_call = [&] {
    AttentionParams p;
    p.q = qv;
    p.q_indptr = q_indptr.data();
    p.num_q_heads = kQoHeads;
    p.cache = cache;
    p.pages = {kReqs, flat_len.data(), flat[std::size_t(c)].data(), kPrefixPages + kSuffixPages};
    p.out = ov;
    p.scale = 1.f / std::sqrt(float(kHeadDim));
    p.workspace = ws.get();
    p.workspace_bytes = fplan.workspace_bytes;
    paged_attention(fplan, p);
  };
  state.counters["speedup"] = bench::time_against(state, [&] { cascade(), c = (c + 1) % copies; }, flat_call);
  state.counters["threads"] = threads;
  state.counters["copies"] = copies;
  state.SetLabel(std::string("kernel=") + attention_kernel_name(DType::bf16, DType::bf16));
}

const std::vector<Shape> kShapes = {
    {"decode_b8_ctx4096", 8, 1, 4096, 16, false, false, true},
    {"dense_b8_ctx4096", 8, 1, 4096, 16, false, true, true},
    // Diagnostic: the same decode with pages of 128 tokens (32 KiB per KV head and page).
    {"decode_b8_ctx4096_page128", 8, 1, 4096, 128, false, false, true},
    {"decode_b1_ctx32768", 1, 1, 32768, 16, false, false, true},
    {"decode_b64_ctx512", 64, 1, 512, 16, false, false, true},
    // Diagnostic: the same decode with the cache L3-resident shows the kernel's compute limit.
    {"decode_b8_ctx512", 8, 1, 512, 16, false, false, false},
    {"prefill_512", 1, 512, 512, 16, true, false, false},
    {"vllm_b64_q512_kv512", 64, 512, 512, 128, true, false, false},
};
const Shape kTreeShape = {"tree_verify_b8_draft64_ctx4096", 8, 64, 4096, 16, false, false, true};

const Shape& shape_named(const std::string& tag) {
  return *std::find_if(kShapes.begin(), kShapes.end(), [&](const Shape& s) { return s.tag == tag; });
}

void register_all() {
  // The ceiling pages leave: one KV head's page here is 4 KiB (page 16); a whole page of all 8
  // heads, or one head's page of 128 tokens, is 32 KiB.
  bench::print_page_read_ceilings({1, 2}, {4096, 32768, 262144});
  for (const Shape& s : kShapes)
    for (int threads : {1, 2}) {
      const std::string name = "attention/" + s.tag + "/kv:bf16/hnd/threads:" + std::to_string(threads) +
                               (s.cold ? "/cold" : "/hot");
      auto* b = benchmark::RegisterBenchmark(name.c_str(), [s, threads](benchmark::State& st) {
        run_attention(st, s, threads);
      });
      b->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(s.batch * s.q_len > 4096 ? 2.0 : 0.5);
    }
  for (int threads : {1, 2}) {
    const std::string name = "attention/paged_vs_dense_b8_ctx4096/kv:bf16/hnd/threads:" + std::to_string(threads) + "/cold";
    benchmark::RegisterBenchmark(name.c_str(), [threads](benchmark::State& st) {
      run_paged_vs_dense(st, shape_named("decode_b8_ctx4096"), shape_named("dense_b8_ctx4096"), threads);
    })->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
    for (auto [tag, kv] : {std::pair{"int8", DType::i8}, std::pair{"fp8", DType::f8_e4m3}, std::pair{"fp16", DType::f16}}) {
      const std::string name = std::string("attention/kv_") + tag + "_vs_bf16_b8_ctx4096/kv:" + dtype_name(kv) +
                               "/hnd/threads:" + std::to_string(threads) + "/cold";
      benchmark::RegisterBenchmark(name.c_str(), [kv = kv, threads](benchmark::State& st) {
        run_kv_vs_bf16(st, shape_named("decode_b8_ctx4096"), kv, threads);
      })->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
    }
    const std::string cascade = "attention/cascade_vs_flat_b64_prefix4096/kv:bf16/hnd/threads:" + std::to_string(threads) + "/cold";
    benchmark::RegisterBenchmark(cascade.c_str(), [threads](benchmark::State& st) { run_cascade_vs_flat(st, threads); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
    const std::string mla = "attention/mla_decode_b8_ctx4096/kv:bf16/latent/threads:" + std::to_string(threads) + "/cold";
    benchmark::RegisterBenchmark(mla.c_str(), [threads](benchmark::State& st) { run_mla_decode(st, threads); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
    const std::string tree = "attention/" + kTreeShape.tag + "/kv:bf16/hnd/threads:" + std::to_string(threads) + "/cold";
    benchmark::RegisterBenchmark(tree.c_str(), [threads](benchmark::State& st) {
      run_tree_vs_causal(st, kTreeShape, threads);
    })->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
  }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
