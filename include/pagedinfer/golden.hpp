// pagedinfer: golden vectors, for validating another implementation (an accelerator's kernel)
// against the library's references. Library pagedinfer_golden (target pagedinfer::golden).
//
// A golden file is a safetensors file (https://huggingface.co/docs/safetensors: 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then the raw little-endian buffers). It holds
//   - the inputs of one call, named as the engines name them (q, k_cache, v_cache, block_table,
//     seq_lens, query_start_loc, positions, cos_sin_cache, qweight, scales, ...);
//   - for each output O: O itself, the reference result computed in double and stored as F32,
//     and "O.bound" (F32, same shape): the largest |candidate - exact| a correct fp32-accumulating
//     kernel may show at that element, derived from the op's error analysis as the library's
//     tests derive theirs (it includes the final rounding to the output dtype, and the F32
//     storage of the reference itself);
//   - metadata: "pagedinfer.spec" (the case spec, defaults filled in, as JSON), "pagedinfer.outputs"
//     (comma-separated output names), "pagedinfer.bound" (the rule in words), "pagedinfer.version".
// A candidate passes when every output element is finite where the reference is and meets
// |candidate - reference| <= bound.
//
// Case specs are JSON objects: {"op": "attention" | "linear" | "rope" | "rms_norm", "seed": 0,
// ...}; docs/golden.md lists every key, its default and the tensors each op writes. Unknown
// keys are an error (a typo never silently falls back to a default).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pagedinfer/export.hpp"
#include "pagedinfer/kv_cache.hpp"

namespace pagedinfer::golden {

// One tensor, as safetensors stores it. dtype is the safetensors name: F64, F32, F16, BF16,
// F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, U16, U32, U64, BOOL.
struct PAGEDINFER_API Tensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // row-major, little-endian

  int64_t numel() const;
  // Element i converted to double (every dtype above).
  double get(int64_t i) const;
};

struct File {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Bytes per element of a safetensors dtype; throws pagedinfer::Error for an unknown name.
PAGEDINFER_API std::size_t dtype_bytes(const std::string& dtype);

// safetensors. Reading checks everything before trusting it: header length against the file,
// JSON syntax, dtype names, shape x dtype size against each byte range, ranges inside the
// buffer, not overlapping and covering it; the error names the file and the broken rule.
PAGEDINFER_API File parse_safetensors(const uint8_t* data, std::size_t size, const std::string& what = "buffer");
PAGEDINFER_API File read_safetensors(const std::string& path);
PAGEDINFER_API std::vector<uint8_t> serialize_safetensors(const File& file);
PAGEDINFER_API void write_safetensors(const std::string& path, const File& file);

// numpy's .npy (format 1.0 - 3.0; little-endian f2, f4, f8, i1, i2, i4, i8, u1, u2, u4, u8, b1;
// C order only).
PAGEDINFER_API Tensor read_npy(const std::string& path);

// Generates one case: inputs, reference outputs and bounds. Throws pagedinfer::Error naming the
// spec key that is missing, unknown or out of range.
PAGEDINFER_API File generate(const std::string& spec_json);

// The paged cache of a golden attention file as a view into its tensors: k_cache and v_cache,
// vLLM's NHD pools [num_pages, page_size, num_kv_heads, head_dim] of BF16, F16, F8_E4M3, F8_E5M2
// or I8, with an fp8 cache's k_scale and v_scale (F32, one element each) or an int8 cache's
// k_scales and v_scales (F32 [num_pages, page_size, num_kv_heads], one per row). The view points
// into `file`, which must outlive it. Throws pagedinfer::Error for a file without them.
PAGEDINFER_API KVCacheView attention_cache(const File& file);

// The standard cases of the deployments pagedinfer serves (Qwen2-7B, Llama-3-8B, Qwen-1.8B
// shapes; prefill 512 and decode batches; pages of 16, 64 and 128 tokens; bf16, fp8 and int8 caches; AWQ int4 g128 with
// zero points, GPTQ with act-order, W8A8; RoPE by position ids; RMSNorm with fused add): specs
// with a "name" each, the file name the suite writes.
PAGEDINFER_API std::vector<std::string> standard_suite();

// One element outside its bound (or non-finite where the reference is finite).
struct PAGEDINFER_API Mismatch {
  std::string tensor;
  std::vector<int64_t> index;
  double got = 0, expected = 0, bound = 0;
  double excess() const;  // |got - expected| / bound (infinite for a non-finite got)
};

struct OutputReport {
  std::string name;
  int64_t elements = 0, failures = 0;
  double max_abs_error = 0;   // over finite elements
  double max_bound_ratio = 0; // max |got - expected| / bound: <= 1 passes
};

struct PAGEDINFER_API Report {
  bool pass = true;
  std::vector<OutputReport> outputs;
  std::vector<Mismatch> worst;  // the largest excesses over all outputs, worst first
  std::string to_string() const;
};

// Compares candidate outputs (by the golden file's output names) with a golden file. Throws
// pagedinfer::Error when the golden file is not one (no pagedinfer.outputs, missing or
// mis-shaped reference or bound) or the candidate lacks an output or has another shape.
// Candidate outputs may be of any float dtype (or integer).
PAGEDINFER_API Report check(const File& golden, const std::map<std::string, Tensor>& candidate,
                            int max_worst = 10);

}  // namespace pagedinfer::golden
