/* pagedinfer: the C ABI (C11), for engines in C, Rust, Go or any language with a C FFI.
 *
 * Every tensor argument is a DLPack DLTensor (dlpack/dlpack.h, Debian libdlpack-dev), so a caller
 * hands torch, numpy, JAX or its own memory without copies; strides are in elements (NULL: compact
 * row-major). Activations are [tokens, dim] or [tokens, heads, dim] with unit stride along the last
 * dimension; index arrays are contiguous int32 (int64 for slot mappings and positions).
 *
 * Every function returns a pi_status. On failure, pi_last_error() returns the message of this
 * thread's last error (naming the argument and the rule it broke, as the C++ API's
 * pagedinfer::Error does); no C++ exception crosses this boundary. Plans and packed weights are
 * opaque handles, freed by their *_destroy function. The contracts of the ops are those of the
 * C++ headers (pagedinfer/attention.hpp, ...). Kernels run on the calling thread and up to
 * num_threads threads; two calls may run at once on different outputs and workspaces.
 */
#ifndef PAGEDINFER_H_
#define PAGEDINFER_H_

#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>

#include "pagedinfer/export.hpp"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  PI_OK = 0,
  PI_INVALID_ARGUMENT = 1, /* an argument broke a rule: see pi_last_error() */
  PI_OUT_OF_MEMORY = 2,
  PI_INTERNAL_ERROR = 3,
} pi_status;

/* This thread's last error message ("" if none). Valid until this thread's next failing call. */
PAGEDINFER_API const char* pi_last_error(void);

/* ---- CPU and kernel control (pagedinfer/cpu.hpp, kernels.hpp) ---- */
PAGEDINFER_API pi_status pi_set_max_isa(const char* isa); /* baseline, avx2, avx512, avx512_bf16, amx */
PAGEDINFER_API const char* pi_active_isa(void);
PAGEDINFER_API const char* pi_detected_isa(void);
/* Comma-separated CPU feature names, e.g. "avx512_bf16,amx_tile"; "" enables all again. */
PAGEDINFER_API pi_status pi_set_disabled_features(const char* features);
/* Forces a kernel of an op ("attention", "convert", "linear", "norm", "rope", "sampling"); name "" restores the table. */
PAGEDINFER_API pi_status pi_force_kernel(const char* op, const char* name);
/* A report of every op's registered kernels and whether this CPU runs them, one per line:
 * "op name runs|skips needs=feature,feature". Valid until this thread's next call of it. */
PAGEDINFER_API const char* pi_kernel_report(void);

/* ---- Paged KV cache (pagedinfer/kv_cache.hpp) ---- */
typedef enum { PI_LAYOUT_NHD = 0, PI_LAYOUT_HND = 1 } pi_layout;
/* What an 8-bit cache holds (kv_cache.hpp's quantized caches); PI_KV_FLOAT: a float cache. */
typedef enum { PI_KV_FLOAT = 0, PI_KV_FP8_E4M3 = 1, PI_KV_FP8_E5M2 = 2, PI_KV_INT8 = 3 } pi_kv_dtype;
/* k, v: [num_pages, page_size, kv_heads, head_dim] (NHD) or [num_pages, kv_heads, page_size,
 * head_dim] (HND), any strides (a combined tensor's two halves work), one dtype. A quantized
 * cache's k, v are uint8 or int8 tensors; fp8 sets k_scale / v_scale (element = stored value *
 * scale), int8 sets k_scales / v_scales: float32 [num_pages, page_size, kv_heads] (NHD) or
 * [num_pages, kv_heads, page_size] (HND), any strides, one scale per row. */
typedef struct {
  const DLTensor* k;
  const DLTensor* v;
  pi_layout layout;
  pi_kv_dtype kv_dtype;
  float k_scale, v_scale;
  const DLTensor* k_scales;
  const DLTensor* v_scales;
} pi_kv_cache;

/* value: NULL for a latent cache (v a slice of k's leading head dims, kv_cache.hpp). */
PAGEDINFER_API pi_status pi_append_kv(const pi_kv_cache* cache, const DLTensor* key, const DLTensor* value,
                                      const DLTensor* slot_mapping /* int64 [tokens], <0 skips */, int num_threads);
