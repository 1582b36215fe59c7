// Golden cases of paged_attention: a ragged batch over a shuffled paged cache (vLLM's names and
// layouts: NHD pools, padded block table, seq_lens, query_start_loc).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "golden/spec.hpp"
#include "pagedinfer/attention.hpp"

namespace pagedinfer::golden::detail {
namespace {

// |v| in any storage dtype: the sign bit cleared, or an int8 code's magnitude (codes are in
// [-127, 127]).
void make_absolute(std::vector<uint8_t>& pool, DType t) {
  if (t == DType::i8) {
    for (uint8_t& b : pool) b = uint8_t(std::abs(int(int8_t(b))));
    return;
  }
  const std::size_t size = dtype_size(t);
  for (std::size_t i = size - 1; i < pool.size(); i += size) pool[i] &= 0x7f;
}

double max_abs(const std::vector<uint8_t>& values, DType t) {
  const std::size_t n = values.size() / dtype_size(t);
  std::vector<float> f(n);
  convert(values.data(), t, f.data(), DType::f32, n);
  double m = 0;
  for (float v : f) m = std::max(m, double(std::fabs(v)));
  return m;
}

// The largest |element| of K (v false) or V of an 8-bit NHD cache: stored values times scales.
double max_abs(const KVCacheView& c, bool v, int64_t values) {
  const PagePool& pool = v ? c.v : c.k;
  const auto* code = static_cast<const uint8_t*>(pool.data);
  double m = 0;
  for (int64_t i = 0; i < values; ++i) {
    const double x = c.dtype == DType::i8        ? int8_t(code[i]) * double(pool.scale[i / pool.head_dim])
                     : c.dtype == DType::f8_e4m3 ? f8_e4m3_to_float(code[i]) * double(v ? c.v_scale : c.k_scale)
                                                 : f8_e5m2_to_float(code[i]) * double(v ? c.v_scale : c.k_scale);
    m = std::max(m, std::fabs(x));
  }
  return m;
}

DType cache_dtype(const Tensor& t) {
  for (DType d : {DType::bf16, DType::f16, DType::f8_e4m3, DType::f8_e5m2, DType::i8})
    if (t.dtype == st_dtype(d)) return d;
  pagedinfer::detail::fail("golden", "k_cache has dtype ", t.dtype, ": a cache is BF16, F16, F8_E4M3, F8_E5M2 or I8");
}

// An NHD pool of the file's tensor `name` ([num_pages, page_size, heads, head_dim]).
PagePool nhd_pool(const File& f, const std::string& name) {
  const auto it = f.tensors.find(name);
  PAGEDINFER_CHECK(it != f.tensors.end() && it->second.shape.size() == 4, "golden",
                   "an attention file needs ", name, " [num_pages, page_size, num_kv_heads, head_dim]");
  const std::vector<int64_t>& s = it->second.shape;
  PagePool p;
  p.data = const_cast<uint8_t*>(it->second.data.data());
  p.head_dim = int32_t(s[3]);
  p.stride_head = s[3];
  p.stride_token = s[2] * s[3];
  p.stride_page = s[1] * s[2] * s[3];
  return p;
}

// Values in [-1, 1) stored as `kv` codes with their scales into the file (k_cache or v_cache
// and its scales, by `kv_name`): fp8 with one scale per tensor in [2^-7, 2^-6) (not a power of
// two, so its products round), int8 with one scale per row of head_dim values, s = max|x| / 127.
void add_quantized_pool(std::mt19937_64& rng, DType kv, const std::vector<int64_t>& shape, const std::string& kv_name,
                        File& file) {
  const std::size_t d = std::size_t(shape[3]), n = std::size_t(shape[0] * shape[1] * shape[2]) * d;
  const std::vector<uint8_t> values = random_values(rng, DType::f32, n, -1.f, 1.f);
  const float* x = reinterpret_cast<const float*>(values.data());
  std::vector<uint8_t> codes(n);
  const std::string prefix = kv_name.substr(0, 1);  // "k" or "v"
  if (kv == DType::i8) {
    std::vector<float> scales(n / d);
    for (std::size_t r = 0; r < n / d; ++r) {
      float m = 0.f;
      for (std::size_t i = 0; i < d; ++i) m = std::max(m, std::fabs(x[r * d + i]));
      scales[r] = m / 127.f;
      for (std::size_t i = 0; i < d; ++i)
        codes[r * d + i] = uint8_t(int8_t(m > 0.f ? std::nearbyint(x[r * d + i] / scales[r]) : 0.f));
    }
    file.tensors[prefix + "_scales"] = make_tensor("F32", {shape[0], shape[1], shape[2]}, scales);
  } else {
    const float scale = std::uniform_real_distribution<float>(0x1p-7f, 0x1p-6f)(rng);
    for (std::size_t i = 0; i < n; ++i)
      codes[i] = kv == DType::f8_e4m3 ? float_to_f8_e4m3(x[i] / scale) : float_to_f8_e5m2(x[i] / scale);
    file.tensors[prefix + "_scale"] = make_tensor("F32", {1}, std::vector<float>{scale});
  }
  file.tensors[kv_name] = make_tensor(kv, shape, codes.data());
}

}  // namespace

void generate_attention(Spec& spec, std::mt19937_64& rng, File& file) {
  const DType dtype = spec.dtype("dtype", DType::bf16);
  const std::string kv_name = spec.choice("kv_dtype", dtype == DType::f32 ? "bf16" : dtype_name(dtype),
                                          {"bf16", "f16", "f8_e4m3", "f8_e5m2", "i8"});
  DType kv_dtype = DType::bf16;
  for (DType t : {DType::f16, DType::f8_e4m3, DType::f8_e5m2, DType::i8})
    if (kv_name == dtype_name(t)) kv_dtype = t;
  const bool quantized = !is_float_dtype(kv_dtype);
  const int32_t hq = int32_t(spec.positive("num_q_heads", 8, 1024));
  const int32_t hkv = int32_t(spec.positive("num_kv_heads", hq, 1024));
  PAGEDINFER_CHECK(hq % hkv == 0, "golden", "num_q_heads = ", hq, " must be a multiple of num_kv_heads = ", hkv);
  const int32_t dq = int32_t(spec.positive("head_dim", 128, 1024));
  const int32_t dv = int32_t(spec.positive("head_dim_v", dq, 1024));
  const int32_t page = int32_t(spec.positive("page_size", 16, 4096));
  const std::vector<int32_t> kv_lens = spec.require<std::vector<int32_t>>("kv_lens");
  const std::vector<int32_t> q_lens = spec.get<std::vector<int32_t>>("q_lens", std::vector<int32_t>(kv_lens.size(), 1));
  const int32_t num_reqs = int32_t(kv_lens.size());
  PAGEDINFER_CHECK(num_reqs >= 1 && q_lens.size() == kv_lens.size(), "golden",
                   "q_lens and kv_lens must name the same (>= 1) number of requests");
  const bool causal = spec.get<bool>("causal", true);
  const int32_t window_left = spec.get<int32_t>("window_left", -1);
  const float softcap = spec.get<float>("softcap", 0.f);
  const bool with_alibi = spec.get<bool>("alibi", false);
  const bool with_sinks = spec.get<bool>("sinks", false);
  const bool with_lse = spec.get<bool>("lse", true);
  const bool tree_mask = spec.get<bool>("tree_mask", false);
  const float scale = spec.get<float>("scale", float(1 / std::sqrt(double(dq))));
  const float q_range = spec.get<float>("q_range", 1.f);
  const std::string p_rounding =
      spec.choice("p_rounding", quantized ? "f32" : dtype_name(kv_dtype), {"bf16", "f16", "f32"});
  const int64_t spare = spec.get<int64_t>("spare_pages", 8);
  PAGEDINFER_CHECK(spare >= 0 && spare <= 1 << 20, "golden", "spare_pages must be in [0, 2^20]");

  // Pages: each request gets ceil(kv / page) pages drawn from a shuffled pool with spare pages,
  // so a kernel that reads the wrong page reads other random data.
  std::vector<int32_t> query_start(1, 0), pages_of(static_cast<std::size_t>(num_reqs));
  int64_t used = 0;
  int32_t cols = 1;
  for (int32_t r = 0; r < num_reqs; ++r) {
    PAGEDINFER_CHECK(kv_lens[r] >= 0 && q_lens[r] >= 0 && kv_lens[r] <= 1 << 20 && q_lens[r] <= 1 << 16, "golden",
                     "request ", r, ": q_len ", q_lens[r], " and kv_len ", kv_lens[r], " must be in [0, 2^16], [0, 2^20]");
    query_start.push_back(query_start.back() + q_lens[r]);
    pages_of[r] = (kv_lens[r] + page - 1) / page;
    used += pages_of[r];
    cols = std::max(cols, pages_of[r]);
  }
  const int64_t num_pages = used + spare;
  PAGEDINFER_CHECK(num_pages >= 1, "golden", "the batch needs at least one page");
  std::vector<int32_t> ids(static_cast<std::size_t>(num_pages));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> block_table(std::size_t(num_reqs) * cols, 0);
  for (int32_t r = 0, next = 0; r < num_reqs; ++r)
    for (int32_t i = 0; i < pages_of[r]; ++i) block_table[std::size_t(r) * cols + i] = ids[std::size_t(next++)];

  const int64_t tokens = query_start.back();
  std::vector<uint8_t> q = random_values(rng, dtype, std::size_t(tokens) * hq * dq, -q_range, q_range);
  // The cache goes into the file first; the reference reads it there (attention_cache).
  const std::vector<int64_t> k_shape{num_pages, page, hkv, dq}, v_shape{num_pages, page, hkv, dv};
  if (quantized) {
    add_quantized_pool(rng, kv_dtype, k_shape, "k_cache", file);
    add_quantized_pool(rng, kv_dtype, v_shape, "v_cache", file);
  } else {
    for (const auto& [name, shape] : {std::pair{"k_cache", k_shape}, std::pair{"v_cache", v_shape}}) {
      const std::size_t n = std::size_t(shape[0] * shape[1] * shape[2] * shape[3]);
      file.tensors[name] = make_tensor(kv_dtype, shape, random_values(rng, kv_dtype, n, -1.f, 1.f).data());
    }
  }
  std::vector<float> alibi, sinks;
  std::uniform_real_distribution<float> sink_dist(-1.f, 2.f);
  for (int32_t h = 0; h < hq; ++h) {
    alibi.push_back(std::exp2(-8.f * float(h + 1) / float(hq)));
    sinks.push_back(sink_dist(rng));
  }

  // A speculative step: each request's query tokens are a draft tree hanging off its prefix (node
  // i's parent one of the three before it), each seeing the prefix, its ancestors and itself.
  std::vector<uint8_t> mask;
  std::vector<int64_t> mask_indptr{0};
  if (tree_mask)
    for (int32_t r = 0; r < num_reqs; ++r) {
      PAGEDINFER_CHECK(q_lens[r] <= kv_lens[r], "golden", "tree_mask: request ", r, " has q_len > kv_len");
      const int64_t n = int64_t(q_lens[r]) * kv_lens[r], prefix = kv_lens[r] - q_lens[r];
      std::vector<uint8_t> seg(static_cast<std::size_t>((n + 7) / 8), 0);
      std::vector<int32_t> parent(static_cast<std::size_t>(q_lens[r]), -1);
      const auto set = [&](int64_t i, int64_t j) { seg[std::size_t((i * kv_lens[r] + j) / 8)] |= uint8_t(1u << ((i * kv_lens[r] + j) % 8)); };
      for (int32_t i = 0; i < q_lens[r]; ++i) {
        if (i > 0) parent[std::size_t(i)] = i - 1 - int32_t(rng() % std::min<uint64_t>(3, uint64_t(i)));
        for (int64_t j = 0; j < prefix; ++j) set(i, j);
        for (int32_t a = i; a >= 0; a = parent[std::size_t(a)]) set(i, prefix + a);
      }
      mask.insert(mask.end(), seg.begin(), seg.end());
      mask_indptr.push_back(int64_t(mask.size()));
    }

  std::vector<float> out(std::size_t(tokens) * hq * dv), lse(std::size_t(tokens) * hq), abs_out(out.size());
  AttentionParams p;
  p.q = {q.data(), dtype, int64_t(hq) * dq, dq};
  p.q_indptr = query_start.data();
  p.num_q_heads = hq;
  p.cache = attention_cache(file);
  p.pages.num_reqs = num_reqs;
  p.pages.kv_len = kv_lens.data();
  p.pages.block_table = block_table.data();
  p.pages.block_table_cols = cols;
  p.out = {out.data(), DType::f32, int64_t(hq) * dv, dv};
  p.lse = lse.data();
  p.scale = scale;
  p.causal = causal;
  p.window_left = window_left;
  p.softcap = softcap;
  p.alibi_slopes = with_alibi ? alibi.data() : nullptr;
  p.sinks = with_sinks ? sinks.data() : nullptr;
  if (tree_mask) p.custom_mask = mask.data(), p.mask_indptr = mask_indptr.data();
  reference::paged_attention(p);
  // The same attention over |V|: sum_j p_j |v_j|, the scale of the error of a P rounded to 16 bits.
  std::vector<uint8_t> v_abs = file.tensors.at("v_cache").data;
  make_absolute(v_abs, kv_dtype);
  p.cache.v.data = v_abs.data();
  p.out.data = abs_out.data();
  p.lse = nullptr;
  reference::paged_attention(p);

  // Bounds (the library's attention tests derive the same; u = fp32 unit roundoff):
  //   score error e_s <= (dq + 8) u s_max + 2 u alibi_max + 4 u (s_max + alibi_max),
  //     s_max = scale * dq * max|q| * max|k|;
  //   out: 2 (2 e_s + 4 u) max|v| + 2 (kv_len + 8) u max|v| (the running sums)
  //        + u_P sum_j p_j |v_j| (P rounded to p_rounding for P.V) + u_out |ref| + u |ref| (F32 storage);
  //   lse: 2 (2 e_s + 4 u) + 2 (kv_len + 8) u + 4e-7 |lse|; an lse of -inf (no visible key) is exact.
  // An 8-bit cache's stored values widen exactly; each score is multiplied by its key's scale and
  // each probability by its value's scale in fp32, one rounding each: e_s grows by 2 u s_max and
  // u_P by 2 u (max|k|, max|v|, |v_j| of the dequantized values).
  const int64_t k_values = int64_t(num_pages) * page * hkv * dq, v_values = int64_t(num_pages) * page * hkv * dv;
  const KVCacheView cache = attention_cache(file);
  const double u = 0x1p-24;
  const double kmax = quantized ? max_abs(cache, false, k_values) : max_abs(file.tensors.at("k_cache").data, kv_dtype);
  const double vmax = quantized ? max_abs(cache, true, v_values) : max_abs(file.tensors.at("v_cache").data, kv_dtype);
  const double s_max = double(scale) * dq * max_abs(q, dtype) * kmax;
  const double u_scale = quantized ? 2 * u : 0.0;  // the scale products' rounding, relative
  const double u_p =
      (p_rounding == "bf16" ? unit_roundoff(DType::bf16) : p_rounding == "f16" ? unit_roundoff(DType::f16) : u) + u_scale;
  std::vector<float> out_bound(out.size()), lse_bound(lse.size());
  for (int32_t r = 0; r < num_reqs; ++r) {
    const double alibi_max = with_alibi ? double(kv_lens[r]) * alibi[0] : 0.0;
    const double e_s = (dq + 8) * u * s_max + 2 * u * alibi_max + 4 * u * (s_max + alibi_max) + u_scale * s_max;
    const double base = 2 * (2 * e_s + 4 * u) + 2 * (kv_lens[r] + 8) * u;
    for (int64_t row = int64_t(query_start[r]) * hq; row < int64_t(query_start[r + 1]) * hq; ++row) {
      lse_bound[std::size_t(row)] = std::isinf(lse[std::size_t(row)]) ? 0.f : float(base + 4e-7 * std::fabs(lse[std::size_t(row)]));
      for (int64_t i = row * dv; i < (row + 1) * dv; ++i) {
        const double ref = std::fabs(out[std::size_t(i)]);
        out_bound[std::size_t(i)] =
            float(base * vmax + u_p * abs_out[std::size_t(i)] + (unit_roundoff(dtype) + u) * ref + 1e-30);
      }
    }
  }

  file.tensors["q"] = make_tensor(dtype, {tokens, hq, dq}, q.data());
  file.tensors["block_table"] = make_tensor("I32", {num_reqs, cols}, block_table);
  file.tensors["seq_lens"] = make_tensor("I32", {num_reqs}, kv_lens);
  file.tensors["query_start_loc"] = make_tensor("I32", {num_reqs + 1}, query_start);
  if (with_alibi) file.tensors["alibi_slopes"] = make_tensor("F32", {hq}, alibi);
  if (with_sinks) file.tensors["sinks"] = make_tensor("F32", {hq}, sinks);
  if (tree_mask) {  // FlashInfer's packed custom mask: bit i * kv_len + j of a request's segment, LSB first
    file.tensors["custom_mask"] = make_tensor("U8", {int64_t(mask.size())}, mask);
    file.tensors["mask_indptr"] = make_tensor("I64", {num_reqs + 1}, mask_indptr);
  }
  add_output(file, "out", {tokens, hq, dv}, out, out_bound);
  if (with_lse) add_output(file, "lse", {tokens, hq}, lse, lse_bound);
  file.metadata["pagedinfer.outputs"] = with_lse ? "out,lse" : "out";
  file.metadata["pagedinfer.bound"] =
      "fp32 accumulation of scores, softmax and P.V (P may be rounded to p_rounding), output rounded once to dtype; "
      "per element: 2(2 e_s + 4u) max|v| + 2(kv_len + 8) u max|v| + u_P sum_j p_j|v_j| + (u_out + u)|ref|, "
      "e_s = (head_dim + 8) u s_max + 2u alibi_max + 4u(s_max + alibi_max), u = 2^-24; an 8-bit cache (its values "
      "times their scales) adds 2u s_max to e_s and 2u to u_P";
}

}  // namespace pagedinfer::golden::detail

