#include "roofline.hpp"

#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "pagedinfer/cpu.hpp"
#include "pagedinfer/memory.hpp"

namespace bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

__attribute__((target("avx512f"))) double sum_avx512(const float* p, std::size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i < n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) double sum_avx2(const float* p, std::size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i < n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

// The same over four interleaved streams (four quarters of p), the access pattern of kernels
// that walk several weight tiles or KV pages at once; some memory systems serve it faster.
__attribute__((target("avx512f"))) double sum4_avx512(const float* p, std::size_t n) {
  const std::size_t q = n / 4;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::size_t i = 0; i < q; i += 16) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + q + i));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + 2 * q + i));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + 3 * q + i));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// GB/s of `passes` timed runs of body(pass, thread, threads) on `threads` OpenMP threads, each
// run reading `bytes` in all; body returns a sum that is kept, so the reads stay.
template <class Body>
std::vector<double> timed_passes(int passes, int threads, double bytes, Body&& body) {
  std::vector<double> gbs;
  volatile double sink = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = Clock::now();
    double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += body(pass, omp_get_thread_num(), omp_get_num_threads());
    gbs.push_back(bytes / seconds_since(t0) / 1e9);
    sink = sink + total;
  }
  return gbs;
}

// The 1 GiB of random data (the same kind of memory as the kernels' buffers) that every read
// ceiling of the process reads, allocated and filled on first use.
constexpr std::size_t kProbeBytes = std::size_t(1) << 30;
const float* probe_buffer() {
  static const Bytes mem = [] {
    Bytes m = alloc(kProbeBytes);
    fill_random(m.get(), kProbeBytes, 42);
    return m;
  }();
  return reinterpret_cast<const float*>(mem.get());
}

bool has_avx512() { return pagedinfer::detected_isa() >= pagedinfer::Isa::avx512; }

double dram_read_gbs(int threads) {
  const std::size_t n = kProbeBytes / sizeof(float);
  const float* buf = probe_buffer();
  const bool avx512 = has_avx512();
  const std::vector<double> gbs = timed_passes(6, threads, double(kProbeBytes), [&](int pass, int t, int nt) {
    const std::size_t per = n / std::size_t(nt);
    const float* p = buf + per * std::size_t(t);
    return !avx512 ? sum_avx2(p, per) : pass % 2 ? sum4_avx512(p, per) : sum_avx512(p, per);
  });
  // The best of the two patterns' medians (one and four streams alternate).
  std::vector<double> one, four;
  for (std::size_t i = 0; i < gbs.size(); ++i) (i % 2 ? four : one).push_back(gbs[i]);
  return std::max(median(one), four.empty() ? 0.0 : median(four));
}

// Reads a 1 GiB buffer in chunks of chunk_bytes, in order or in a shuffled order, each thread
// its own part of the order, prefetching the chunk two ahead (prefetcht1, one line per line
// read; one ahead measured 5-10% less; deeper, prefetcht0/t2, interleaving two or four chunks or
// touching only each chunk's first lines measured no better) as a paged kernel does. Both
// orders run the same loop over the same buffer, so their ratio is what scattering alone costs.
// One buffer, allocated on first use and kept for the process, serves every pattern.
class ChunkReader {
 public:
  static ChunkReader& instance() {
    static ChunkReader reader;
    return reader;
  }
  // GB/s of each pass of `passes`; the passes alternate the given chunk sizes, shuffled or in
  // order, so that all of them see the same machine. Result [i][pass] for pattern i.
  struct Pattern {
    std::size_t chunk_bytes;
    bool shuffled;
  };
  std::vector<std::vector<double>> measure(int threads, const std::vector<Pattern>& patterns, int passes) {
    std::vector<std::vector<double>> gbs(patterns.size());
    for (int pass = 0; pass < passes; ++pass)
      for (std::size_t i = 0; i < patterns.size(); ++i) gbs[i].push_back(read(threads, patterns[i]));
    return gbs;
  }

 private:
  static constexpr std::size_t kBytes = kProbeBytes;
  std::map<std::size_t, std::vector<uint32_t>> shuffled_;  // chunk order by chunk size

  const std::vector<uint32_t>& shuffled_order(std::size_t chunk_bytes) {
    std::vector<uint32_t>& order = shuffled_[chunk_bytes];
    if (order.empty()) {
      const std::size_t chunks = kBytes / chunk_bytes;
      order.resize(chunks);
      for (std::size_t i = 0; i < chunks; ++i) order[i] = uint32_t(i);
      uint64_t state = 0x2545f4914f6cdd1dull;  // Fisher-Yates with xorshift: no <random> distribution drift
      for (std::size_t i = chunks - 1; i > 0; --i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        std::swap(order[i], order[state % (i + 1)]);
      }
    }
    return order;
  }