PAGEDINFER_API pi_status pi_copy_blocks(const pi_kv_cache* cache, const DLTensor* block_pairs /* int32 [n, 2] */,
                                        int num_threads);
PAGEDINFER_API pi_status pi_kv_block_bytes(const pi_kv_cache* cache, size_t* bytes);
PAGEDINFER_API pi_status pi_gather_blocks(const pi_kv_cache* cache, const DLTensor* block_ids /* int32 [n] */,
                                          void* dst, size_t dst_bytes, int num_threads);
PAGEDINFER_API pi_status pi_scatter_blocks(const pi_kv_cache* cache, const void* src, size_t src_bytes,
                                           const DLTensor* block_ids /* int32 [n], unique */, int num_threads);

/* ---- Attention (pagedinfer/attention.hpp) ---- */
typedef struct pi_attention_plan pi_attention_plan;
PAGEDINFER_API pi_status pi_plan_attention(const DLTensor* q_indptr /* int32 [reqs + 1] */,
                                           const DLTensor* kv_len /* int32 [reqs] */, int32_t num_q_heads,
                                           int32_t num_kv_heads, int32_t head_dim_qk, int32_t head_dim_v,
                                           int num_threads, int32_t kv_chunk /* 0: auto */, pi_attention_plan** plan);
PAGEDINFER_API size_t pi_plan_workspace_bytes(const pi_attention_plan* plan);
PAGEDINFER_API void pi_plan_destroy(pi_attention_plan* plan);

typedef struct {
  const DLTensor* q;             /* [tokens, num_q_heads, head_dim_qk] */
  pi_kv_cache cache;
  const DLTensor* block_table;   /* int32 [reqs, cols], or NULL and the CSR pair below */
  const DLTensor* page_indptr;   /* int32 [reqs + 1] */
  const DLTensor* page_indices;  /* int32 [page_indptr[reqs]] */
  const DLTensor* out;           /* [tokens, num_q_heads, head_dim_v] */
  const DLTensor* lse;           /* optional float32 [tokens, num_q_heads] */
  float scale;                   /* 0: 1 / sqrt(head_dim_qk) */
  int causal;
  int32_t window_left, window_right; /* -1: unlimited */
  float softcap;                 /* 0: off */
  const float* alibi_slopes;     /* optional [num_q_heads] */
  const float* sinks;            /* optional [num_q_heads] */
  void* workspace;               /* >= pi_plan_workspace_bytes, 64-byte aligned */
  size_t workspace_bytes;
  const DLTensor* custom_mask;   /* optional uint8 [mask_indptr[reqs]] (attention.hpp: tree masks) */
  const DLTensor* mask_indptr;   /* int64 [reqs + 1] byte offsets of the requests' segments */
  int mask_packed;               /* 1 (default): bits, little bit order; 0: one byte per element */
} pi_attention_args;
/* Fills the defaults: causal, no windows, no soft-cap, no custom mask, scale from head_dim_qk. */
PAGEDINFER_API void pi_attention_args_init(pi_attention_args* args);
PAGEDINFER_API pi_status pi_paged_attention(const pi_attention_plan* plan, const pi_attention_args* args);
PAGEDINFER_API pi_status pi_reference_paged_attention(const pi_attention_plan* plan, const pi_attention_args* args);
PAGEDINFER_API pi_status pi_merge_states(const DLTensor* a, const DLTensor* lse_a, const DLTensor* b,
                                         const DLTensor* lse_b, const DLTensor* out,
                                         const DLTensor* lse_out /* optional */, int num_threads);

/* ---- Cascade attention over shared prefixes (pagedinfer/cascade.hpp) ---- */
typedef struct pi_cascade_plan pi_cascade_plan;
PAGEDINFER_API pi_status pi_plan_cascade(const DLTensor* group_indptr /* int32 [groups + 1] */,
                                         const DLTensor* prefix_len /* int32 [groups] */,
                                         const DLTensor* q_indptr /* int32 [reqs + 1] */,
                                         const DLTensor* suffix_len /* int32 [reqs] */, int32_t num_q_heads,
                                         int32_t num_kv_heads, int32_t head_dim_qk, int32_t head_dim_v,
                                         int num_threads, pi_cascade_plan** plan);
