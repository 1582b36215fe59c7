// The machine's ceilings, measured in the benchmark's own process (../shared/BENCHMARKING.md):
// results are reported as fractions of these, never as absolute times across runs.
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "pagedinfer/memory.hpp"

namespace bench {

struct Ceilings {
  double dram_read_gbs = 0;  // sum of a 1 GiB random buffer, wide loads: the better of one and four
                             // streams per thread, each the median of 3 passes
  double fp32_fma_gflops = 0;
  double bf16_dot_gflops = 0;  // vdpbf16ps; 0 where the CPU has none
  double int8_dot_gops = 0;    // vpdpbusd; 0 where the CPU has none
  double amx_int8_gops = 0;    // AMX tdpbusd; 0 where the CPU (or the OS) has none
  double amx_bf16_gflops = 0;  // AMX tdpbf16ps; likewise
};

// Measured on first use for each thread count, then cached.
const Ceilings& ceilings(int threads);

// Read bandwidth over chunks of chunk_bytes scattered in memory (a shuffled order over 1 GiB,
// the next chunk prefetched while one is read): the ceiling of a kernel that reads KV pages of
// that size through a shuffled block table. Measured on first use per (threads, chunk), cached.
double scattered_read_gbs(int threads, std::size_t chunk_bytes);

// Prints, per thread count, the read bandwidth of the same loop over the same 1 GiB in order and
// in shuffled chunks of each size (passes alternating, medians of 5): what a paged cache's page
// size leaves of the memory bandwidth on this machine.
void print_page_read_ceilings(std::initializer_list<int> threads, std::initializer_list<std::size_t> chunks);

// Prints every thread count's ceilings as the report's header.
void print_ceilings(std::initializer_list<int> threads);

// Size of the last-level cache in bytes (for working sets that must exceed it).
std::size_t l3_bytes();

// Fills n bytes with non-repeating pseudo-random data (pages with identical contents can be
// merged by the hypervisor, which distorts bandwidth).
void fill_random(void* p, std::size_t n, uint64_t seed);
// n non-repeating bf16 values in +-[0.5, 1): random sign and mantissa, fixed exponent (no
// NaN, infinity or subnormal that random bits would bring).
void fill_bf16(uint16_t* p, std::size_t n, uint64_t seed);

// Copies of a working set of `bytes_per_copy` bytes needed so that rotating over them touches
// more than 8x the L3: each iteration then reads data the previous ones evicted ("cold").
std::size_t cold_copies(double bytes_per_copy);

struct FreeBytes {
  void operator()(uint8_t* p) const { pagedinfer::HugePageAllocator<uint8_t>().deallocate(p, 0); }
};
using Bytes = std::unique_ptr<uint8_t, FreeBytes>;
// n bytes, uninitialized: page-aligned (4 KiB); from 2 MiB on, 2 MiB aligned and advised for
// transparent huge pages.
Bytes alloc(std::size_t n);

// The main() of every benchmark binary: prints the ceilings of 1 and 2 threads, registers the
// binary's cases and runs them.
int run_benchmarks(int argc, char** argv, void (*register_cases)());

// The DRAM read ceiling's loop as a callable: each call reads the next `bytes` (rounded down to
// whole 256-byte steps per thread) of the ceiling's 1 GiB buffer, wrapping, on `threads` threads,
// one forward stream each. Timed alternately with a memory-bound kernel of the same bytes
// (time_against), it gives the kernel's fraction of the bandwidth the machine delivered at the
// same moments, which a ceiling measured once at start-up cannot on a host whose bandwidth drifts.
class StreamRead {
 public:
  StreamRead(std::size_t bytes, int threads);
  void operator()();
  std::size_t bytes() const { return floats_ * sizeof(float); }

 private:
  std::size_t floats_, next_ = 0;
  int threads_;
};

// Times `ours` and `theirs` alternately, one call of each per iteration, so that both see the
// same machine (on a shared host separate cases drift apart by 10-20%). The iteration time is
// ours (use UseManualTime). Returns median(theirs) / median(ours): above 1, ours is faster.
template <class Ours, class Theirs>
double time_against(benchmark::State& s, Ours&& ours, Theirs&& theirs) {
  const auto seconds = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> t_ours, t_theirs;
  for (auto _ : s) {
    t_theirs.push_back(seconds(theirs));
    t_ours.push_back(seconds(ours));
    s.SetIterationTime(t_ours.back());
  }
  if (t_ours.empty()) return 0;
  std::sort(t_ours.begin(), t_ours.end());
  std::sort(t_theirs.begin(), t_theirs.end());
  return t_theirs[t_theirs.size() / 2] / t_ours[t_ours.size() / 2];
}

// Runs the registered benchmarks with reporters that print fraction and ratio counters as plain
// numbers and put the ceilings into the JSON context (report.cpp). argv: as main received it.
void run_with_plain_ratios(int argc, char** argv);

// Sets the counters the project reports: bytes moved -> GB/s and bw_fraction; flops -> GFLOP/s
// and peak_fraction (against `peak_gflops`).
void report_bytes(benchmark::State& s, double bytes_per_iter, int threads);
void report_flops(benchmark::State& s, double flops_per_iter, double peak_gflops);

}  // namespace bench
