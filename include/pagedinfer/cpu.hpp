// pagedinfer: run-time choice of the instruction set.
//
// Every kernel exists for several ISA levels; each call uses the best level that the running
// CPU supports and that is not above the cap. The cap lets one machine test every level and
// lets users pin a level (for example to compare them). It is read from the environment
// variable PAGEDINFER_MAX_ISA (baseline | avx2 | avx512 | avx512_bf16 | amx) at first use and can be
// changed at any time with set_max_isa().
//
// Levels, ordered:
//   baseline     the architecture's baseline SIMD: SSE2 on x86-64, NEON on aarch64
//   avx2         AVX2 + FMA + F16C
//   avx512       AVX-512 F/BW/VL/DQ
//   avx512_bf16  avx512 + AVX512-VNNI + AVX512-BF16
//   amx          avx512_bf16 + AMX-TILE/INT8/BF16 (Sapphire Rapids and later), with the Linux
//                kernel's permission for tile data, which detection requests for the process
// No accelerator (TPU, NPU, GPU) instruction set is targeted.
#pragma once
#include "pagedinfer/dtype.hpp"

namespace pagedinfer {

enum class Isa : int32_t { baseline = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3, amx = 4 };
// The highest level; the default cap.
constexpr Isa kTopIsa = Isa::amx;

// The best level this CPU supports (ignores the cap).
PAGEDINFER_API Isa detected_isa();
// min(detected_isa(), cap): the level kernels use now.
PAGEDINFER_API Isa active_isa();
// Sets the cap. Thread-safe; affects calls that start afterwards.
PAGEDINFER_API void set_max_isa(Isa cap);
// "baseline", "avx2", "avx512", "avx512_bf16", "amx".
PAGEDINFER_API const char* isa_name(Isa isa);
// Parses a name as above; throws pagedinfer::Error for an unknown name.
PAGEDINFER_API Isa parse_isa(const char* name);

}  // namespace pagedinfer
