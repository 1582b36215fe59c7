// Element-type conversions for baseline (non-ISA) code paths: validation-free helpers used by
// the references, the KV-cache ops and kernel prologues/epilogues. Not for ISA TUs' inner loops.
#pragma once
#include <cstddef>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

// Element i of an array of type t, as float (exact for every storage type).
float load_as_float(const void* p, DType t, std::size_t i);
// Stores x into element i of an array of type t, rounding to nearest even.
void store_from_float(void* p, DType t, std::size_t i, float x);
// n contiguous elements from one storage type to another (same type: memcpy).
void convert_n(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n);

}  // namespace pagedinfer::detail
