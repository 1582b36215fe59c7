/* The C ABI from C11: a decode step (paged attention against the reference), RMSNorm and a
 * quantized linear layer, each against its reference, and bad inputs that must fail cleanly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagedinfer/pagedinfer.h"

static int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
      ++failures;                                          \
    }                                                      \
  } while (0)

static DLTensor tensor(void* data, DLDataTypeCode code, int bits, int ndim, int64_t* shape) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.ndim = ndim;
  t.dtype.code = (uint8_t)code;
  t.dtype.bits = (uint8_t)bits;
  t.dtype.lanes = 1;
  t.shape = shape;
  return t; /* strides NULL: compact row-major */
}

static float uniform(unsigned* s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float max_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = fmaxf(m, fabsf(a[i] - b[i]));
  return m;
}

static void* aligned(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }

int main(void) {
  unsigned seed = 7;
  /* A paged fp32 cache, NHD [4 pages, 4 tokens, 2 KV heads, 16], two decode requests. */
  enum { PAGES = 4, PAGE = 4, KVH = 2, QH = 4, D = 16, REQS = 2 };
  static float k_pool[PAGES * PAGE * KVH * D], v_pool[PAGES * PAGE * KVH * D], q[REQS * QH * D];
  static float out[REQS * QH * D], ref[REQS * QH * D], lse[REQS * QH];
  for (size_t i = 0; i < sizeof k_pool / sizeof *k_pool; ++i) k_pool[i] = uniform(&seed), v_pool[i] = uniform(&seed);
  for (size_t i = 0; i < sizeof q / sizeof *q; ++i) q[i] = uniform(&seed);
  int64_t pool_shape[4] = {PAGES, PAGE, KVH, D}, q_shape[3] = {REQS, QH, D};
  DLTensor k = tensor(k_pool, kDLFloat, 32, 4, pool_shape), v = tensor(v_pool, kDLFloat, 32, 4, pool_shape);
  DLTensor qt = tensor(q, kDLFloat, 32, 3, q_shape), ot = tensor(out, kDLFloat, 32, 3, q_shape);
  DLTensor rt = tensor(ref, kDLFloat, 32, 3, q_shape);
  int64_t lse_shape[2] = {REQS, QH};
  DLTensor lt = tensor(lse, kDLFloat, 32, 2, lse_shape);
  int32_t q_indptr[REQS + 1] = {0, 1, 2}, kv_len[REQS] = {5, 9}, table[REQS * 3] = {2, 0, 0, 1, 3, 0};
  int64_t indptr_shape[1] = {REQS + 1}, len_shape[1] = {REQS}, table_shape[2] = {REQS, 3};
  DLTensor qi = tensor(q_indptr, kDLInt, 32, 1, indptr_shape), kl = tensor(kv_len, kDLInt, 32, 1, len_shape);
  DLTensor bt = tensor(table, kDLInt, 32, 2, table_shape);

  pi_attention_plan* plan = NULL;
  CHECK(pi_plan_attention(&qi, &kl, QH, KVH, D, D, 2, 0, &plan) == PI_OK, "plan: %s", pi_last_error());
  void* ws = aligned(pi_plan_workspace_bytes(plan));
  pi_attention_args a;
  pi_attention_args_init(&a);
  a.q = &qt;
  a.cache.k = &k;
  a.cache.v = &v;
  a.cache.layout = PI_LAYOUT_NHD;
  a.block_table = &bt;
  a.out = &ot;
  a.lse = &lt;
  a.workspace = ws;
  a.workspace_bytes = pi_plan_workspace_bytes(plan);
  CHECK(pi_paged_attention(plan, &a) == PI_OK, "attention: %s", pi_last_error());
  pi_attention_args r = a;
  r.out = &rt;
  r.lse = NULL;
  CHECK(pi_reference_paged_attention(plan, &r) == PI_OK, "reference: %s", pi_last_error());
  CHECK(max_diff(out, ref, REQS * QH * D) < 1e-5f, "attention differs from the reference by %g",
        max_diff(out, ref, REQS * QH * D));

  /* A custom mask (dense, one byte per key): request 0 sees keys 0 and 3, request 1 all but 4. */
  uint8_t mask[5 + 9] = {1, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1};
  int64_t mask_indptr[REQS + 1] = {0, 5, 14}, mask_shape[1] = {14};
  DLTensor mt = tensor(mask, kDLUInt, 8, 1, mask_shape), mi = tensor(mask_indptr, kDLInt, 64, 1, indptr_shape);
  a.custom_mask = r.custom_mask = &mt;
  a.mask_indptr = r.mask_indptr = &mi;
  a.mask_packed = r.mask_packed = 0;
  CHECK(pi_paged_attention(plan, &a) == PI_OK, "masked attention: %s", pi_last_error());
  CHECK(pi_reference_paged_attention(plan, &r) == PI_OK, "masked reference: %s", pi_last_error());
  CHECK(max_diff(out, ref, REQS * QH * D) < 1e-5f, "masked attention differs from the reference by %g",
        max_diff(out, ref, REQS * QH * D));
  mask_shape[0] = 13;
  CHECK(pi_paged_attention(plan, &a) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "custom_mask has fewer bytes"),
        "short mask: %s", pi_last_error());
  a.custom_mask = NULL;
  a.mask_indptr = NULL;

  /* Bad inputs: a wrong dtype code, null data, overlapping (too small) strides, a page outside
   * the pool; each fails with a message naming the argument. */
  DLTensor bad = qt;
  bad.dtype.code = kDLInt;
  a.q = &bad;
  CHECK(pi_paged_attention(plan, &a) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "q must be float32"),
        "int q: %s", pi_last_error());
  bad = qt;
  bad.data = NULL;
  a.q = &bad;
  CHECK(pi_paged_attention(plan, &a) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "q data must not be null"),
        "null q: %s", pi_last_error());
  a.q = &qt;
  int64_t small_strides[3] = {D, D, 1}; /* heads of a token overlap the next token */
  DLTensor overlap = ot;
  overlap.strides = small_strides;
  a.out = &overlap;
  CHECK(pi_paged_attention(plan, &a) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "out"), "strides: %s",
        pi_last_error());
  a.out = &ot;
  table[1] = 9;
  CHECK(pi_paged_attention(plan, &a) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "outside the pool"),
        "page id: %s", pi_last_error());
  table[1] = 0;
  CHECK(pi_paged_attention(NULL, &a) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "plan"), "null plan");
  pi_plan_destroy(plan);
  free(ws);

  /* Cascade: both requests share page 2 (4 tokens), then page 0 (1 token) and page 3 (3 tokens):
   * equal to flat attention over [2, 0] and [2, 3]. */
  {
    int32_t gi[2] = {0, 2}, pre[1] = {4}, suf[2] = {1, 3}, flat_len[2] = {5, 7};
    int32_t shared_tab[1] = {2}, unique_tab[2] = {0, 3}, flat_tab[4] = {2, 0, 2, 3};
    int64_t gi_shape[1] = {2}, one_shape[1] = {1}, two_shape[1] = {2}, st_shape[2] = {1, 1}, ut_shape[2] = {2, 1};
    int64_t ft_shape[2] = {2, 2};
    DLTensor git = tensor(gi, kDLInt, 32, 1, gi_shape), pret = tensor(pre, kDLInt, 32, 1, one_shape);
    DLTensor suft = tensor(suf, kDLInt, 32, 1, two_shape), flt = tensor(flat_len, kDLInt, 32, 1, two_shape);
    DLTensor stt = tensor(shared_tab, kDLInt, 32, 2, st_shape), utt = tensor(unique_tab, kDLInt, 32, 2, ut_shape);
    DLTensor ftt = tensor(flat_tab, kDLInt, 32, 2, ft_shape);
    pi_cascade_plan* cp = NULL;
    CHECK(pi_plan_cascade(&git, &pret, &qi, &suft, QH, KVH, D, D, 2, &cp) == PI_OK, "plan_cascade: %s", pi_last_error());
    void* cws = aligned(pi_cascade_workspace_bytes(cp));
    pi_cascade_args ca = {&qt, {&k, &v, PI_LAYOUT_NHD}, &stt, &utt, &ot, NULL, 0.f, 0.f, cws, pi_cascade_workspace_bytes(cp)};
    CHECK(pi_cascade_attention(cp, &ca) == PI_OK, "cascade: %s", pi_last_error());
    pi_attention_plan* fp = NULL;
    CHECK(pi_plan_attention(&qi, &flt, QH, KVH, D, D, 1, 0, &fp) == PI_OK, "flat plan: %s", pi_last_error());
    pi_attention_args fa;
    pi_attention_args_init(&fa);
    fa.q = &qt;
    fa.cache = ca.cache;
    fa.block_table = &ftt;
    fa.out = &rt;
    CHECK(pi_reference_paged_attention(fp, &fa) == PI_OK, "flat reference: %s", pi_last_error());
    CHECK(max_diff(out, ref, REQS * QH * D) < 1e-5f, "cascade differs from flat by %g", max_diff(out, ref, REQS * QH * D));
    ca.unique_block_table = &stt;
    CHECK(pi_cascade_attention(cp, &ca) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "unique_block_table"),
          "a table of the wrong level: %s", pi_last_error());
    pi_plan_destroy(fp);
    pi_cascade_plan_destroy(cp);
    free(cws);
  }

  /* A latent (MLA-shaped) cache: v is k's leading 8 of 16 dims, so append_kv takes no value. */
  static float latent[2 * 4 * 16], new_k[3 * 16];
  for (int i = 0; i < 3 * 16; ++i) new_k[i] = uniform(&seed);
  int64_t lat_shape[4] = {2, 4, 1, 16}, lat_v_shape[4] = {2, 4, 1, 8}, lat_strides[4] = {64, 16, 16, 1};
  int64_t nk_shape[3] = {3, 1, 16}, slot_shape[1] = {3}, lat_slots[3] = {6, -1, 1};
  DLTensor lk = tensor(latent, kDLFloat, 32, 4, lat_shape), lv = tensor(latent, kDLFloat, 32, 4, lat_v_shape);
  lv.strides = lat_strides;
  DLTensor nk = tensor(new_k, kDLFloat, 32, 3, nk_shape), lst = tensor(lat_slots, kDLInt, 64, 1, slot_shape);
  pi_kv_cache lc = {&lk, &lv, PI_LAYOUT_NHD};
  CHECK(pi_append_kv(&lc, &nk, NULL, &lst, 1) == PI_OK, "latent append: %s", pi_last_error());
  CHECK(latent[6 * 16 + 5] == new_k[5] && latent[1 * 16 + 15] == new_k[2 * 16 + 15], "latent append wrote elsewhere");
  CHECK(pi_append_kv(&lc, &nk, &nk, &lst, 1) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "value must be null"),
        "latent append with a value: %s", pi_last_error());

  /* An int8 cache (a scale per row): append quantizes, a row reads back within half a step. */
  static int8_t q8k[2 * 4 * 1 * 16], q8v[2 * 4 * 1 * 16];
  static float q8ks[2 * 4], q8vs[2 * 4];
  int64_t q8_shape[4] = {2, 4, 1, 16}, q8s_shape[3] = {2, 4, 1}, one_slot_shape[1] = {1}, one_slot[1] = {5};
  int64_t row_shape[3] = {1, 1, 16};
  DLTensor q8kt = tensor(q8k, kDLInt, 8, 4, q8_shape), q8vt = tensor(q8v, kDLInt, 8, 4, q8_shape);
  DLTensor q8kst = tensor(q8ks, kDLFloat, 32, 3, q8s_shape), q8vst = tensor(q8vs, kDLFloat, 32, 3, q8s_shape);
  DLTensor rowt = tensor(new_k, kDLFloat, 32, 3, row_shape), ost = tensor(one_slot, kDLInt, 64, 1, one_slot_shape);
  pi_kv_cache qc = {&q8kt, &q8vt, PI_LAYOUT_NHD, PI_KV_INT8, 1.f, 1.f, &q8kst, &q8vst};
  CHECK(pi_append_kv(&qc, &rowt, &rowt, &ost, 1) == PI_OK, "int8 append: %s", pi_last_error());
  for (int d = 0; d < 16; ++d)
    CHECK(fabsf(q8k[5 * 16 + d] * q8ks[5] - new_k[d]) <= 0.5f * q8ks[5] * 1.0001f, "int8 row %d misquantized", d);
  size_t q8_bytes = 0;
  CHECK(pi_kv_block_bytes(&qc, &q8_bytes) == PI_OK && q8_bytes == 4 * (16 + 16 + 8), "int8 block bytes %zu", q8_bytes);
  qc.k_scales = NULL;
  CHECK(pi_append_kv(&qc, &rowt, &rowt, &ost, 1) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "k_scales"),
        "int8 cache without scales: %s", pi_last_error());

  /* RMSNorm of 3 rows of 64 against the reference. */
  static float x[3 * 64], y[3 * 64], yr[3 * 64], w[64];
  for (int i = 0; i < 3 * 64; ++i) x[i] = uniform(&seed);
  for (int i = 0; i < 64; ++i) w[i] = uniform(&seed);
  int64_t x_shape[2] = {3, 64}, w_shape[1] = {64};
  DLTensor xt = tensor(x, kDLFloat, 32, 2, x_shape), yt = tensor(y, kDLFloat, 32, 2, x_shape);
  DLTensor yrt = tensor(yr, kDLFloat, 32, 2, x_shape), wt = tensor(w, kDLFloat, 32, 1, w_shape);
  pi_rms_norm_args n = {&xt, &yt, NULL, &wt, 1e-6f, 0, 1};
  CHECK(pi_rms_norm(&n) == PI_OK, "rms_norm: %s", pi_last_error());
  n.output = &yrt;
  CHECK(pi_reference_rms_norm(&n) == PI_OK, "reference rms_norm: %s", pi_last_error());
  CHECK(max_diff(y, yr, 3 * 64) < 1e-5f, "rms_norm differs by %g", max_diff(y, yr, 3 * 64));

  /* A W4A16 linear layer [32, 128] on 2 rows, saved and loaded, against the reference. */
  static float wf[32 * 128], lx[2 * 128], ly[2 * 32], lr[2 * 32];
  for (int i = 0; i < 32 * 128; ++i) wf[i] = uniform(&seed);
  for (int i = 0; i < 2 * 128; ++i) lx[i] = uniform(&seed);
  int64_t wf_shape[2] = {32, 128}, lx_shape[2] = {2, 128}, ly_shape[2] = {2, 32};
  DLTensor wft = tensor(wf, kDLFloat, 32, 2, wf_shape), lxt = tensor(lx, kDLFloat, 32, 2, lx_shape);
  DLTensor lyt = tensor(ly, kDLFloat, 32, 2, ly_shape), lrt = tensor(lr, kDLFloat, 32, 2, ly_shape);
  pi_weight* qw = NULL;
  CHECK(pi_quantize(&wft, 4, 128, PI_ZERO_POINT, 0, 1, &qw) == PI_OK, "quantize: %s", pi_last_error());
  size_t bytes = 0;
  CHECK(pi_save_weight(qw, NULL, 0, &bytes) == PI_OK && bytes > 0, "save size");
  void* blob = malloc(bytes);
  CHECK(pi_save_weight(qw, blob, bytes, &bytes) == PI_OK, "save: %s", pi_last_error());
  pi_weight* loaded = NULL;
  CHECK(pi_load_weight(blob, bytes, &loaded) == PI_OK, "load: %s", pi_last_error());
  pi_linear_args la = {&lxt, &lyt, NULL, NULL, PI_ACTIVATIONS_FLOAT, 0, 1, NULL, 0};
  size_t ws_bytes = 0;
  CHECK(pi_linear_workspace_size(loaded, &la, &ws_bytes) == PI_OK, "workspace size: %s", pi_last_error());
  la.workspace = aligned(ws_bytes);
  la.workspace_bytes = ws_bytes;
  CHECK(pi_linear(loaded, &la) == PI_OK, "linear: %s", pi_last_error());
  la.y = &lrt;
  CHECK(pi_reference_linear(qw, &la) == PI_OK, "reference linear: %s", pi_last_error());
  CHECK(max_diff(ly, lr, 2 * 32) < 1e-3f, "linear differs by %g", max_diff(ly, lr, 2 * 32));
  CHECK(pi_load_weight(blob, bytes / 2, &loaded) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "truncated"),
        "truncated load: %s", pi_last_error());
  free(la.workspace);
  free(blob);
  pi_weight_destroy(qw);
  pi_weight_destroy(loaded);

  /* The same layer unquantized (W16A16) from bf16 values: linear against the reference; a float32
     weight cannot be packed bit for bit. */
  static uint16_t wb[32 * 128];
  for (int i = 0; i < 32 * 128; ++i) {
    uint32_t u;
    memcpy(&u, &wf[i], 4);
    wb[i] = (uint16_t)(u >> 16); /* truncated: any bf16 value will do */
  }
  DLTensor wbt = tensor(wb, kDLBfloat, 16, 2, wf_shape);
  pi_weight* dense = NULL;
  CHECK(pi_quantize(&wbt, 16, 0, PI_ZERO_NONE, 0, 1, &dense) == PI_OK, "quantize 16: %s", pi_last_error());
  CHECK(pi_quantize(&wft, 16, 0, PI_ZERO_NONE, 0, 1, &qw) == PI_INVALID_ARGUMENT &&
            strstr(pi_last_error(), "bf16 or f16"), "quantize 16 of float32: %s", pi_last_error());
  la.y = &lyt;
  CHECK(pi_linear_workspace_size(dense, &la, &ws_bytes) == PI_OK, "workspace size: %s", pi_last_error());
  la.workspace = aligned(ws_bytes);
  la.workspace_bytes = ws_bytes;
  CHECK(pi_linear(dense, &la) == PI_OK, "linear 16: %s", pi_last_error());
  la.y = &lrt;
  CHECK(pi_reference_linear(dense, &la) == PI_OK, "reference linear 16: %s", pi_last_error());
  CHECK(max_diff(ly, lr, 2 * 32) < 1e-4f, "linear 16 differs by %g", max_diff(ly, lr, 2 * 32));
  free(la.workspace);
  pi_weight_destroy(dense);

  /* Sampling: greedy and top-k draws of 3 requests against the reference; a bad top_p. */
  static float sl[3 * 500];
  for (int i = 0; i < 3 * 500; ++i) sl[i] = 4.0f * uniform(&seed);
  int32_t st[3], sr[3];
  int64_t sl_shape[2] = {3, 500}, st_shape[1] = {3};
  DLTensor slt = tensor(sl, kDLFloat, 32, 2, sl_shape), stt = tensor(st, kDLInt, 32, 1, st_shape);
  DLTensor srt = tensor(sr, kDLInt, 32, 1, st_shape);
  pi_sampling_params sp[3];
  for (int r = 0; r < 3; ++r) {
    pi_sampling_params d = {r == 0 ? 0.0f : 0.8f, r == 1 ? 20 : 0, r == 2 ? 0.9f : 1.0f, 0.0f, 1.0f, 0.0f, 0.0f,
                            (uint64_t)(11 + r), 5};
    sp[r] = d;
  }
  pi_sample_args sa = {&slt, sp, NULL, NULL, &stt, NULL, 2, NULL, 0};
  CHECK(pi_sample_workspace_size(&sa, &ws_bytes) == PI_OK, "sample workspace: %s", pi_last_error());
  sa.workspace = aligned(ws_bytes);
  sa.workspace_bytes = ws_bytes;
  CHECK(pi_sample(&sa) == PI_OK, "sample: %s", pi_last_error());
  sa.tokens = &srt;
  CHECK(pi_reference_sample(&sa) == PI_OK, "reference sample: %s", pi_last_error());
  CHECK(st[0] == sr[0], "greedy token %d, reference %d", st[0], sr[0]);
  for (int r = 0; r < 3; ++r) CHECK(st[r] >= 0 && st[r] < 500, "token %d of request %d", st[r], r);
  sp[1].top_p = 0.0f;
  CHECK(pi_sample(&sa) == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "top_p = 0"), "bad top_p: %s",
        pi_last_error());
  free(sa.workspace);
  CHECK(pi_sampling_uniform(0, 0) >= 0.0f && pi_sampling_uniform(0, 0) < 1.0f, "sampling_uniform");

  CHECK(pi_set_max_isa("avx1024") == PI_INVALID_ARGUMENT && strstr(pi_last_error(), "avx1024"), "isa");
  CHECK(strstr(pi_kernel_report(), "linear") != NULL, "kernel report");
  if (failures == 0) printf("C ABI: decode step, RMSNorm, linear and sampling match their references on %s\n", pi_active_isa());
  return failures == 0 ? 0 : 1;
}
