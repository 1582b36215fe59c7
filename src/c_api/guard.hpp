// What every C entry point shares: exceptions become status codes and a per-thread message.
#pragma once
#include <exception>
#include <new>
#include <string>

#include "c_api/dlpack_views.hpp"
#include "pagedinfer/pagedinfer.h"

namespace pagedinfer::c_api {

// The calling thread's last error message (pi_last_error).
std::string& last_error();

template <class F>
pi_status guard(F&& f) {
  try {
    f();
    return PI_OK;
  } catch (const Error& e) {
    last_error() = e.what();
    return PI_INVALID_ARGUMENT;
  } catch (const std::bad_alloc&) {
    last_error() = "pagedinfer: out of memory";
    return PI_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error() = std::string("pagedinfer: internal error: ") + e.what();
    return PI_INTERNAL_ERROR;
  } catch (...) {
    last_error() = "pagedinfer: internal error";
    return PI_INTERNAL_ERROR;
  }
}

template <class T>
T* non_null(T* p, const char* name) {
  if (!p) dlpack::fail(name, "must not be null");
  return p;
}

// An optional float32 lse [tokens, num_q_heads] for queries q (null when not given).
inline float* optional_lse(const DLTensor* lse, const DLTensor* q) {
  if (!lse) return nullptr;
  const DLTensor& l = dlpack::usable(lse, "lse");
  if (!dlpack::is(l, kDLFloat, 32)) dlpack::fail("lse", "must be float32");
  dlpack::contiguous(l, "lse");
  if (dlpack::numel(l) != dlpack::size(*q, 0) * dlpack::size(*q, 1)) dlpack::fail("lse", "must be [tokens, num_q_heads]");
  return static_cast<float*>(dlpack::data(l));
}

// The cache view of a pi_kv_cache (its two pool tensors and layout).
inline KVCacheView cache_of(const pi_kv_cache* c) {
  non_null(c, "cache");
  if (c->layout != PI_LAYOUT_NHD && c->layout != PI_LAYOUT_HND) dlpack::fail("cache.layout", "must be NHD or HND");
  dlpack::CacheQuant q;
  switch (c->kv_dtype) {
    case PI_KV_FLOAT: break;
    case PI_KV_FP8_E4M3: q.dtype = DType::f8_e4m3; break;
    case PI_KV_FP8_E5M2: q.dtype = DType::f8_e5m2; break;
    case PI_KV_INT8: q.dtype = DType::i8; break;
    default: dlpack::fail("cache.kv_dtype", "must be a pi_kv_dtype");
  }
  q.k_scale = c->k_scale;
  q.v_scale = c->v_scale;
  q.k_scales = c->k_scales;
  q.v_scales = c->v_scales;
  return dlpack::cache(c->k, c->v, c->layout == PI_LAYOUT_HND, q);
}

}  // namespace pagedinfer::c_api
