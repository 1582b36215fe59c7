// pagedinfer: weight-quantized linear layers, part 1: the packed weight.
//
// A linear layer's weight W is [n, k] (n output features, k input features, row-major as in
// PyTorch's nn.Linear). It is quantized in groups of `group_size` consecutive k of one row;
// each group g of row n has a scale s[g][n] and, by format,
//   symmetric     w = s * (q - 2^(bits-1))      q unsigned, so q - 8 in [-8, 7] for int4
//   zero_point    w = s * (q - z[g][n])         z an integer in [0, 2^bits)  (AWQ, GPTQ)
//   float_offset  w = s * q + m[g][n]           m a float                   (min/max form)
// with q in [0, 2^bits). Scales (and m) are stored as fp16, the form every source checkpoint
// (AWQ, GPTQ, llama.cpp) uses, so imports are lossless and a weight costs bits + 24/group_size
// bits of memory: 4.19 bits for int4 g128.
//
// QuantizedWeight is made once at load time (quantize(), an importer, or load) and is then
// read-only: any number of threads may run linear() on it at once. Its layout is private to
// the library (src/quant/layout.hpp) and versioned: save_weight() writes it with a format version and a
// checksum, load_weight() refuses files of an unknown version, truncated files and corrupt ones
// (it reads the current version 4 and versions 1 to 3).
//
// GPTQ act-order (g_idx) is kept exactly: the importer orders k by group and the weight
// remembers the order; linear() reads x in that order, so no caller-side permutation exists.
//
// Unquantized weights (W16A16: bf16 or fp16 checkpoints, and the layers an engine keeps
// unquantized) are packed the same way with QuantFormat::unquantized(dtype): 16 bits per
// weight, the values themselves (no scales or zero points), in the tiles every kernel reads.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer {

// none: unquantized 16-bit weights only.
enum class QuantZero : int32_t { symmetric = 0, zero_point = 1, float_offset = 2, none = 3 };

struct QuantFormat {
  int32_t bits = 4;          // 4 or 8; 16: unquantized values of `dtype` (use unquantized())
  int32_t group_size = 128;  // 32, 64 or 128 (must divide k); 0 = one group per row (per-channel)
  QuantZero zero = QuantZero::zero_point;
  DType dtype = DType::bf16;  // 16 bits: bf16 or fp16 values; not used by 4 and 8 bits

  // W16A16: bits 16, group_size 0, zero none, values of `values` (bf16 or fp16).
  static QuantFormat unquantized(DType values) { return {16, 0, QuantZero::none, values}; }
  bool quantized() const { return bits != 16; }
};

class PAGEDINFER_API QuantizedWeight {
 public:
  struct Storage;  // src/quant/layout.hpp
  QuantizedWeight();
  explicit QuantizedWeight(std::shared_ptr<const Storage> s);
  ~QuantizedWeight();
  QuantizedWeight(const QuantizedWeight&);
  QuantizedWeight& operator=(const QuantizedWeight&);

  bool empty() const;
  int64_t n() const;  // output features of the layer (for gate_up: 2 * intermediate)
  int64_t k() const;  // input features
  QuantFormat format() const;
  int64_t group_size() const;  // effective: k for per-channel
  // Made by quantize() with options.gate_up: linear() can then apply SiLU(gate) * up.
  bool gate_up() const;
  bool act_order() const;  // k is reordered (GPTQ g_idx)
  // Bytes of the packed weight, scales and zero points (what a GEMV must read).
  int64_t bytes() const;

  // The quantized integer of W[n][k] (source k numbering), its group's scale and offset, and
  // the dequantized value, exactly: dequantize = scale * q + offset, offset = -scale * z or m.
  // Unquantized weights: q is the value's 16-bit pattern, scale 1, offset 0, and dequantize()
  // the value.
  int32_t q(int64_t n, int64_t k) const;
  double scale(int64_t n, int64_t k) const;
  double offset(int64_t n, int64_t k) const;
  double dequantize(int64_t n, int64_t k) const;
  // |scale * q| + |offset| (unquantized: |w|): W[n][k]'s part of linear()'s error bound
  // (linear.hpp), where the group sums add q * x before they are scaled and offset.
  double error_magnitude(int64_t n, int64_t k) const;

  const Storage& storage() const;  // for the library's own kernels

 private:
  std::shared_ptr<const Storage> s_;
};

