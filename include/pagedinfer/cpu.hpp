// pagedinfer: the CPU features kernels need, and the controls that limit them.
//
// Every kernel is registered with the set of CPU features it needs (pagedinfer/kernels.hpp);
// a call runs the kernel its op's selection table picks among those whose features are active.
// The active features are the detected ones, minus those above the ISA cap, minus those
// disabled by name:
//   cap       PAGEDINFER_MAX_ISA=baseline|avx2|avx512|avx512_bf16|amx, or set_max_isa()
//   disable   PAGEDINFER_DISABLE_FEATURES=avx512_bf16,amx_tile,..., or set_disabled_features()
// Both are read from the environment at first use and can be changed at any time; they let one
// machine run every kernel and every CPU class it can emulate (for example an AVX512-VNNI CPU
// without BF16, as Cascade Lake and Ice Lake servers are, by disabling avx512_bf16).
//
// ISA levels are CPU classes. A level allows these features, cumulatively:
//   baseline     sse2 on x86-64, neon on aarch64
//   avx2         avx2, fma, f16c, avx_vnni (Haswell, Zen 1; Alder Lake adds AVX-VNNI)
//   avx512       avx512f/bw/vl/dq, avx512_vnni (Skylake-SP; Cascade Lake, Ice Lake add VNNI)
//   avx512_bf16  avx512_bf16, avx512_fp16 (Cooper Lake, Zen 4, Sapphire Rapids)
//   amx          amx_tile, amx_int8, amx_bf16 (Sapphire Rapids and later), with the Linux
//                kernel's permission for tile data, which detection requests for the process
// and active_isa() is the highest level whose defining features (those listed first in each
// line, and for avx512_bf16 also avx512_vnni) are all active.
// No accelerator (TPU, NPU, GPU) instruction set is targeted.
#pragma once
#include <cstdint>
#include <string>

#include "pagedinfer/export.hpp"

namespace pagedinfer {

enum class Isa : int32_t { baseline = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3, amx = 4 };
// The highest level; the default cap.
constexpr Isa kTopIsa = Isa::amx;

enum class CpuFeature : int32_t {
  sse2 = 0, avx2, fma, f16c, avx_vnni,
  avx512f, avx512bw, avx512vl, avx512dq, avx512_vnni, avx512_bf16, avx512_fp16,
  amx_tile, amx_int8, amx_bf16,
  neon,
};
constexpr int kNumCpuFeatures = static_cast<int>(CpuFeature::neon) + 1;

// A set of CPU features: bit f is set for feature f.
using FeatureSet = uint64_t;
constexpr FeatureSet feature_bit(CpuFeature f) { return FeatureSet(1) << static_cast<int>(f); }
template <class... F>
constexpr FeatureSet features(F... f) { return (FeatureSet(0) | ... | feature_bit(f)); }

// What this CPU (and OS) supports; ignores the cap and the disabled set.
PAGEDINFER_API FeatureSet detected_features();
// detected_features(), minus features above the cap, minus the disabled set: what kernels use.
PAGEDINFER_API FeatureSet active_features();
// The features a level allows (cumulative, see above), on this architecture.
PAGEDINFER_API FeatureSet isa_features(Isa isa);

// The best level this CPU supports (ignores the cap and the disabled set).
PAGEDINFER_API Isa detected_isa();
// The highest level whose defining features are all active.
PAGEDINFER_API Isa active_isa();
// Sets the cap. Thread-safe; affects calls that start afterwards.
PAGEDINFER_API void set_max_isa(Isa cap);
PAGEDINFER_API Isa max_isa();
// Features that no kernel may use (on top of the cap). Thread-safe; affects later calls.
PAGEDINFER_API void set_disabled_features(FeatureSet disabled);
PAGEDINFER_API FeatureSet disabled_features();

// The vendor whose measured kernel choices apply: "intel", "amd" or "other" (non-x86 CPUs;
// x86 vendors other than AMD take Intel's choices). PAGEDINFER_CPU_VENDOR=intel|amd overrides
// it for the process, so that tests run both vendors' choices on any x86 host.
PAGEDINFER_API const char* tuning_vendor();

// "baseline", "avx2", "avx512", "avx512_bf16", "amx".
PAGEDINFER_API const char* isa_name(Isa isa);
// Parses a name as above; throws pagedinfer::Error for an unknown name.
PAGEDINFER_API Isa parse_isa(const char* name);
// "sse2", "avx2", ..., "amx_bf16", "neon" (the enumerator's name).
PAGEDINFER_API const char* cpu_feature_name(CpuFeature f);
// A comma-separated list of names ("" is the empty set); throws pagedinfer::Error naming an
// unknown one.
PAGEDINFER_API FeatureSet parse_features(const std::string& names);
// The names of a set, comma-separated, in enum order.
PAGEDINFER_API std::string feature_names(FeatureSet set);

}  // namespace pagedinfer
