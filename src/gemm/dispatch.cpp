// The linear() kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
// Keyed by the active CPU features, the vendor, the activation mode, x's dtype, the weight's
// bits and the rows m. The reasons behind each row are in docs/design/gemm.md.
#include "common/cpu_vendor.hpp"
#include "common/registry.hpp"
#include "gemm/kernel.hpp"

namespace pagedinfer::detail {

namespace {

using Entry = KernelEntry<GemmCase, GemmKernel>;
using Mode = LinearActivations;

// 16-bit (unquantized) weights meet float x only (linear() refuses int8 x for them).
bool quantized(const GemmCase& c) { return c.w->quantized(); }
bool int8_x(const GemmCase& c) { return c.mode == Mode::int8_per_token && quantized(c); }
bool float_x(const GemmCase& c) { return c.mode == Mode::float_; }
// bf16 dot products take bf16 x, and q or bf16 weights exactly (fp16 weights would round).
bool bf16_x(const GemmCase& c) {
  return c.mode == Mode::float_ && c.x == DType::bf16 && (quantized(c) || c.w->format.dtype == DType::bf16);
}
bool quantized_float_x(const GemmCase& c) { return float_x(c) && quantized(c); }
bool one_row(const GemmCase& c) { return c.m == 1; }
bool intel(const GemmCase&) { return cpu_vendor() != CpuVendor::amd; }

// AMX int8 tiles: from 9 rows for int8 weights (below, the VNNI kernels' one-pass 8 x 2 blocks
// are as fast) and from 5 for int4. Forced or not, the AMX kernels take only these rows: the
// shapes their tests run them on.
bool amx_int8_rows(const GemmCase& c) { return c.m >= (c.w->format.bits == 4 ? 5 : 9); }
bool amx_int8_can_run(const GemmCase& c) {
  return int8_x(c) && amx_tiles_fit(*c.w, kAmxInt8ChunkK) && amx_int8_rows(c);
}
// AMX bf16 tiles: from two rows; one row reads DRAM as fast or faster on the vector kernels.
bool amx_bf16_rows(const GemmCase& c) { return c.m >= 2; }
// The AMX kernels take quantized weights only: 16-bit weights have not run on AMX hardware yet.
bool amx_bf16_can_run(const GemmCase& c) {
  return bf16_x(c) && quantized(c) && amx_tiles_fit(*c.w, kAmxBf16ChunkK) && amx_bf16_rows(c);
}
// One row of float x in fixed point on VNNI on Intel cores, where vdpbf16ps holds both vector
// ports for 2.2 cycles and fp32 FMAs need a conversion per 16 q; AMD keeps vdpbf16ps / FMAs.
bool intel_one_row(const GemmCase& c) { return one_row(c) && intel(c); }

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"linear", "amx_int8", needs::kAmx, "int8 x; from 9 rows (int8 weights) or 5 (int4)"},
     &amx_int8_can_run, &amx_int8_rows, &gemm_amx_int8},
    {{"linear", "amx_bf16", needs::kAmx, "bf16 x; from 2 rows"}, &amx_bf16_can_run, &amx_bf16_rows, &gemm_amx_bf16},
    {{"linear", "avx512_fixed_point", needs::kAvx512Vnni, "float x; one row on Intel cores (x in four int8 limbs)"},
     &quantized_float_x, &intel_one_row, &gemm_avx512_fixed_point},
    {{"linear", "avx512_vnni", needs::kAvx512Vnni, "int8 x"}, &int8_x, nullptr, &gemm_avx512_vnni},
    {{"linear", "avx512_bf16_dot", needs::kAvx512Bf16, "bf16 x; 4-, 8-bit or bf16 weights"}, &bf16_x, nullptr,
     &gemm_avx512_bf16_dot},
    {{"linear", "avx512_fma_row", needs::kAvx512, "float x; one row"}, &float_x, &one_row, &gemm_avx512_fma_row},
    {{"linear", "avx2_vnni", needs::kAvx2Vnni, "int8 x (AVX-VNNI, 256-bit)"}, &int8_x, nullptr, &gemm_avx2_vnni},
    {{"linear", "avx512_fp32", needs::kAvx512, "float x: fp32 FMA"}, &float_x, nullptr, &gemm_avx512_generic},
    {{"linear", "avx512_int32", needs::kAvx512, "int8 x: widened int32 products"}, &int8_x, nullptr,
     &gemm_avx512_generic},
    {{"linear", "avx2_fp32", needs::kAvx2, "float x: fp32 FMA"}, &float_x, nullptr, &gemm_avx2_generic},
    {{"linear", "avx2_int32", needs::kAvx2, "int8 x: widened int32 products"}, &int8_x, nullptr, &gemm_avx2_generic},
    {{"linear", "sse2_int32", needs::kSse2, "int8 x: widened int32 products (x86-64 baseline)"}, &int8_x, nullptr,
     &gemm_baseline_generic},
    {{"linear", "sse2_fp32", needs::kSse2, "float x: fp32 (x86-64 baseline)"}, &float_x, nullptr, &gemm_baseline_generic},
#else
    {{"linear", "neon_int32", needs::kNeon, "int8 x: widened int32 products (aarch64 baseline)"}, &int8_x, nullptr,
     &gemm_baseline_generic},
    {{"linear", "neon_fp32", needs::kNeon, "float x: fp32 FMA (aarch64 baseline)"}, &float_x, nullptr,
     &gemm_baseline_generic},
#endif
};

// One-row blocks prefetch their weight stream on Intel cores; on AMD cores the hardware
// prefetchers alone read DRAM faster.
bool stream_one_row(const GemmCase& c) { return intel(c); }

}  // namespace

OpRegistry& linear_registry() { return registry_of<kTable>("linear"); }

GemmKernel gemm_kernel(const GemmCase& c) {
  const Entry& e = select(kTable, linear_registry(), c);
  GemmKernel k = e.make(c);
  k.stream_one_row = stream_one_row(c);
  k.name = e.info.name;
  return k;
}

}  // namespace pagedinfer::detail
