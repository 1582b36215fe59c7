#include "pagedinfer/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/check.hpp"
#include "common/cpu_vendor.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#include <cpuinfo_x86.h>
#endif
#if defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace pagedinfer {

namespace {

using F = CpuFeature;

constexpr const char* kFeatureNames[kNumCpuFeatures] = {
    "sse2",        "avx2",        "fma",         "f16c",     "avx_vnni", "avx512f",  "avx512bw", "avx512vl",
    "avx512dq",    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "neon"};

// The features each level adds to the one below (cpu.hpp); the first ones define the level.
#if defined(__x86_64__) || defined(_M_X64)
constexpr FeatureSet kLevelAdds[] = {
    features(F::sse2),
    features(F::avx2, F::fma, F::f16c, F::avx_vnni),
    features(F::avx512f, F::avx512bw, F::avx512vl, F::avx512dq, F::avx512_vnni),
    features(F::avx512_bf16, F::avx512_fp16),
    features(F::amx_tile, F::amx_int8, F::amx_bf16),
};
constexpr FeatureSet kLevelDefines[] = {
    features(F::sse2),
    features(F::avx2, F::fma, F::f16c),
    features(F::avx512f, F::avx512bw, F::avx512vl, F::avx512dq),
    features(F::avx512_vnni, F::avx512_bf16),
    features(F::amx_tile, F::amx_int8, F::amx_bf16),
};
#else
constexpr FeatureSet kLevelAdds[] = {features(F::neon), 0, 0, 0, 0};
constexpr FeatureSet kLevelDefines[] = {features(F::neon), ~FeatureSet(0), ~FeatureSet(0), ~FeatureSet(0),
                                        ~FeatureSet(0)};
#endif

// Linux keeps AMX tile data (8 KiB of state) off until a process asks for it (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, Linux 5.16+); without the permission the first
// tile instruction raises SIGILL. The permission covers every thread of the process.
bool os_allows_amx() {
#if defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

FeatureSet detect() {
#if defined(__x86_64__) || defined(_M_X64)
  // cpu_features checks that the OS saves the AVX and AVX-512 register state; its version in
  // Debian 12 (0.7) does not know AVX-VNNI and AVX512-FP16, read here from CPUID leaf 7.
  const auto f = cpu_features::GetX86Info().features;
  unsigned a = 0, b = 0, c = 0, d = 0, a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  const bool leaf7 = __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0;
  const bool leaf7_1 = leaf7 && a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) != 0;
  FeatureSet s = 0;
  const auto add = [&s](bool has, F feature) {
    if (has) s |= feature_bit(feature);
  };
  add(f.sse2, F::sse2);
  add(f.avx2, F::avx2);
  add(f.fma3, F::fma);
  add(f.f16c, F::f16c);
  add(f.avx2 && leaf7_1 && (a1 >> 4 & 1), F::avx_vnni);
  add(f.avx512f, F::avx512f);
  add(f.avx512bw, F::avx512bw);
  add(f.avx512vl, F::avx512vl);
  add(f.avx512dq, F::avx512dq);
  add(f.avx512f && f.avx512vnni, F::avx512_vnni);
  add(f.avx512f && f.avx512_bf16, F::avx512_bf16);
  add(f.avx512f && leaf7 && (d >> 23 & 1), F::avx512_fp16);
  if (f.amx_tile && os_allows_amx()) {
    add(true, F::amx_tile);
    add(f.amx_int8, F::amx_int8);
    add(f.amx_bf16, F::amx_bf16);
  }
  return s;
#else
  return features(F::neon);  // NEON is part of the aarch64 baseline
#endif
}

Isa highest_level(FeatureSet s) {
  int level = 0;
  FeatureSet needed = 0;
  for (int i = 1; i <= static_cast<int>(kTopIsa); ++i) {
    needed |= kLevelDefines[i];
    if ((s & needed) != needed) break;
    level = i;
  }
  return static_cast<Isa>(level);
}

Isa cap_from_environment() {
  const char* s = std::getenv("PAGEDINFER_MAX_ISA");
  if (!s || !*s) return kTopIsa;
  return parse_isa(s);  // an unknown name is a configuration error; say so loudly
}

FeatureSet disabled_from_environment() {
  const char* s = std::getenv("PAGEDINFER_DISABLE_FEATURES");
  const FeatureSet disabled = s ? parse_features(s) : 0;
  PAGEDINFER_CHECK((disabled & kLevelAdds[0]) == 0, "PAGEDINFER_DISABLE_FEATURES", "the baseline features (",
                   feature_names(kLevelAdds[0]), ") cannot be disabled");
  return disabled;
}

std::atomic<int>& cap_storage() {
  static std::atomic<int> cap{static_cast<int>(cap_from_environment())};
  return cap;
}

std::atomic<FeatureSet>& disabled_storage() {
  static std::atomic<FeatureSet> disabled{disabled_from_environment()};
  return disabled;
}

}  // namespace