  double read(int threads, const Pattern& pat) {
    const std::size_t chunk = pat.chunk_bytes, per = kBytes / chunk / std::size_t(threads);
    const uint32_t* order = pat.shuffled ? shuffled_order(chunk).data() : nullptr;
    const char* buf = reinterpret_cast<const char*>(probe_buffer());
    const auto at = [&](std::size_t i) { return buf + std::size_t(order ? order[i] : i) * chunk; };
    return timed_passes(1, threads, double(per * std::size_t(threads) * chunk), [&](int, int t, int) {
      const std::size_t first = per * std::size_t(t);
      // One load per line (the line must arrive; four sums keep the adds off the critical path).
      float sum[4] = {0, 0, 0, 0};
      for (std::size_t c = first; c < first + per; ++c) {
        const float* p = reinterpret_cast<const float*>(at(c));
        const char* next = c + 2 < first + per ? at(c + 2) : nullptr;
        for (std::size_t off = 0; off < chunk; off += 256)
          for (std::size_t line = 0; line < 4; ++line) {
            if (next) asm volatile("prefetcht1 %0" : : "m"(*(next + off + 64 * line)));
            sum[line] += p[(off + 64 * line) / 4];
          }
      }
      return double(sum[0] + sum[1] + sum[2] + sum[3]);
    })[0];
  }
};

// Throughput loops with kChains independent accumulators: more than latency x ports of every
// CPU we target (Zen 5 needs more than 12 for its dot products); 16 x 64 bytes is also
// as much as GCC 12 keeps in registers as one array.
constexpr int kChains = 16;
__attribute__((target("avx512f"))) double fma_loop(int64_t iters) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_set1_ps(1.0f);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
  for (int64_t i = 0; i < iters; ++i)
    for (auto& a : acc) a = _mm512_fmadd_ps(a, x, y);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);  // flops: iters * kChains * 16 * 2
}

// acc + dot products, in place. Inline asm rather than intrinsics: GCC 12 gives the intrinsics'
// accumulator the register class of their VEX forms (xmm0-15) and copies each
// accumulator through a second register every step, which understates the peak.
__attribute__((target("avx512f,avx512bf16"))) inline __m512 dpbf16(__m512 acc, __m512bh a, __m512bh b) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
__attribute__((target("avx512f,avx512vnni"))) inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

__attribute__((target("avx512f,avx512bf16"))) double bf16_loop(int64_t iters) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3a80);
  for (int64_t i = 0; i < iters; ++i)
    for (auto& a : acc) a = dpbf16(a, x, y);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);  // flops: iters * kChains * 32 * 2
}

__attribute__((target("avx512f,avx512vnni"))) double int8_loop(int64_t iters) {
  __m512i acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_si512();
  const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
  for (int64_t i = 0; i < iters; ++i)
    for (auto& a : acc) a = dpbusd(a, x, y);
  __m512i s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_epi32(s, acc[i]);
  return double(_mm512_reduce_add_epi32(s));  // ops: iters * kChains * 64 * 2
}

// AMX: tile dot products into 4 independent accumulator tiles (16 x 16 int32 or fp32) from one
// A and one B tile, loaded once; each instruction is 16 x 16 x 64 int8 (tdpbusd) or 16 x 16 x 32
// bf16 (tdpbf16ps) multiply-adds.
struct alignas(64) AmxConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 0, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 0, 16};
};
template <bool kBf16>
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) double amx_loop(int64_t iters) {
  const AmxConfig config;
  alignas(64) static const int8_t ones[1024] = {1};
  asm volatile("" ::: "memory");  // the config's stores before ldtilecfg reads it
  _tile_loadconfig(&config);
  _tile_loadd(4, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters; ++i) {
    if constexpr (kBf16) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 6);
      _tile_dpbf16ps(2, 4, 6);
      _tile_dpbf16ps(3, 4, 6);
    } else {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 6);
      _tile_dpbusd(2, 4, 6);
      _tile_dpbusd(3, 4, 6);
    }
  }
  alignas(64) int32_t out[256];
  _tile_stored(0, out, 64);
  _tile_release();
  return double(out[0]);  // ops: iters * 4 * 16 * 16 * (64 or 32) * 2
}

template <class Loop>
double peak(int threads, double ops_per_iter, Loop loop, int64_t iters = 12'000'000) {
  std::vector<double> rates;
  volatile double sink = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = Clock::now();
    double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += loop(iters);
    rates.push_back(ops_per_iter * double(iters) * threads / seconds_since(t0) / 1e9);
    sink = sink + total;
  }
  return median(rates);
}

}  // namespace