namespace pagedinfer::golden {

KVCacheView attention_cache(const File& f) {
  using detail::nhd_pool;
  KVCacheView c;
  c.k = nhd_pool(f, "k_cache");
  c.v = nhd_pool(f, "v_cache");
  const Tensor& k = f.tensors.at("k_cache");
  c.dtype = detail::cache_dtype(k);
  PAGEDINFER_CHECK(f.tensors.at("v_cache").dtype == k.dtype, "golden", "k_cache and v_cache must have one dtype");
  c.num_pages = k.shape[0];
  c.page_size = int32_t(k.shape[1]);
  c.num_kv_heads = int32_t(k.shape[2]);
  const auto scales = [&](const std::string& name, int64_t elements) -> const Tensor& {
    const auto it = f.tensors.find(name);
    PAGEDINFER_CHECK(it != f.tensors.end() && it->second.dtype == "F32" && it->second.numel() == elements, "golden",
                     "a ", dtype_name(c.dtype), " cache needs ", name, " (F32, ", elements, " elements)");
    return it->second;
  };
  if (c.dtype == DType::f8_e4m3 || c.dtype == DType::f8_e5m2) {
    c.k_scale = float(scales("k_scale", 1).get(0));
    c.v_scale = float(scales("v_scale", 1).get(0));
  } else if (c.dtype == DType::i8) {
    const int64_t rows = c.num_pages * c.page_size * c.num_kv_heads;
    for (auto [pool, name] : {std::pair{&c.k, "k_scales"}, std::pair{&c.v, "v_scales"}}) {
      pool->scale = reinterpret_cast<float*>(const_cast<uint8_t*>(scales(name, rows).data.data()));
      pool->scale_stride_page = int64_t(c.page_size) * c.num_kv_heads;
      pool->scale_stride_token = c.num_kv_heads;
      pool->scale_stride_head = 1;
    }
  }
  return c;
}

}  // namespace pagedinfer::golden