PAGEDINFER_API size_t pi_cascade_workspace_bytes(const pi_cascade_plan* plan);
PAGEDINFER_API void pi_cascade_plan_destroy(pi_cascade_plan* plan);
typedef struct {
  const DLTensor* q;                  /* [tokens, num_q_heads, head_dim_qk] */
  pi_kv_cache cache;
  const DLTensor* shared_block_table; /* int32 [groups, cols]: each group's prefix pages */
  const DLTensor* unique_block_table; /* int32 [reqs, cols]: each request's suffix pages */
  const DLTensor* out;                /* [tokens, num_q_heads, head_dim_v] */
  const DLTensor* lse;                /* optional float32 [tokens, num_q_heads] */
  float scale;                        /* 0: 1 / sqrt(head_dim_qk) */
  float softcap;                      /* 0: off */
  void* workspace;                    /* >= pi_cascade_workspace_bytes, 64-byte aligned */
  size_t workspace_bytes;
} pi_cascade_args;
PAGEDINFER_API pi_status pi_cascade_attention(const pi_cascade_plan* plan, const pi_cascade_args* args);

/* ---- RMSNorm (pagedinfer/norm.hpp) ---- */
typedef struct {
  const DLTensor* input;    /* [tokens, dim] or [tokens, heads, dim] */
  const DLTensor* output;   /* same shape and dtype; may be input */
  const DLTensor* residual; /* fused only: same shape and dtype */
  const DLTensor* weight;   /* [dim] */
  float eps;
  int weight_plus_one;      /* Gemma */
  int num_threads;
} pi_rms_norm_args;
PAGEDINFER_API pi_status pi_rms_norm(const pi_rms_norm_args* args);
PAGEDINFER_API pi_status pi_fused_add_rms_norm(const pi_rms_norm_args* args);
PAGEDINFER_API pi_status pi_reference_rms_norm(const pi_rms_norm_args* args);
PAGEDINFER_API pi_status pi_reference_fused_add_rms_norm(const pi_rms_norm_args* args);

/* ---- RoPE (pagedinfer/rope.hpp) ---- */
typedef enum { PI_ROPE_NEOX = 0, PI_ROPE_GPTJ = 1 } pi_rope_style;
/* Fills cos_sin_cache float32 [max_position, rotary_dim] (vLLM's layout) for plain RoPE with
 * base theta; scaling: 0 none, 1 linear, 2 dynamic_ntk, 3 yarn, 4 llama3 (factor and
 * original_max_position as rope.hpp; the other YaRN / Llama-3 parameters at their defaults). */
PAGEDINFER_API pi_status pi_make_rope_cache(double theta, int32_t scaling, double factor,
                                            int64_t original_max_position, const DLTensor* cos_sin_cache);
typedef struct {
  const DLTensor* q;             /* optional [tokens, q_heads, head_dim], rotated in place */
  const DLTensor* k;             /* optional [tokens, kv_heads, head_dim] */
  const DLTensor* positions;     /* int64 [tokens] (or [3, tokens] with mrope_section) */
  const DLTensor* cos_sin_cache; /* [max_position, rotary_dim] */
  pi_rope_style style;
  const int32_t* mrope_section;  /* optional [3] */
  int num_threads;
  int32_t rotary_offset;         /* first rotated element (MLA: 512 of 576); 0 when zero-initialized */
} pi_rope_args;
PAGEDINFER_API pi_status pi_apply_rope(const pi_rope_args* args);
PAGEDINFER_API pi_status pi_reference_apply_rope(const pi_rope_args* args);
/* value: NULL for a latent cache (V inside K, kv_cache.hpp), as in pi_append_kv. */
PAGEDINFER_API pi_status pi_apply_rope_and_append_kv(const pi_rope_args* args, const pi_kv_cache* cache,
                                                     const DLTensor* value, const DLTensor* slot_mapping);

/* ---- Quantized weights and linear (pagedinfer/quant.hpp, linear.hpp) ---- */
typedef struct pi_weight pi_weight;
/* bits = 16 with PI_ZERO_NONE and group_size 0: unquantized (W16A16), the values of w, which
   must be bf16 or fp16, packed bit for bit. */