void fill_random(void* p, std::size_t n, uint64_t seed) {
  uint64_t* w = static_cast<uint64_t*>(p);
  const std::size_t words = n / 8;
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < words; ++i) {
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;  // splitmix64: a unique value per word
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    w[i] = x ^ (x >> 31);
  }
  for (std::size_t i = words * 8; i < n; ++i) static_cast<uint8_t*>(p)[i] = uint8_t(i * 131 + seed);
}

const Ceilings& ceilings(int threads) {
  static std::mutex mu;
  static std::map<int, Ceilings> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(threads);
  if (it != cache.end()) return it->second;
  Ceilings c;
  c.dram_read_gbs = dram_read_gbs(threads);
  const pagedinfer::Isa isa = pagedinfer::detected_isa();
  if (isa >= pagedinfer::Isa::avx512) c.fp32_fma_gflops = peak(threads, kChains * 16 * 2, fma_loop);
  if (isa >= pagedinfer::Isa::avx512_bf16) {
    c.bf16_dot_gflops = peak(threads, kChains * 32 * 2, bf16_loop);
    c.int8_dot_gops = peak(threads, kChains * 64 * 2, int8_loop);
  }
  if (isa >= pagedinfer::Isa::amx) {
    c.amx_int8_gops = peak(threads, 4 * 16 * 16 * 64 * 2, amx_loop<false>, 400'000);
    c.amx_bf16_gflops = peak(threads, 4 * 16 * 16 * 32 * 2, amx_loop<true>, 400'000);
  }
  return cache.emplace(threads, c).first->second;
}

double scattered_read_gbs(int threads, std::size_t chunk_bytes) {
  static std::mutex mu;
  static std::map<std::pair<int, std::size_t>, double> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(threads, chunk_bytes);
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache.emplace(key, median(ChunkReader::instance().measure(threads, {{chunk_bytes, true}}, 3)[0])).first;
  return it->second;
}

void print_page_read_ceilings(std::initializer_list<int> threads, std::initializer_list<std::size_t> chunks) {
  for (int t : threads) {
    std::vector<ChunkReader::Pattern> patterns{{std::size_t(1) << 16, false}};
    for (std::size_t c : chunks) patterns.push_back({c, true});
    const std::vector<std::vector<double>> gbs = ChunkReader::instance().measure(t, patterns, 5);
    const double in_order = median(gbs[0]);
    std::printf("page reads threads=%d: in order %.1f GB/s; shuffled chunks", t, in_order);
    for (std::size_t i = 1; i < patterns.size(); ++i) {
      const double g = median(gbs[i]);
      std::printf("%s %zu KiB %.1f (%.2f)", i > 1 ? "," : "", patterns[i].chunk_bytes >> 10, g, g / in_order);
      benchmark::AddCustomContext("page_read_gbs_t" + std::to_string(t) + "_" + std::to_string(patterns[i].chunk_bytes),
                                  std::to_string(g));
    }
    std::printf("\n");
    benchmark::AddCustomContext("page_read_in_order_gbs_t" + std::to_string(t), std::to_string(in_order));
  }
  std::fflush(stdout);
}

void print_ceilings(std::initializer_list<int> threads) {
  for (int t : threads) {
    const Ceilings& c = ceilings(t);
    std::printf("ceiling threads=%d: dram_read %.1f GB/s, fp32_fma %.0f GFLOP/s, bf16_dot %.0f GFLOP/s, int8_dot %.0f GOP/s",
                t, c.dram_read_gbs, c.fp32_fma_gflops, c.bf16_dot_gflops, c.int8_dot_gops);
    if (c.amx_int8_gops > 0)
      std::printf(", amx_int8 %.0f GOP/s, amx_bf16 %.0f GFLOP/s", c.amx_int8_gops, c.amx_bf16_gflops);
    std::printf("\n");
    benchmark::AddCustomContext("ceiling_dram_read_gbs_t" + std::to_string(t), std::to_string(c.dram_read_gbs));
    benchmark::AddCustomContext("ceiling_fp32_fma_gflops_t" + std::to_string(t), std::to_string(c.fp32_fma_gflops));
    benchmark::AddCustomContext("ceiling_bf16_dot_gflops_t" + std::to_string(t), std::to_string(c.bf16_dot_gflops));
    benchmark::AddCustomContext("ceiling_int8_dot_gops_t" + std::to_string(t), std::to_string(c.int8_dot_gops));
    benchmark::AddCustomContext("ceiling_amx_int8_gops_t" + std::to_string(t), std::to_string(c.amx_int8_gops));
    benchmark::AddCustomContext("ceiling_amx_bf16_gflops_t" + std::to_string(t), std::to_string(c.amx_bf16_gflops));
  }
  std::fflush(stdout);
}

StreamRead::StreamRead(std::size_t bytes, int threads)
    : floats_(std::max<std::size_t>(1, bytes / (256 * std::size_t(threads))) * 64 * std::size_t(threads)),
      threads_(threads) {}

void StreamRead::operator()() {
  if (next_ + floats_ > kProbeBytes / sizeof(float)) next_ = 0;
  const float* part = probe_buffer() + next_;
  next_ += floats_;
  const bool avx512 = has_avx512();
  timed_passes(1, threads_, double(bytes()), [&](int, int t, int nt) {
    const std::size_t per = floats_ / std::size_t(nt) / 64 * 64;  // whole steps of both loops
    const float* p = part + per * std::size_t(t);
    return avx512 ? sum_avx512(p, per) : sum_avx2(p, per);
  });
}

void fill_bf16(uint16_t* p, std::size_t n, uint64_t seed) {
  fill_random(p, n * 2, seed);
  for (std::size_t i = 0; i < n; ++i) p[i] = uint16_t((p[i] & 0x807f) | 0x3f00);
}

std::size_t cold_copies(double bytes_per_copy) { return std::size_t(8.0 * double(l3_bytes()) / bytes_per_copy) + 1; }

// Page-aligned, as an engine's KV pool or weight tensor is (mmap'd): a 4 KiB block of a paged
// cache then spans one OS page, not two (malloc's 64-byte alignment of large blocks put every
// cache page across a page boundary: two TLB misses per page and hardware prefetchers stopping
// mid-page, 0.49 -> 0.70 of bandwidth on decode_b8_ctx4096). From 2 MiB on, on huge pages
// (pagedinfer/memory.hpp), as PyTorch's CPU allocator does with THP_MEM_ALLOC_ENABLE=1.
Bytes alloc(std::size_t n) { return Bytes(pagedinfer::HugePageAllocator<uint8_t>().allocate(n)); }

std::size_t l3_bytes() {
  // sysfs, not sysconf: under the hypervisor here sysconf reports 320 MiB for a 32 MiB L3.
  std::size_t kib = 0;
  if (FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
    unsigned long v = 0;
    if (std::fscanf(f, "%luK", &v) == 1) kib = v;
    std::fclose(f);
  }
  return kib ? kib << 10 : std::size_t(32) << 20;
}

namespace {

// Pins OpenMP thread i to the process's i-th allowed CPU, unless the user chose a placement
// (OMP_PROC_BIND, OMP_PLACES). The runtime reuses its threads for later parallel regions, so the
// pinning holds for every case. Unpinned, the scheduler at times ran both threads of a 2-thread
// case on one core: W8A8 M = 512 timed alternately with oneDNN took 30.8 ms a call, 21.9 pinned.
void pin_openmp_threads() {
  if (std::getenv("OMP_PROC_BIND") || std::getenv("OMP_PLACES")) return;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  if (cpus.size() < 2) return;
#pragma omp parallel num_threads(int(cpus.size()))
  {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[std::size_t(omp_get_thread_num())], &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
  }
}

}  // namespace

int run_benchmarks(int argc, char** argv, void (*register_cases)()) {
  const std::vector<char*> args(argv, argv + argc);  // Initialize removes the flags it reads
  benchmark::Initialize(&argc, argv);
  pin_openmp_threads();
  print_ceilings({1, 2});
  register_cases();
  run_with_plain_ratios(int(args.size()), const_cast<char**>(args.data()));
  benchmark::Shutdown();
  return 0;
}

void report_bytes(benchmark::State& s, double bytes, int threads) {
  const double it = double(s.iterations());
  s.counters["GB/s"] = benchmark::Counter(bytes * it / 1e9, benchmark::Counter::kIsRate);
  s.counters["bw_fraction"] =
      benchmark::Counter(bytes * it / (ceilings(threads).dram_read_gbs * 1e9), benchmark::Counter::kIsRate);
}

void report_flops(benchmark::State& s, double flops, double peak_gflops) {
  const double it = double(s.iterations());
  s.counters["GFLOP/s"] = benchmark::Counter(flops * it / 1e9, benchmark::Counter::kIsRate);
  if (peak_gflops > 0)
    s.counters["peak_fraction"] = benchmark::Counter(flops * it / (peak_gflops * 1e9), benchmark::Counter::kIsRate);
}

}  // namespace bench
