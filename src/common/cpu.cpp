#include "pagedinfer/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/check.hpp"
#include "common/cpu_vendor.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuinfo_x86.h>
#endif
#if defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace pagedinfer {

namespace {

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

Isa detect() {
#if defined(__x86_64__) || defined(_M_X64)
  const auto f = cpu_features::GetX86Info().features;
  // F16C is required at the avx2 level: every AVX2 CPU shipped has it, and fp16 KV needs it.
  const bool avx2 = f.avx2 && f.fma3 && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  const bool avx512_bf16 = avx512 && f.avx512vnni && f.avx512_bf16;
  const bool amx = avx512_bf16 && f.amx_tile && f.amx_int8 && f.amx_bf16 && os_allows_amx();
  if (amx) return Isa::amx;
  if (avx512_bf16) return Isa::avx512_bf16;
  if (avx512) return Isa::avx512;
  if (avx2) return Isa::avx2;
#endif
  return Isa::baseline;
}

Isa cap_from_environment() {
  const char* s = std::getenv("PAGEDINFER_MAX_ISA");
  if (!s || !*s) return kTopIsa;
  return parse_isa(s);  // an unknown name is a configuration error; say so loudly
}

std::atomic<int>& cap_storage() {
  static std::atomic<int> cap{static_cast<int>(cap_from_environment())};
  return cap;
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
}  // namespace detail

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() {
  const int cap = cap_storage().load(std::memory_order_relaxed);
  const int det = static_cast<int>(detected_isa());
  return static_cast<Isa>(cap < det ? cap : det);
}

void set_max_isa(Isa cap) {
  PAGEDINFER_CHECK(static_cast<int>(cap) >= 0 && static_cast<int>(cap) <= static_cast<int>(kTopIsa),
                   "set_max_isa", "cap is not a valid Isa");
  cap_storage().store(static_cast<int>(cap), std::memory_order_relaxed);
}

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

}  // namespace pagedinfer
