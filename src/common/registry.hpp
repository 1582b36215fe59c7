// The per-op kernel tables behind pagedinfer/kernels.hpp.
//
// An op's dispatch.cpp holds one table of KernelEntry in order of preference and calls
// select() for each call. Entries only name factories defined in the ISA translation units;
// can_run and prefer run here, in baseline code, so no ISA code runs before its features are
// checked.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>

#include "pagedinfer/kernels.hpp"

namespace pagedinfer::detail {

// The feature sets of the ISA translation units: each must equal the flags that
// cmake/PagedinferIsa.cmake gives the TUs of that name (src/<op>/<isa>.cpp).
namespace needs {
using F = CpuFeature;
constexpr FeatureSet kSse2 = features(F::sse2);
constexpr FeatureSet kAvx2 = features(F::avx2, F::fma, F::f16c);
constexpr FeatureSet kAvx2Vnni = kAvx2 | features(F::avx_vnni);
constexpr FeatureSet kAvx512 = kAvx2 | features(F::avx512f, F::avx512bw, F::avx512vl, F::avx512dq);
constexpr FeatureSet kAvx512Vnni = kAvx512 | features(F::avx512_vnni);
constexpr FeatureSet kAvx512Bf16 = kAvx512 | features(F::avx512_bf16);
constexpr FeatureSet kAmx = kAvx512Vnni | kAvx512Bf16 | features(F::amx_tile, F::amx_int8, F::amx_bf16);
constexpr FeatureSet kNeon = features(F::neon);
}  // namespace needs

// The registry state of one op: its kernels' descriptions and the forced one.
struct OpRegistry {
  const char* op;
  const KernelInfo* infos;  // [count], table order
  std::size_t count;
  std::atomic<int> forced{-1};
};

// One per op, defined in src/<op>/dispatch.cpp.
OpRegistry& attention_registry();
OpRegistry& convert_registry();
OpRegistry& linear_registry();
OpRegistry& norm_registry();
OpRegistry& quantize_kv_registry();
OpRegistry& rope_registry();
OpRegistry& sampling_registry();

// Applies PAGEDINFER_KERNEL once per process (select() calls it).
void apply_forced_kernels_from_environment();

template <class Case, class Kernel>
struct KernelEntry {
  KernelInfo info;
  bool (*can_run)(const Case&);  // computes this case correctly (dtypes, modes, formats)
  bool (*prefer)(const Case&);   // the measured choice for this case; null: always
  Kernel (*make)(const Case&);
};

// The registry of one table (each op's <op>_registry() returns it).
template <const auto& Table>
OpRegistry& registry_of(const char* op) {
  constexpr std::size_t n = sizeof(Table) / sizeof(Table[0]);
  static const auto infos = [] {
    std::array<KernelInfo, n> out;
    for (std::size_t i = 0; i < n; ++i) out[i] = Table[i].info;
    return out;
  }();
  static OpRegistry reg{op, infos.data(), n};
  return reg;
}

// The forced entry if it runs and can compute c, else the table's first entry that runs, can
// compute c and is preferred for it. Every table ends with a baseline entry that runs every case.
template <class Case, class Kernel, std::size_t N>
const KernelEntry<Case, Kernel>& select(const KernelEntry<Case, Kernel> (&table)[N], const OpRegistry& reg,
                                        const Case& c) {
  apply_forced_kernels_from_environment();
  const FeatureSet active = active_features();
  const auto runs = [&](const KernelEntry<Case, Kernel>& e) { return (e.info.needs & ~active) == 0 && e.can_run(c); };
  const int forced = reg.forced.load(std::memory_order_relaxed);
  if (forced >= 0 && runs(table[forced])) return table[forced];
  for (const auto& e : table)
    if (runs(e) && (!e.prefer || e.prefer(c))) return e;
  return table[N - 1];
}

// A can_run / prefer that accepts every case.
template <class Case>
bool any_case(const Case&) {
  return true;
}

}  // namespace pagedinfer::detail