// Quantizes a float weight [n, k] (row stride `stride` elements, >= k) by round-to-nearest, per
// group: symmetric: s = max|w| / (2^(bits-1) - 1); zero_point: s = (hi - lo) / (2^bits - 1) with
// lo = min(min w, 0), hi = max(max w, 0) (0 stays exactly representable), z = round(-lo / s)
// clamped; float_offset: s = (max - min) / (2^bits - 1), m = min. s (and m) are rounded to fp16
// first and q is computed with the rounded values, so dequantize() returns exactly what linear()
// uses. A group whose s is 0 (all zero, or constant for float_offset) gets q = 0 (symmetric:
// q = 2^(bits-1)), so it dequantizes to 0 (or m). Every |w| must be <= 65504 (fp16's largest
// finite value, as scales are fp16); n <= 2^31 and k <= 65536 (so that int8 sums of a whole row
// fit int32), for every packed weight.
// QuantFormat::unquantized(values) keeps each w as a bf16 or fp16 value, rounded to nearest
// even where the source dtype differs (bf16 and fp16 sources of the same dtype are copied bit
// for bit); every rounded value must be finite.
struct QuantizeOptions {
  QuantFormat format;
  // Rows [0, n/2) are the gate projection and [n/2, n) the up projection of a fused gate/up
  // layer (vLLM's MergedColumnParallelLinear); n must be even.
  bool gate_up = false;
  int num_threads = 1;  // rows are quantized on up to this many threads
  QuantizeOptions(QuantFormat f = {}) : format(f) {}  // implicit: quantize(..., QuantFormat{...})
};
PAGEDINFER_API QuantizedWeight quantize(const void* w, DType dtype, int64_t n, int64_t k, int64_t stride,
                                        const QuantizeOptions& options);

// AutoAWQ GEMM checkpoint, int4, w = (q - z) * s:
//   qweight [k, n/8] int32: word (i, j) holds columns 8j..8j+7 of row i, nibble p (bits 4p..4p+3)
//     holding column 8j + order[p], order = {0, 2, 4, 6, 1, 3, 5, 7}
//   qzeros  [k/group, n/8] int32, packed the same way; scales [k/group, n] fp16 bits.
PAGEDINFER_API QuantizedWeight import_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                                          int64_t n, int64_t k, int32_t group_size, int num_threads = 1);

// AutoGPTQ checkpoint (v1 zero convention), bits 4 or 8, w = (q - (zs + 1)) * s:
//   qweight [k * bits / 32, n] int32: word (i, j) holds rows 32i/bits.. of column j, element p at
//     bits p*bits..; qzeros [groups, n * bits / 32] int32, element p of word (g, j) is column
//     32j/bits + p; scales [groups, n] fp16 bits;
//   g_idx [k] int32 group of each k, or null for k / group_size. Every group must have exactly
//     group_size members (as GPTQ writes them); act-order is kept (see above).
PAGEDINFER_API QuantizedWeight import_gptq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                                           const int32_t* g_idx, int64_t n, int64_t k, int32_t bits,
                                           int32_t group_size, int num_threads = 1);

// llama.cpp blocks of 32 weights along k, each row n holding k/32 consecutive blocks:
//   Q4_0: 18 bytes, fp16 d then 16 bytes qs; w[j] = d * ((qs[j] & 15) - 8), w[j+16] = d * ((qs[j] >> 4) - 8)
//   Q8_0: 34 bytes, fp16 d then 32 int8 qs; w[j] = d * qs[j]
PAGEDINFER_API QuantizedWeight import_q4_0(const void* blocks, int64_t n, int64_t k, int num_threads = 1);
PAGEDINFER_API QuantizedWeight import_q8_0(const void* blocks, int64_t n, int64_t k, int num_threads = 1);

// Importers run on up to num_threads threads (column tiles split between them).

// Tensor-parallel shards, cut from a packed weight without re-quantizing: every q, scale and
// zero point of a shard is the weight's (the shard's dequantize() equals the weight's at the
// mapped index), and a shard saves and loads like any packed weight.
//
// By output features (column-parallel QKV and gate_up; the shards' outputs, concatenated segment
// by segment, are the weight's): the weight's rows are `segments` laid end to end (QKV: the q, k
// and v sizes; empty: one segment of n, or gate and up for a gate_up weight, whose shards are
// gate_up weights again). Rank `rank` of `ranks` gets the rank-th of `ranks` equal parts of every
// segment, in segment order, so that its q, k and v rows (or its gate and up rows) stay together.
// Every segment must divide by ranks (whole heads per rank is the caller's rule).
PAGEDINFER_API QuantizedWeight shard_output_features(const QuantizedWeight& w, int rank, int ranks,
                                                     const std::vector<int64_t>& segments = {},
                                                     int num_threads = 1);

// By input features (row-parallel o_proj and down; the shards' outputs summed are the weight's):
// rank r gets source columns [r k / ranks, (r + 1) k / ranks) and reads x of those columns only.
// k must divide by ranks, and for grouped weights k / ranks by the group size: shards hold whole
// groups. Act-order weights (GPTQ g_idx) spread each group over k, so a shard holds parts of many
// groups: it keeps each group's members together, in runs padded with zero weights (which read
// x = 0) to whole groups of 32, 64 or 128, each with its source group's scale and zero point.
// That is exact; the padding costs at most 31 packed k per source group and rank (measured on a
// random act-order order with group 128: docs/distributed.md).
PAGEDINFER_API QuantizedWeight shard_input_features(const QuantizedWeight& w, int rank, int ranks,
                                                    int num_threads = 1);

// The packed form as bytes: magic, format version, shape, format, arrays, 64-bit checksum.
PAGEDINFER_API std::vector<uint8_t> save_weight(const QuantizedWeight& w);
PAGEDINFER_API QuantizedWeight load_weight(const uint8_t* data, std::size_t size);
PAGEDINFER_API void save_weight_file(const QuantizedWeight& w, const std::string& path);
PAGEDINFER_API QuantizedWeight load_weight_file(const std::string& path);

}  // namespace pagedinfer
