// pagedinfer: the kernel registry.
//
// Every op family (attention, convert, linear, norm, rope, sampling) registers its kernels in
// one selection table (src/<op>/dispatch.cpp), in order of preference. A kernel has a name,
// unique within its op, the set of CPU features it needs (cpu.hpp) and a line saying which
// calls it serves. A call runs the first kernel of its op's table that
//   1. needs only active features (cpu.hpp: detected, under the ISA cap, not disabled),
//   2. can compute the call (dtypes, activation mode, weight format), and
//   3. is the measured choice for it (rows m, CPU vendor; see docs/design/).
// A forced kernel (force_kernel() or PAGEDINFER_KERNEL="linear=avx512_vnni,attention=avx2_fp32")
// skips step 3 for every call it can compute; other calls keep the table's choice. So tests
// and benchmarks reach every kernel the CPU runs, whatever the shape.
// The <op>_kernel_name() functions of each op's header say which kernel a call would run.
#pragma once
#include <string>
#include <vector>

#include "pagedinfer/cpu.hpp"

namespace pagedinfer {

struct KernelInfo {
  const char* op = "";      // "attention", "convert", "linear", "norm", "rope", "sampling"
  const char* name = "";    // unique within the op, e.g. "avx512_vnni"
  FeatureSet needs = 0;     // every feature must be active for the kernel to run
  const char* serves = "";  // which calls it can compute, and where the table prefers it
};

// The ops that have a registry: "attention", "convert", "linear", "norm", "rope", "sampling".
PAGEDINFER_API std::vector<std::string> kernel_ops();
// The kernels registered for `op` (in table order), or for every op when op is empty. Throws
// pagedinfer::Error for an unknown op.
PAGEDINFER_API std::vector<KernelInfo> registered_kernels(const std::string& op = "");
// Whether the kernel's features are all active on this CPU now.
PAGEDINFER_API bool kernel_runs_here(const KernelInfo& kernel);

// Forces `name` for the op's calls that it can compute; an empty name restores the table.
// Throws pagedinfer::Error for an unknown op or name. Thread-safe; affects later calls. A
// forced kernel whose features are not active (cap, disabled set) is not used.
PAGEDINFER_API void force_kernel(const std::string& op, const std::string& name);
// The forced kernel's name, or "".
PAGEDINFER_API std::string forced_kernel(const std::string& op);

}  // namespace pagedinfer
