// The machine's ceilings, measured in the benchmark's own process (../shared/BENCHMARKING.md):
// results are reported as fractions of these, never as absolute times across runs.
#pragma once
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace bench {

struct Ceilings {
  double dram_read_gbs = 0;  // sum of a 1 GiB random buffer, wide loads, median of 5 passes
  double fp32_fma_gflops = 0;
  double bf16_dot_gflops = 0;  // vdpbf16ps; 0 where the CPU has none
  double int8_dot_gops = 0;    // vpdpbusd; 0 where the CPU has none
};

// Measured on first use for each thread count, then cached.
const Ceilings& ceilings(int threads);

// Prints every thread count's ceilings as the report's header.
void print_ceilings(std::initializer_list<int> threads);

// Size of the last-level cache in bytes (for working sets that must exceed it).
std::size_t l3_bytes();

// Fills n bytes with non-repeating pseudo-random data (pages with identical contents can be
// merged by the hypervisor, which distorts bandwidth).
void fill_random(void* p, std::size_t n, uint64_t seed);

// Sets the counters the project reports: bytes moved -> GB/s and bw_fraction; flops -> GFLOP/s
// and peak_fraction (against `peak_gflops`).
void report_bytes(benchmark::State& s, double bytes_per_iter, int threads);
void report_flops(benchmark::State& s, double flops_per_iter, double peak_gflops);

}  // namespace bench
