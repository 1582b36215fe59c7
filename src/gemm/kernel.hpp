// The contract between the linear() driver (linear.cpp) and the per-ISA GEMM kernels.
//
// The driver first prepares the activations (prepare kernel, rows in parallel) into the
// workspace in the kernel's compute type, in packed k order, zero padded to k_packed, with
// the kernel's own order inside each k-word (see layout.hpp). Then the run kernel computes
// blocks of packed tiles x rows, each group g as
//   c[m][p] += scale[g][p] * sum_{k in g} q[p][k] * act[m][k] + offset[g][p] * act_sums[m][g]
// and hands every finished block to the epilogue, which writes y.
#pragma once
#include <cstdint>

#include "quant/layout.hpp"
#include "pagedinfer/linear.hpp"

namespace pagedinfer::detail {

// i8_limbs: float x as fixed point in four int8 limbs per k (kFixedLimbs below).
enum class ComputeType { f32, bf16, i8, i8_limbs };

// The int8 activation rule of linear.hpp keeps v = x * (127 / max|x|) where |v| < this and
// zeroes it otherwise. Both roundings of fp32 can put the row's maximum itself an ulp above 127
// (about one random row in eight), which must still become 127, while nothing finite reaches
// 127.5: only a non-finite product (x or max|x| not finite) is zeroed.
constexpr float kInt8Limit = 127.5f;

// Fixed-point activations (ComputeType::i8_limbs, one row of float x on VNNI, linear.hpp): each
// x[k] of a row becomes the integer X = round(x * 2^(kFixedBits - e)), max|x| < 2^e, held as
// kFixedLimbs signed base-256 digits, most significant first, each in [-128, 127] (the s8
// operand of vpdpbusd). The row scale is 2^(e - kFixedBits); e is at least kFixedMinExponent,
// which keeps that scale a normal float.
constexpr int kFixedLimbs = 4;
constexpr int kFixedBits = 30;
constexpr int kFixedMinExponent = -96;

// Every kernel's rows per block (1, 2, 4, 6 or 8) divides this; the workspace pads m to a
// multiple of it with zero rows, so every layout block a kernel reads exists. The AMX kernel
// reads tiles of kAmxRows rows; the workspace pads m to a multiple of that too. A kernel's last
// block computes the even number of rows that covers m (blocks.hpp); the epilogue stores only
// the real rows.
constexpr int64_t kMaxBlockRows = 24;
constexpr int64_t kAmxRows = 16;
// The driver's work units are kUnitTiles tiles x a multiple of the kernel's row_quantum rows
// (linear.cpp sizes them).
constexpr int64_t kUnitTiles = 4;

// Prepared activations: rows in blocks of `rows`, block b at data + b * block_bytes. A block
// holds 4-byte units of k (one fp32, a pair of bf16 or four int8), interleaved by row, so a
// kernel reading `rows` rows at once follows one pointer:
//   unit u of row m at data + (m / rows) * block_bytes + (u * rows + m % rows) * 4
// rows = 1 is plain row-major.
struct ActLayout {
  char* data = nullptr;
  int64_t block_bytes = 0;
  int64_t rows = 1;
  char* unit(int64_t m, int64_t u) const { return data + (m / rows) * block_bytes + (u * rows + m % rows) * 4; }
};

struct GemmJob {
  const QuantizedWeight::Storage* w = nullptr;
  int64_t m = 0;
  ActLayout act;                     // k_packed of the compute type per row
  const float* act_sums = nullptr;   // [m padded][groups]
  const float* row_scale = nullptr;  // [m padded], int8 and fixed-point activations only
  const float* bias = nullptr;       // [n_packed] fp32 by packed column, or null
  void* y = nullptr;
  DType y_dtype = DType::f32;
  int64_t y_stride = 0;
  const void* residual = nullptr;  // dtype y_dtype
  int64_t residual_stride = 0;
  bool silu_mul = false;
  int64_t n_out = 0;  // columns of y
  bool stream_one_row = false;  // one-row blocks prefetch their weight stream (dispatch.cpp)
};

struct PrepareJob {
  const void* x = nullptr;
  DType x_dtype = DType::f32;
  int64_t x_stride = 0;
  const QuantizedWeight::Storage* w = nullptr;
  ActLayout act;
  float* act_sums = nullptr;
  float* row_scale = nullptr;
};

// Prepares rows [m_begin, m_end).
using PrepareKernel = void (*)(const PrepareJob& job, int64_t m_begin, int64_t m_end);
// Computes y for packed tiles [tile_begin, tile_end) (multiples of its tiles per block) and rows
// [m_begin, m_end).
using RunKernel = void (*)(const GemmJob& job, int64_t tile_begin, int64_t tile_end, int64_t m_begin,
                           int64_t m_end);

struct GemmKernel {
  ComputeType compute = ComputeType::f32;
  LinearUnit unit = LinearUnit::fp32_fma;  // what linear_unit() reports
  PrepareKernel prepare = nullptr;
  RunKernel run = nullptr;
  int act_rows = 1;  // the ActLayout rows it reads: 1, or its rows per block
  // Beyond act_rows, the rows it reads at once from a row-major layout (act_rows = 1): the
  // driver zeroes the padding rows up to a multiple of max(act_rows, pad_rows).
  int pad_rows = 1;
  // The driver's row units (linear.cpp) are multiples of this: whole row blocks of the kernel.
  int64_t row_quantum = kMaxBlockRows;
  bool stream_one_row = false;  // set by the selection table (dispatch.cpp), copied to GemmJob
  const char* name = "";        // the registered kernel's name (dispatch.cpp)
};

// What a kernel choice depends on (dispatch.cpp's table).
struct GemmCase {
  const QuantizedWeight::Storage* w = nullptr;
  LinearActivations mode = LinearActivations::float_;
  DType x = DType::bf16;
  int64_t m = 0;
};

// The AMX kernels' k per weight chunk (x86_amx.cpp); a weight runs on tiles when whole steps of
// 32 k and whole groups (or one group per row) fit a chunk.
constexpr int64_t kAmxInt8ChunkK = 512, kAmxBf16ChunkK = 256;
inline bool amx_tiles_fit(const QuantizedWeight::Storage& w, int64_t chunk_k) {
  return w.group % 32 == 0 && (chunk_k % w.group == 0 || w.group == w.k_packed);
}

// The kernel the table picks for this case (dispatch.cpp), with its name.
GemmKernel gemm_kernel(const GemmCase& c);

// The kernels, one factory each, defined in the ISA translation units; the register blocking
// inside a kernel follows c.m. The generic kernels (fp32 FMA for float x, exact int32 for int8
// x) exist on every level.
GemmKernel gemm_baseline_generic(const GemmCase& c);  // SSE2 on x86-64, NEON on aarch64
GemmKernel gemm_avx2_generic(const GemmCase& c);
GemmKernel gemm_avx2_vnni(const GemmCase& c);         // int8 x: AVX-VNNI, 256-bit
GemmKernel gemm_avx512_generic(const GemmCase& c);
GemmKernel gemm_avx512_fma_row(const GemmCase& c);    // float x: one row at a time on fp32 FMAs
GemmKernel gemm_avx512_vnni(const GemmCase& c);       // int8 x: vpdpbusd
GemmKernel gemm_avx512_fixed_point(const GemmCase& c);  // float x: one row at a time, int8 limbs
GemmKernel gemm_avx512_bf16_dot(const GemmCase& c);   // bf16 x: vdpbf16ps
GemmKernel gemm_amx_int8(const GemmCase& c);          // int8 x: tdpbsud
GemmKernel gemm_amx_bf16(const GemmCase& c);          // bf16 x: tdpbf16ps

}  // namespace pagedinfer::detail
