// KV-cache operations on a Llama-3-8B layer's cache (8 KV heads x 128, bf16, page 16, NHD).
// Bytes counted: everything read plus everything written. The pool (16384 pages of 64 KiB of
// K+V, 1 GiB) is far larger than the L3 and the pages each run touches are random, so the
// cache side is cold; the token-side buffers of append are hot (as in an engine,
// where the projection just wrote them). Written lines are also read by the CPU before they
// are written (write-allocate), which this count leaves out, so DRAM moves more than reported.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

constexpr int32_t kHeads = 8, kDim = 128, kPage = 16;
constexpr int64_t kPages = 16384;  // 16384 pages x 64 KiB (K+V) = 1 GiB

struct Pool {
  std::unique_ptr<uint16_t[]> k, v;
  KVCacheView view;
  Pool() {
    const std::size_t n = std::size_t(kPages) * kPage * kHeads * kDim;
    k.reset(new uint16_t[n]);
    v.reset(new uint16_t[n]);
    bench::fill_random(k.get(), n * 2, 1);
    bench::fill_random(v.get(), n * 2, 2);
    view = kv_cache_nhd(k.get(), v.get(), DType::bf16, kPages, kPage, kHeads, kDim, kDim);
  }
};

Pool& pool() {
  static Pool p;
  return p;
}

