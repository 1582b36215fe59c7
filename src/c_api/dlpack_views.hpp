// DLPack tensors as pagedinfer views, with errors that name the tensor: shared by the C ABI
// (c_api.cpp) and the Python module (python/src), header-only so that both compile it.
#pragma once
#include <dlpack/dlpack.h>

#include <cstdint>
#include <string>

#include "pagedinfer/error.hpp"
#include "pagedinfer/kv_cache.hpp"
#include "pagedinfer/tensor.hpp"

namespace pagedinfer::dlpack {

[[noreturn]] inline void fail(const std::string& name, const std::string& rule) {
  throw Error("pagedinfer: " + name + " " + rule);
}

inline bool is(const DLTensor& t, DLDataTypeCode code, int bits) {
  return t.dtype.code == code && t.dtype.bits == bits && t.dtype.lanes == 1;
}

inline int64_t size(const DLTensor& t, int d) { return t.shape[d < 0 ? d + t.ndim : d]; }

// Elements; compact row-major strides when the tensor has none.
inline int64_t stride(const DLTensor& t, int d) {
  if (d < 0) d += t.ndim;
  if (t.strides) return t.strides[d];
  int64_t s = 1;
  for (int i = t.ndim - 1; i > d; --i) s *= t.shape[i];
  return s;
}

inline int64_t numel(const DLTensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

inline void* data(const DLTensor& t) { return static_cast<char*>(t.data) + t.byte_offset; }

// Throws unless the tensor is usable at all: CPU memory, non-null data (unless empty), a shape.
inline const DLTensor& usable(const DLTensor* t, const std::string& name) {
  if (!t) fail(name, "must not be null");
  if (t->device.device_type != kDLCPU) fail(name, "must be in CPU memory");
  if (t->ndim < 0 || t->ndim > 8 || (t->ndim > 0 && !t->shape)) fail(name, "has an invalid shape");
  for (int i = 0; i < t->ndim; ++i)
    if (t->shape[i] < 0) fail(name, "has a negative size");
  if (!t->data && numel(*t) > 0) fail(name, "data must not be null");
  return *t;
}

inline DType dtype(const DLTensor& t, const std::string& name) {
  if (is(t, kDLFloat, 32)) return DType::f32;
  if (is(t, kDLBfloat, 16)) return DType::bf16;
  if (is(t, kDLFloat, 16)) return DType::f16;
  fail(name, "must be float32, bfloat16 or float16 (DLPack dtype code " + std::to_string(t.dtype.code) + ", " +
                 std::to_string(t.dtype.bits) + " bits)");
}

inline void dims(const DLTensor& t, int lo, int hi, const std::string& name) {
  if (t.ndim < lo || t.ndim > hi)
    fail(name, "must have " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
                   " dimensions, not " + std::to_string(t.ndim));
}

inline void contiguous(const DLTensor& t, const std::string& name) {
  int64_t expect = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (size(t, i) != 1 && stride(t, i) != expect) fail(name, "must be contiguous");
    expect *= size(t, i);
  }
}

// A contiguous 1-d (or n-d, flattened) index array of this integer type.
template <class T>
const T* index_array(const DLTensor* tp, const std::string& name, int64_t* count) {
  const DLTensor& t = usable(tp, name);
  if (!is(t, kDLInt, int(8 * sizeof(T)))) fail(name, "must be int" + std::to_string(8 * sizeof(T)));
  contiguous(t, name);
  *count = numel(t);
  return static_cast<const T*>(data(t));
}

// [tokens, heads, dim] of a 2-d ([tokens, dim], one head) or 3-d tensor with unit stride along
// dim. Strides of size-1 dimensions carry no information (exporters may report any value): the
// compact ones are taken there.
inline TokensView tokens(const DLTensor* tp, const std::string& name) {
  const DLTensor& t = usable(tp, name);
  dims(t, 2, 3, name);
  if (size(t, -1) > 1 && stride(t, -1) != 1) fail(name, "must have unit stride along its last dimension");
  const bool heads = t.ndim == 3;
  const int64_t head = heads && size(t, 1) > 1 ? stride(t, 1) : size(t, -1);
  const int64_t token = size(t, 0) > 1 ? stride(t, 0) : (heads ? size(t, 1) * head : size(t, -1));
  return {data(t), dtype(t, name), token, head};
}

inline OutTokensView out_tokens(const DLTensor* t, const std::string& name) {
  const TokensView v = tokens(t, name);
  return {const_cast<void*>(v.data), v.dtype, v.stride_token, v.stride_head};
}

// A pool tensor [pages, page_size, heads, dim] (NHD) or [pages, heads, page_size, dim] (HND).
inline PagePool pool(const DLTensor* tp, bool hnd, const std::string& name, int64_t* pages, int32_t* page_size,
                     int32_t* heads) {
  const DLTensor& t = usable(tp, name);
  dims(t, 4, 4, name);
  if (size(t, 3) > 1 && stride(t, 3) != 1) fail(name, "must have unit stride along head_dim");
  *pages = size(t, 0);
  *page_size = int32_t(size(t, hnd ? 2 : 1));
  *heads = int32_t(size(t, hnd ? 1 : 2));
  PagePool p;
  p.data = data(t);
  p.stride_page = stride(t, 0);
  p.stride_token = stride(t, hnd ? 2 : 1);
  p.stride_head = stride(t, hnd ? 1 : 2);
  p.head_dim = int32_t(size(t, 3));
  return p;
}

// What the 8-bit pools of a quantized cache hold (kv_cache.hpp); dtype f32 means none: the
// pools are float tensors of their own dtype.
struct CacheQuant {
  DType dtype = DType::f32;
  float k_scale = 1.f, v_scale = 1.f;  // fp8
  const DLTensor* k_scales = nullptr;  // i8: fp32 [pages, page_size, heads] (NHD) or
  const DLTensor* v_scales = nullptr;  //     [pages, heads, page_size] (HND), any strides
};

// An i8 pool's row scales into p, checked against the pool's shape.
inline void row_scales(PagePool& p, const DLTensor* tp, bool hnd, int64_t pages, int32_t page_size, int32_t heads,
                       const std::string& name) {
  if (!tp) fail(name, "must be given for an int8 cache: one fp32 scale per page, token and head");
  const DLTensor& t = usable(tp, name);
  dims(t, 3, 3, name);
  if (!is(t, kDLFloat, 32)) fail(name, "must be float32");
  const int32_t ti = hnd ? 2 : 1, hi = hnd ? 1 : 2;
  if (size(t, 0) != pages || size(t, ti) != page_size || size(t, hi) != heads)
    fail(name, std::string("must be [num_pages, ") + (hnd ? "num_kv_heads, page_size" : "page_size, num_kv_heads") +
                   "] like the cache's pages");
  p.scale = static_cast<float*>(data(t));
  p.scale_stride_page = stride(t, 0);
  p.scale_stride_token = stride(t, ti);
  p.scale_stride_head = stride(t, hi);
}

inline KVCacheView cache(const DLTensor* k, const DLTensor* v, bool hnd, const CacheQuant& q = {}) {
  KVCacheView c;
  int64_t pk, pv;
  int32_t sk, sv, hk, hv;
  c.k = pool(k, hnd, "k_cache", &pk, &sk, &hk);
  c.v = pool(v, hnd, "v_cache", &pv, &sv, &hv);
  if (pk != pv || sk != sv || hk != hv) fail("k_cache and v_cache", "must have the same pages, page size and heads");
  const bool bytes = (is(*k, kDLInt, 8) || is(*k, kDLUInt, 8)) && (is(*v, kDLInt, 8) || is(*v, kDLUInt, 8));
  if (q.dtype != DType::f32) {
    if (!bytes)
      fail("k_cache and v_cache", std::string("must be 8-bit tensors (uint8 or int8) for a ") + dtype_name(q.dtype) + " cache");
    c.dtype = q.dtype;
    c.k_scale = q.k_scale;
    c.v_scale = q.v_scale;
    if (q.dtype == DType::i8) {
      row_scales(c.k, q.k_scales, hnd, pk, sk, hk, "k_scales");
      row_scales(c.v, q.v_scales, hnd, pk, sk, hk, "v_scales");
    }
  } else {
    if (bytes) fail("k_cache and v_cache", "are 8-bit: name the cache's kv_cache_dtype (fp8_e4m3, fp8_e5m2 or int8)");
    const DType dk = dtype(*k, "k_cache"), dv = dtype(*v, "v_cache");
    if (dk != dv) fail("k_cache and v_cache", "must have the same dtype");
    c.dtype = dk;
  }
  c.num_pages = pk;
  c.page_size = sk;
  c.num_kv_heads = hk;
  return c;
}

}  // namespace pagedinfer::dlpack