namespace detail {
CpuVendor cpu_vendor() {
#if defined(__x86_64__) || defined(_M_X64)
  static const CpuVendor vendor = [] {
    // PAGEDINFER_CPU_VENDOR=intel|amd takes the other vendor's tuning choices, so that tests
    // run every kernel those choices pick on any x86 host.
    if (const char* s = std::getenv("PAGEDINFER_CPU_VENDOR"); s && *s) {
      if (std::strcmp(s, "intel") == 0) return CpuVendor::intel;
      if (std::strcmp(s, "amd") == 0) return CpuVendor::amd;
      detail::fail("PAGEDINFER_CPU_VENDOR", "unknown vendor '", s, "' (expected intel or amd)");
    }
    const cpu_features::X86Info info = cpu_features::GetX86Info();
    if (std::strcmp(info.vendor, "GenuineIntel") == 0) return CpuVendor::intel;
    if (std::strcmp(info.vendor, "AuthenticAMD") == 0) return CpuVendor::amd;
    return CpuVendor::other;
  }();
  return vendor;
#else
  return CpuVendor::other;
#endif
}

const char* cpu_vendor_name(CpuVendor v) {
  switch (v) {
    case CpuVendor::intel: return "intel";
    case CpuVendor::amd: return "amd";
    case CpuVendor::other: break;
  }
  return "other";
}
}  // namespace detail

const char* tuning_vendor() { return detail::cpu_vendor_name(detail::cpu_vendor()); }

FeatureSet detected_features() {
  static const FeatureSet s = detect();
  return s;
}

FeatureSet isa_features(Isa isa) {
  FeatureSet s = 0;
  for (int i = 0; i <= static_cast<int>(isa) && i <= static_cast<int>(kTopIsa); ++i) s |= kLevelAdds[i];
  return s;
}

FeatureSet active_features() {
  const auto cap = static_cast<Isa>(cap_storage().load(std::memory_order_relaxed));
  return detected_features() & isa_features(cap) & ~disabled_storage().load(std::memory_order_relaxed);
}

Isa detected_isa() {
  static const Isa isa = highest_level(detected_features());
  return isa;
}

Isa active_isa() { return highest_level(active_features()); }

void set_max_isa(Isa cap) {
  PAGEDINFER_CHECK(static_cast<int>(cap) >= 0 && static_cast<int>(cap) <= static_cast<int>(kTopIsa),
                   "set_max_isa", "cap = ", static_cast<int>(cap), " is not an Isa (0 .. ", static_cast<int>(kTopIsa),
                   ")");
  cap_storage().store(static_cast<int>(cap), std::memory_order_relaxed);
}

Isa max_isa() { return static_cast<Isa>(cap_storage().load(std::memory_order_relaxed)); }

void set_disabled_features(FeatureSet disabled) {
  PAGEDINFER_CHECK(disabled >> kNumCpuFeatures == 0, "set_disabled_features", "disabled = ", disabled,
                   " has bits above the last CpuFeature");
  PAGEDINFER_CHECK((disabled & kLevelAdds[0]) == 0, "set_disabled_features", "the baseline features (",
                   feature_names(kLevelAdds[0]), ") cannot be disabled");
  disabled_storage().store(disabled, std::memory_order_relaxed);
}

FeatureSet disabled_features() { return disabled_storage().load(std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::baseline: return "baseline";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512_bf16: return "avx512_bf16";
    case Isa::amx: return "amx";
  }
  return "invalid";
}

Isa parse_isa(const char* name) {
  PAGEDINFER_CHECK(name != nullptr, "parse_isa", "name must not be null");
  for (Isa i : {Isa::baseline, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx})
    if (std::strcmp(name, isa_name(i)) == 0) return i;
  detail::fail("parse_isa", "unknown ISA '", name, "' (expected baseline, avx2, avx512, avx512_bf16 or amx)");
}

const char* cpu_feature_name(CpuFeature f) {
  const int i = static_cast<int>(f);
  return i >= 0 && i < kNumCpuFeatures ? kFeatureNames[i] : "invalid";
}

FeatureSet parse_features(const std::string& names) {
  FeatureSet s = 0;
  size_t begin = 0;
  while (begin < names.size()) {
    size_t end = names.find(',', begin);
    if (end == std::string::npos) end = names.size();
    const std::string name = names.substr(begin, end - begin);
    begin = end + 1;
    if (name.empty()) continue;
    int i = 0;
    while (i < kNumCpuFeatures && name != kFeatureNames[i]) ++i;
    if (i == kNumCpuFeatures) detail::fail("parse_features", "unknown CPU feature '", name, "' (see cpu.hpp's CpuFeature)");
    s |= FeatureSet(1) << i;
  }
  return s;
}

std::string feature_names(FeatureSet set) {
  std::string out;
  for (int i = 0; i < kNumCpuFeatures; ++i)
    if (set >> i & 1) out += (out.empty() ? "" : ",") + std::string(kFeatureNames[i]);
  return out;
}

}  // namespace pagedinfer
