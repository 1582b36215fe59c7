// The x86 vendor, for the few tuning choices measured to differ between AMD and Intel cores
// (src/gemm/dispatch.cpp; docs/design/gemm.md has the measurements).
#pragma once

namespace pagedinfer::detail {

enum class CpuVendor { intel, amd, other };
CpuVendor cpu_vendor();  // `other` on non-x86 CPUs
const char* cpu_vendor_name(CpuVendor v);

}  // namespace pagedinfer::detail
