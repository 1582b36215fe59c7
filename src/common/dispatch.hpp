// Picks the kernel of the best ISA level the running CPU supports (capped by set_max_isa).
// The getters are only called for a level that is active, so a getter compiled with AVX-512
// flags never runs on a CPU without AVX-512.
#pragma once
#include "pagedinfer/cpu.hpp"

namespace pagedinfer::detail {

// baseline(), avx2(), avx512(): getters returning the same kernel type. On aarch64 only
// baseline() (NEON) is called; the x86 getters are declared there but never defined or used.
template <class Baseline, class Avx2, class Avx512>
auto best_kernel(Baseline baseline, [[maybe_unused]] Avx2 avx2, [[maybe_unused]] Avx512 avx512) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (active_isa()) {
    case Isa::amx:
    case Isa::avx512_bf16:
    case Isa::avx512: return avx512();
    case Isa::avx2: return avx2();
    case Isa::baseline: break;
  }
#endif
  return baseline();
}

}  // namespace pagedinfer::detail