std::vector<int32_t> random_pages(std::size_t n, uint32_t seed) {
  std::vector<int32_t> ids(kPages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
  ids.resize(n);
  return ids;
}

const double kTokenBytes = 2.0 * kHeads * kDim * 2;  // K + V of one token

// src: the dtype of the new K and V. f32: a projection's fp32 output converted into the bf16
// cache on the way; its source buffers rotate over copies too (cold), so that its bw_fraction
// counts DRAM traffic on both sides, where the bf16 case's hot source inflates it.
void append(benchmark::State& s, int64_t tokens, int threads, DType src) {
  Pool& p = pool();
  const std::size_t n = std::size_t(tokens) * kHeads * kDim, es = dtype_size(src);
  const std::size_t src_sets = src == DType::f32 ? bench::cold_copies(double(2 * n * es)) : 1;
  std::vector<uint16_t> k(src_sets * n * es / 2), v(k.size());
  if (src == DType::f32) {  // values a bf16 cache holds, as fp32
    std::vector<uint16_t> b(src_sets * n);
    for (auto* x : {&k, &v}) {
      bench::fill_bf16(b.data(), b.size(), x == &k ? 3 : 4);
      convert(b.data(), DType::bf16, x->data(), DType::f32, b.size());
    }
  } else {
    bench::fill_random(k.data(), k.size() * 2, 3);
    bench::fill_random(v.data(), v.size() * 2, 4);
  }
  // Decode: one token per sequence, each in a random page; prefill: consecutive slots of
  // random pages. Each iteration writes other pages (rotations).
  const std::size_t sets = bench::cold_copies(kTokenBytes * double(tokens));
  std::vector<std::vector<int64_t>> slots(sets);
  for (std::size_t r = 0; r < sets; ++r) {
    const std::vector<int32_t> pages = random_pages(std::size_t(tokens), uint32_t(5 + r));
    for (int64_t i = 0; i < tokens; ++i)
      slots[r].push_back(tokens <= 64 ? int64_t(pages[std::size_t(i)]) * kPage + 3
                                      : int64_t(pages[std::size_t(i / kPage)]) * kPage + i % kPage);
  }
  std::size_t r = 0, c = 0;
  for (auto _ : s) {
    const std::size_t at = c * n * es / 2;
    append_kv({p.view, {k.data() + at, src, kHeads * kDim, kDim}, {v.data() + at, src, kHeads * kDim, kDim},
               slots[r].data(), tokens, threads});
    r = (r + 1) % sets;
    c = (c + 1) % src_sets;
  }
  bench::report_bytes(s, (1.0 + double(es) / 2) * kTokenBytes * double(tokens), threads);
  s.SetLabel(std::string("ceiling=dram kernel=") + convert_kernel_name(src, DType::bf16));
}

void copy(benchmark::State& s, int64_t n, int threads) {
  Pool& p = pool();
  const std::size_t sets = bench::cold_copies(2 * kTokenBytes * kPage * double(n));
  std::vector<std::vector<int32_t>> pairs;
  for (std::size_t r = 0; r < sets; ++r) pairs.push_back(random_pages(std::size_t(2 * n), uint32_t(6 + r)));
  std::size_t r = 0;
  for (auto _ : s) {
    copy_blocks({p.view, pairs[r].data(), n, threads});
    r = (r + 1) % sets;
  }
  bench::report_bytes(s, 2 * kTokenBytes * kPage * double(n), threads);
  s.SetLabel("ceiling=dram");
}

void gather_scatter(benchmark::State& s, int64_t n, int threads, bool gather) {
  Pool& p = pool();
  const std::size_t sets = bench::cold_copies(kTokenBytes * kPage * double(n));
  std::vector<std::vector<int32_t>> ids;
  for (std::size_t r = 0; r < sets; ++r) ids.push_back(random_pages(std::size_t(n), uint32_t(7 + r)));
  std::vector<uint8_t> flat(kv_block_bytes(p.view) * std::size_t(n));  // 64 MiB: larger than the L3
  bench::fill_random(flat.data(), flat.size(), 8);
  std::size_t r = 0;
  for (auto _ : s) {
    if (gather) gather_blocks({p.view, ids[r].data(), n, flat.data(), threads});
    else scatter_blocks({p.view, flat.data(), ids[r].data(), n, threads});
    r = (r + 1) % sets;
  }
  bench::report_bytes(s, 2 * kTokenBytes * kPage * double(n), threads);
  s.SetLabel("ceiling=dram");
}

// One sequence's KV transfer (kv_transfer.hpp) of n pages of this layer: export_kv gathers the
// pages and checksums what it wrote; import_kv checksums the transfer, then scatters it. The
// checksum pass re-reads the 64 MiB from DRAM, which the byte count (pages read + written, as
// gather / scatter) leaves out.
void transfer(benchmark::State& s, int64_t n, int threads, bool is_export) {
  Pool& p = pool();
  const std::size_t sets = bench::cold_copies(kTokenBytes * kPage * double(n));
  std::vector<std::vector<int32_t>> ids;
  for (std::size_t r = 0; r < sets; ++r) ids.push_back(random_pages(std::size_t(n), uint32_t(9 + r)));
  const int64_t tokens = n * kPage;
  std::vector<uint8_t> bytes(kv_transfer_bytes(p.view, 1, tokens));
  export_kv({&p.view, 1, ids[0].data(), tokens, bytes.data(), bytes.size(), threads});
  std::size_t r = 0;
  for (auto _ : s) {
    if (is_export) export_kv({&p.view, 1, ids[r].data(), tokens, bytes.data(), bytes.size(), threads});
    else import_kv({&p.view, 1, bytes.data(), bytes.size(), ids[r].data(), n, threads});
    r = (r + 1) % sets;
  }
  bench::report_bytes(s, 2 * kTokenBytes * kPage * double(n), threads);
  s.SetLabel("ceiling=dram");
}

void register_all() {
  for (int t : {1, 2}) {
    const std::string th = "/threads:" + std::to_string(t);
    benchmark::RegisterBenchmark(("kv_cache/append_decode_64tok" + th).c_str(), append, 64, t, DType::bf16);
    benchmark::RegisterBenchmark(("kv_cache/append_prefill_512tok" + th).c_str(), append, 512, t, DType::bf16);
    benchmark::RegisterBenchmark(("kv_cache/append_prefill_512tok_f32_to_bf16" + th).c_str(), append, 512, t,
                                 DType::f32);
    benchmark::RegisterBenchmark(("kv_cache/copy_blocks_256" + th).c_str(), copy, 256, t);
    benchmark::RegisterBenchmark(("kv_cache/gather_blocks_1024" + th).c_str(), gather_scatter, 1024, t, true);
    benchmark::RegisterBenchmark(("kv_cache/scatter_blocks_1024" + th).c_str(), gather_scatter, 1024, t, false);
    benchmark::RegisterBenchmark(("kv_cache/export_kv_1024" + th).c_str(), transfer, 1024, t, true);
    benchmark::RegisterBenchmark(("kv_cache/import_kv_1024" + th).c_str(), transfer, 1024, t, false);
  }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