typedef enum { PI_ZERO_SYMMETRIC = 0, PI_ZERO_POINT = 1, PI_ZERO_FLOAT_OFFSET = 2, PI_ZERO_NONE = 3 } pi_zero;
PAGEDINFER_API pi_status pi_quantize(const DLTensor* w /* [n, k] float */, int32_t bits, int32_t group_size,
                                     pi_zero zero, int gate_up, int num_threads, pi_weight** out);
PAGEDINFER_API pi_status pi_import_awq(const DLTensor* qweight, const DLTensor* qzeros, const DLTensor* scales,
                                       int32_t group_size, pi_weight** out);
PAGEDINFER_API pi_status pi_import_gptq(const DLTensor* qweight, const DLTensor* qzeros, const DLTensor* scales,
                                        const DLTensor* g_idx /* optional */, int32_t bits, int32_t group_size,
                                        pi_weight** out);
/* llama.cpp Q4_0 / Q8_0 blocks of a [n, k] weight (bytes: at least n * k / 32 blocks). */
PAGEDINFER_API pi_status pi_import_q4_0(const void* blocks, size_t bytes, int64_t n, int64_t k, pi_weight** out);
PAGEDINFER_API pi_status pi_import_q8_0(const void* blocks, size_t bytes, int64_t n, int64_t k, pi_weight** out);
/* Serialized form: call with buf NULL to get the size, then with a buffer of that size. */
PAGEDINFER_API pi_status pi_save_weight(const pi_weight* w, void* buf, size_t capacity, size_t* size);
PAGEDINFER_API pi_status pi_load_weight(const void* data, size_t size, pi_weight** out);
PAGEDINFER_API pi_status pi_weight_shape(const pi_weight* w, int64_t* n, int64_t* k);
PAGEDINFER_API void pi_weight_destroy(pi_weight* w);

typedef enum { PI_ACTIVATIONS_FLOAT = 0, PI_ACTIVATIONS_INT8 = 1 } pi_activations;
typedef struct {
  const DLTensor* x;        /* [m, k] */
  const DLTensor* y;        /* [m, n_out] */
  const DLTensor* bias;     /* optional [n] */
  const DLTensor* residual; /* optional [m, n_out], y's dtype; may be y */
  pi_activations activations;
  int silu_mul;             /* gate_up weights: y = SiLU(gate) * up */
  int num_threads;
  void* workspace;          /* >= pi_linear_workspace_size, 64-byte aligned */
  size_t workspace_bytes;
} pi_linear_args;
PAGEDINFER_API pi_status pi_linear_workspace_size(const pi_weight* w, const pi_linear_args* args, size_t* bytes);
PAGEDINFER_API pi_status pi_linear(const pi_weight* w, const pi_linear_args* args);
PAGEDINFER_API pi_status pi_reference_linear(const pi_weight* w, const pi_linear_args* args);

/* ---- Sampling (pagedinfer/sampling.hpp) ---- */
typedef struct {
  float temperature;  /* <= 0: greedy */
  int32_t top_k;      /* 0: none */
  float top_p;        /* (0, 1] */
  float min_p;        /* [0, 1] */
  float repetition_penalty, presence_penalty, frequency_penalty;
  uint64_t seed, step;
} pi_sampling_params;
typedef struct {
  const DLTensor* logits;              /* [num_reqs, vocab] float32 / bfloat16 / float16 */
  const pi_sampling_params* requests;  /* [num_reqs] */
  const DLTensor* prev_indptr;         /* optional int64 [num_reqs + 1] */
  const DLTensor* prev_tokens;         /* int32, with prev_indptr */
  const DLTensor* tokens;              /* out int32 [num_reqs] */
  const DLTensor* logprobs;            /* optional out float32 [num_reqs] */
  int num_threads;
  void* workspace; /* >= pi_sample_workspace_size, 64-byte aligned */
  size_t workspace_bytes;
} pi_sample_args;
PAGEDINFER_API pi_status pi_sample_workspace_size(const pi_sample_args* args, size_t* bytes);
PAGEDINFER_API pi_status pi_sample(const pi_sample_args* args);
PAGEDINFER_API pi_status pi_reference_sample(const pi_sample_args* args);
PAGEDINFER_API float pi_sampling_uniform(uint64_t seed, uint64_t step);

#ifdef __cplusplus
}
#endif

#endif /* PAGEDINFER_H_ */
