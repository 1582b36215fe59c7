// linear(): validation, workspace layout and the parallel schedule around the GEMM kernels.
#include <algorithm>
#include <cstring>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/tensor_check.hpp"
#include "common/threading.hpp"
#include "gemm/kernel.hpp"

namespace pagedinfer {

using detail::ComputeType;
using Storage = QuantizedWeight::Storage;

namespace {

constexpr const char* kWhere = "linear";
constexpr size_t kAlign = 64;
// Rows per call: keeps the workspace's size products (rows x k_packed x 4) inside int64.
constexpr int64_t kMaxRows = int64_t(1) << 31;

size_t round_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// The workspace, in order: activations (an ActLayout sized for fp32, the widest compute type,
// and for m padded to kMaxBlockRows and kAmxRows, so the size does not depend on the ISA
// chosen at run time), group sums [m_padded][groups], row scales [m_padded], bias [n_packed].
struct Workspace {
  int64_t m_padded = 0, row_bytes = 0;
  size_t sums = 0, row_scale = 0, bias = 0, total = 0;
  Workspace(const Storage& w, int64_t m) {
    const auto round = [m](int64_t q) { return (m + q - 1) / q * q; };
    m_padded = std::max(round(detail::kMaxBlockRows), round(detail::kAmxRows));
    // One line more than fp32 needs: rows of a row-major layout (the AMX kernel reads 16 rows
    // at once) then never lie a power of two apart, which on 2 MiB pages put a tile's rows in
    // the same cache sets.
    row_bytes = w.k_packed * 4 + 64;
    sums = round_up(size_t(m_padded * row_bytes));
    row_scale = sums + round_up(size_t(m_padded * w.groups) * 4);
    bias = row_scale + round_up(size_t(m_padded) * 4);
    total = bias + round_up(size_t(w.n_packed) * 4);
  }
  // The layout a kernel reads: blocks of `rows` rows, each k_packed units of 4 bytes at most.
  detail::ActLayout act(void* base, int64_t rows) const {
    return {static_cast<char*>(base), rows * row_bytes, rows};
  }
};

// Bytes of one prepared activation.
int64_t element_bytes(ComputeType c) {
  switch (c) {
    case ComputeType::f32: return 4;
    case ComputeType::bf16: return 2;
    case ComputeType::i8: return 1;
    case ComputeType::i8_limbs: return detail::kFixedLimbs;
  }
  return 4;
}

// The rows of one work unit of the run kernels. Units are (row block, column block), row block
// major: the threads walk the column blocks of one row block, each keeping a column block's
// weights (4 tiles x k) in its L2 while they meet every row of the block, and all of them read
// the row block's prepared activations from L3. Weights are read once per row block, so blocks
// are large: about kActBudget of activations each, in equal blocks (multiples of every
// kernel's rows; docs/design/gemm.md has the measurements). Blocks shrink while there are too
// few units to share among the threads.
constexpr int64_t kActBudget = 1 << 20;
int64_t unit_rows(const Storage& w, const detail::GemmKernel& kernel, int64_t m, int threads) {
  const int64_t quantum = kernel.row_quantum, col_blocks = w.tiles() / detail::kUnitTiles;
  const int64_t act_bytes = m * w.k_packed * element_bytes(kernel.compute);
  int64_t blocks = std::max<int64_t>(1, (act_bytes + kActBudget - 1) / kActBudget);
  while (blocks * col_blocks < 4 * int64_t(threads) && blocks * quantum < m) ++blocks;
  const int64_t rows = (m + blocks - 1) / blocks;
  return (rows + quantum - 1) / quantum * quantum;
}

void validate(const Storage& w, const LinearParams& p, int64_t n_out) {
  PAGEDINFER_CHECK(p.m >= 0 && p.m <= kMaxRows, kWhere, "params.m = ", p.m, " must be in [0, 2^31]");
  detail::check_num_threads(p.num_threads, kWhere, "params.num_threads");
  PAGEDINFER_CHECK(p.activations == LinearActivations::float_ || p.activations == LinearActivations::int8_per_token,
                   kWhere, "params.activations = ", int(p.activations), " is not a LinearActivations");
  PAGEDINFER_CHECK(p.activations == LinearActivations::float_ || w.quantized(), kWhere,
                   "params.activations = int8_per_token needs a 4- or 8-bit weight; this one is unquantized ",
                   dtype_name(w.format.dtype), " (W16A16 takes float activations)");
  PAGEDINFER_CHECK(!p.silu_mul || w.gate_up, kWhere,
                   "params.silu_mul needs a gate_up weight (QuantizeOptions::gate_up)");
  PAGEDINFER_CHECK(p.bias == nullptr || is_float_dtype(p.bias_dtype), kWhere,
                   "params.bias_dtype must be f32, bf16 or f16");
  PAGEDINFER_CHECK(p.bias == nullptr || detail::aligned_to(p.bias, p.bias_dtype), kWhere,
                   "params.bias must be aligned to its element size");
  PAGEDINFER_CHECK(p.k == w.k, kWhere, "params.k = ", p.k, " does not match the weight's k = ", w.k);
  if (p.m == 0) return;
  PAGEDINFER_CHECK(p.x.stride_token >= w.k, kWhere, "params.x.stride_token = ", p.x.stride_token, " is smaller than k = ", w.k);
  PAGEDINFER_CHECK(p.y.stride_token >= n_out, kWhere, "params.y.stride_token = ", p.y.stride_token,
                   " is smaller than the output features ", n_out);
  detail::validate_tokens(p.x.data, p.x.dtype, p.x.stride_token, 0, p.m, 1, int32_t(w.k), kWhere, "x");
  detail::validate_tokens(p.y.data, p.y.dtype, p.y.stride_token, 0, p.m, 1, int32_t(n_out), kWhere, "y");
  const auto y_extent = detail::tokens_extent(p.y.data, p.y.dtype, p.y.stride_token, 0, p.m, 1, int32_t(n_out));
  PAGEDINFER_CHECK(!detail::extents_overlap(y_extent,
                                            detail::tokens_extent(p.x.data, p.x.dtype, p.x.stride_token, 0, p.m, 1, int32_t(w.k))),
                   kWhere, "y overlaps x");
  if (p.residual.data) {
    PAGEDINFER_CHECK(p.residual.dtype == p.y.dtype, kWhere, "params.residual.dtype = ", dtype_name(p.residual.dtype),
                     " must be y's dtype ", dtype_name(p.y.dtype));
    detail::validate_tokens(p.residual.data, p.y.dtype, p.residual.stride_token, 0, p.m, 1, int32_t(n_out), kWhere,
                            "residual");
    const bool same = p.residual.data == p.y.data && p.residual.stride_token == p.y.stride_token;
    PAGEDINFER_CHECK(same || !detail::extents_overlap(y_extent, detail::tokens_extent(p.residual.data, p.y.dtype,
                                                                                      p.residual.stride_token, 0, p.m, 1,
                                                                                      int32_t(n_out))),
                     kWhere, "residual must be y itself (same pointer and stride) or not overlap it");
  }
  const Workspace ws(w, p.m);
  PAGEDINFER_CHECK(p.workspace != nullptr, kWhere, "params.workspace is null (needs ", ws.total, " bytes)");
  PAGEDINFER_CHECK(reinterpret_cast<uintptr_t>(p.workspace) % kAlign == 0, kWhere,
                   "params.workspace must be 64-byte aligned");
  PAGEDINFER_CHECK(p.workspace_bytes >= ws.total, kWhere, "params.workspace_bytes = ", p.workspace_bytes,
                   " is smaller than linear_workspace_size() = ", ws.total);
}

}  // namespace

int64_t linear_out_features(const QuantizedWeight& w, const LinearParams& p) {
  return p.silu_mul ? w.n() / 2 : w.n();
}

size_t linear_workspace_size(const QuantizedWeight& w, const LinearParams& p) {
  PAGEDINFER_CHECK(p.m >= 0 && p.m <= kMaxRows, "linear_workspace_size", "params.m = ", p.m, " must be in [0, 2^31]");
  return p.m == 0 ? 0 : Workspace(w.storage(), p.m).total;
}

LinearUnit linear_unit(const QuantizedWeight& w, const LinearParams& p) {
  PAGEDINFER_CHECK(p.m >= 0, "linear_unit", "params.m = ", p.m, " must be >= 0");
  return detail::gemm_kernel({&w.storage(), p.activations, p.x.dtype, p.m}).unit;
}

const char* linear_kernel_name(const QuantizedWeight& w, const LinearParams& p) {
  PAGEDINFER_CHECK(p.m >= 0, "linear_kernel_name", "params.m = ", p.m, " must be >= 0");
  return detail::gemm_kernel({&w.storage(), p.activations, p.x.dtype, p.m}).name;
}

const char* linear_unit_name(LinearUnit u) {
  switch (u) {
    case LinearUnit::fp32_fma: return "fp32_fma";
    case LinearUnit::int32_vector: return "int32_vector";
    case LinearUnit::bf16_dot: return "bf16_dot";
    case LinearUnit::int8_dot: return "int8_dot";
    case LinearUnit::amx_bf16: return "amx_bf16";
    case LinearUnit::amx_int8: return "amx_int8";
  }
  return "unknown";
}

namespace {

// Step 1: x into the kernel's compute type and layout, with group sums and row scales.
detail::PrepareJob prepare_activations(const Storage& w, const LinearParams& p, const detail::GemmKernel& kernel,
                                       const Workspace& ws) {
  char* base = static_cast<char*>(p.workspace);
  detail::PrepareJob prep;
  prep.x = p.x.data;
  prep.x_dtype = p.x.dtype;
  prep.x_stride = p.x.stride_token;
  prep.w = &w;
  prep.act = ws.act(base, kernel.act_rows);
  prep.act_sums = reinterpret_cast<float*>(base + ws.sums);
  prep.row_scale = reinterpret_cast<float*>(base + ws.row_scale);
  // The padding rows of the kernel's last row block read as zeros (only those: zeroing all of
  // m_padded would cost a GEMV 23 rows of k), and only the 4-byte units the compute type fills
  // (this runs on one thread).
  const int64_t read_rows = std::max(kernel.act_rows, kernel.pad_rows);
  const int64_t m_read = (p.m + read_rows - 1) / read_rows * read_rows;
  const int64_t units = w.k_packed * element_bytes(kernel.compute) / 4;
  for (int64_t m = p.m; m < m_read; ++m) {
    char* unit = prep.act.unit(m, 0);
    for (int64_t u = 0; u < units; ++u, unit += 4 * prep.act.rows) std::memset(unit, 0, 4);
    std::fill(prep.act_sums + m * w.groups, prep.act_sums + (m + 1) * w.groups, 0.f);
    prep.row_scale[m] = 0.f;
  }
  // Rows in chunks of about 64 KiB of x: enough work per chunk to amortize the hand-out, and
  // whole blocks of the layout, so that no two threads write the same lines of it.
  const int64_t x_rows = std::max<int64_t>(1, (int64_t(1) << 16) / (w.k * int64_t(dtype_size(p.x.dtype))));
  const int64_t row_grain = (x_rows + kernel.act_rows - 1) / kernel.act_rows * kernel.act_rows;
  detail::parallel_for((p.m + row_grain - 1) / row_grain, p.num_threads, 1, [&](int64_t c) {
    kernel.prepare(prep, c * row_grain, std::min(p.m, (c + 1) * row_grain));
  });
  return prep;
}

// Step 2: the bias in fp32 by packed column, or null.
const float* stage_bias(const Storage& w, const LinearParams& p, const Workspace& ws) {
  if (!p.bias) return nullptr;
  float* bias = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + ws.bias);
  std::fill(bias, bias + w.n_packed, 0.f);
  for (int64_t row = 0; row < w.n; ++row)
    bias[w.packed_column(row)] = detail::load_as_float(p.bias, p.bias_dtype, size_t(row));
  return bias;
}

// Step 3: what the run kernels read.
detail::GemmJob make_job(const Storage& w, const LinearParams& p, const detail::GemmKernel& kernel,
                         const detail::PrepareJob& prep, const float* bias, int64_t n_out) {
  detail::GemmJob job;
  job.w = &w;
  job.m = p.m;
  job.act = prep.act;
  job.act_sums = prep.act_sums;
  const bool scaled_rows = kernel.compute == ComputeType::i8 || kernel.compute == ComputeType::i8_limbs;
  job.row_scale = scaled_rows ? prep.row_scale : nullptr;
  job.bias = bias;
  job.y = p.y.data;
  job.y_dtype = p.y.dtype;
  job.y_stride = p.y.stride_token;
  job.residual = p.residual.data;
  job.residual_stride = p.residual.stride_token;
  job.silu_mul = p.silu_mul;
  job.n_out = n_out;
  job.stream_one_row = kernel.stream_one_row;
  return job;
}

// Step 4: the run kernel over (row block, column block) units on the threads.
void run_units(const Storage& w, const LinearParams& p, const detail::GemmKernel& kernel, const detail::GemmJob& job) {
  const int64_t row_block = unit_rows(w, kernel, p.m, p.num_threads);
  const int64_t row_blocks = (p.m + row_block - 1) / row_block;
  const int64_t col_block = detail::kUnitTiles;
  const int64_t col_blocks = w.tiles() / col_block;
  // One row block (decode and small batches, where each weight is read once, from DRAM): each
  // thread takes one contiguous range of column blocks, so it reads one forward stream whose
  // prefetches (software and hardware) run on into its own next tiles. Handed out one at a time,
  // the blocks of the two threads interleave and every block starts cold.
  if (row_blocks == 1) {
    detail::parallel_ranges(col_blocks, p.num_threads, 1, [&](int64_t b0, int64_t b1) {
      kernel.run(job, b0 * col_block, b1 * col_block, 0, p.m);
    });
    return;
  }
  detail::parallel_for(row_blocks * col_blocks, p.num_threads, 1, [&](int64_t u) {
    const int64_t rb = u / col_blocks, cb = u % col_blocks;
    kernel.run(job, cb * col_block, (cb + 1) * col_block, rb * row_block, std::min(p.m, (rb + 1) * row_block));
  });
}

}  // namespace

void linear(const QuantizedWeight& weight, const LinearParams& p) {
  const Storage& w = weight.storage();
  const int64_t n_out = linear_out_features(weight, p);
  validate(w, p, n_out);
  if (p.m == 0) return;
  const detail::GemmKernel kernel = detail::gemm_kernel({&w, p.activations, p.x.dtype, p.m});
  const Workspace ws(w, p.m);
  const detail::PrepareJob prep = prepare_activations(w, p, kernel, ws);
  const float* bias = stage_bias(w, p, ws);
  run_units(w, p, kernel, make_job(w, p, kernel, prep, bias, n_out));
}

}  // namespace pagedinfer
