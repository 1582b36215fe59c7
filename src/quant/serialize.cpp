// The packed weight file: little-endian, laid out as
//   "PGDIQWT\0" | u32 version | u32 reserved 0 | i64 n, k | i32 bits, group_size, zero, gate_up
//   | version >= 3: i64 k_packed (differs from the shape's default only for padded act-order
//     groups, layout.hpp)
//   | version >= 4: i32 dtype (DType of the values of 16-bit weights; not used by 4 and 8 bits)
//   | u64 count, then data, for q (u32), scales (u16), zeros (u16), k_order (i32)
//   | u64 checksum of every byte before it: versions 2 and 3, word_checksum (common/checksum.hpp);
//     version 1, FNV-1a 64 byte by byte (still read)
// load_weight() re-derives every size from the header and checks it, so a file that is truncated,
// corrupt, of another version or internally inconsistent is refused with a clear message.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/check.hpp"
#include "common/checksum.hpp"
#include "quant/layout.hpp"

namespace pagedinfer {

using Storage = QuantizedWeight::Storage;

namespace {

constexpr char kMagic[8] = {'P', 'G', 'D', 'I', 'Q', 'W', 'T', '\0'};

uint64_t fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = detail::kFnvBasis;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * detail::kFnvPrime;
  return h;
}

uint64_t checksum(uint32_t version, const uint8_t* p, size_t n) {
  return version == 1 ? fnv1a64(p, n) : detail::word_checksum(p, n);
}

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  template <class T, class Alloc>
  void put_array(const std::vector<T, Alloc>& v) {
    put(uint64_t(v.size()));
    if (v.empty()) return;
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(T));
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <class T>
  T get(const char* what) {
    T v;
    take(&v, sizeof(T), what);
    return v;
  }
  template <class T, class Alloc>
  void get_array(std::vector<T, Alloc>& v, size_t expected, const char* what, bool may_be_empty = false) {
    const uint64_t count = get<uint64_t>(what);
    PAGEDINFER_CHECK(count == expected || (may_be_empty && count == 0), "load_weight", what, " has ", count,
                     " elements; the header implies ", expected);
    v.resize(size_t(count));
    take(v.data(), v.size() * sizeof(T), what);
  }
  size_t offset() const { return off_; }

 private:
  void take(void* dst, size_t bytes, const char* what) {
    PAGEDINFER_CHECK(bytes <= n_ - off_, "load_weight", "the data is truncated: ", what, " needs ", bytes,
                     " bytes at offset ", off_, " of ", n_);
    if (bytes == 0) return;  // an empty array: dst may be null
    std::memcpy(dst, p_ + off_, bytes);
    off_ += bytes;
  }
  const uint8_t* p_;
  size_t n_, off_ = 0;
};

}  // namespace

std::vector<uint8_t> save_weight(const QuantizedWeight& w) {
  const Storage& s = w.storage();
  Writer out;
  for (char c : kMagic) out.put(c);
  out.put(Storage::kVersion);
  out.put(uint32_t(0));
  out.put(s.n);
  out.put(s.k);
  out.put(int32_t(s.format.bits));
  out.put(int32_t(s.format.group_size));
  out.put(int32_t(s.format.zero));
  out.put(int32_t(s.gate_up));
  out.put(s.k_packed);
  out.put(int32_t(s.format.dtype));
  out.put_array(s.q);
  out.put_array(s.scales);
  out.put_array(s.zeros);
  out.put_array(s.k_order);
  out.put(checksum(Storage::kVersion, out.out.data(), out.out.size()));
  return std::move(out.out);
}

QuantizedWeight load_weight(const uint8_t* data, size_t size) {
  PAGEDINFER_CHECK(data != nullptr || size == 0, "load_weight", "data is null");
  Reader in(data, size);
  char magic[8];
  for (char& c : magic) c = in.get<char>("the magic");
  PAGEDINFER_CHECK(std::memcmp(magic, kMagic, 8) == 0, "load_weight", "not a pagedinfer packed weight (bad magic)");
  const auto version = in.get<uint32_t>("the version");
  PAGEDINFER_CHECK(version >= 1 && version <= Storage::kVersion, "load_weight", "format version ", version,
                   " is not supported (this library reads versions 1 to ", Storage::kVersion, ")");
  const auto reserved = in.get<uint32_t>("the reserved field");
  PAGEDINFER_CHECK(reserved == 0, "load_weight", "the reserved header field is ", reserved, ", not 0");
  const auto n = in.get<int64_t>("n");
  const auto k = in.get<int64_t>("k");
  QuantFormat f;
  f.bits = in.get<int32_t>("bits");
  f.group_size = in.get<int32_t>("group_size");
  f.zero = QuantZero(in.get<int32_t>("zero"));
  const auto gate_up = in.get<int32_t>("gate_up");
  PAGEDINFER_CHECK(gate_up == 0 || gate_up == 1, "load_weight", "gate_up = ", gate_up, " is not 0 or 1");
  const int64_t k_packed = version >= 3 ? in.get<int64_t>("k_packed") : 0;
  if (version >= 4) {
    const auto dtype = in.get<int32_t>("dtype");
    PAGEDINFER_CHECK(dtype >= 0 && dtype <= int32_t(DType::f16), "load_weight", "dtype = ", dtype, " is not a DType");
    f.dtype = DType(dtype);
  }
  detail::check_shape("load_weight", n, k);  // before any size is derived from them
  Storage shape;
  shape.n = n;
  shape.k = k;
  shape.format = f;
  shape.derive_shape();
  const bool padded = version >= 3 && k_packed != shape.k_packed;
  auto s = detail::new_storage("load_weight", n, k, f, gate_up == 1, int64_t(size - in.offset()),
                               padded ? k_packed : 0);
  in.get_array(s->q, s->q.size(), "q");
  in.get_array(s->scales, s->scales.size(), "scales");
  in.get_array(s->zeros, s->zeros.size(), "zeros");
  in.get_array(s->k_order, size_t(s->k_packed), "k_order", /*may_be_empty=*/true);
  const size_t payload = in.offset();
  const auto stored = in.get<uint64_t>("the checksum");
  PAGEDINFER_CHECK(stored == checksum(version, data, payload), "load_weight", "checksum mismatch: the data is corrupt");
  PAGEDINFER_CHECK(in.offset() == size, "load_weight", size - in.offset(), " unexpected bytes after the checksum");
  if (!s->k_order.empty()) {  // a permutation of [0, k), padded with -1
    std::vector<uint8_t> seen(size_t(k), 0);
    for (int64_t i = 0; i < s->k_packed; ++i) {
      const int32_t src = s->k_order[i];
      PAGEDINFER_CHECK(src >= -1 && src < k && (src < 0 || !seen[src]), "load_weight", "k_order[", i, "] = ", src,
                       " is not part of a permutation of [0, k)");
      if (src >= 0) seen[src] = 1;
    }
    for (int64_t i = 0; i < k; ++i)
      PAGEDINFER_CHECK(seen[i], "load_weight", "k_order does not contain source column ", i);
    s->index_k_order();
  }
  PAGEDINFER_CHECK(!padded || !s->k_order.empty(), "load_weight", "k_packed = ", k_packed, " differs from k = ", k,
                   " but the weight has no k_order (only act-order weights pad their groups)");
  return QuantizedWeight(std::move(s));
}

void save_weight_file(const QuantizedWeight& w, const std::string& path) {
  const std::vector<uint8_t> bytes = save_weight(w);
  std::ofstream f(path, std::ios::binary);
  PAGEDINFER_CHECK(f.good(), "save_weight_file", "cannot open '", path, "' for writing");
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  PAGEDINFER_CHECK(f.good(), "save_weight_file", "writing '", path, "' failed");
}

QuantizedWeight load_weight_file(const std::string& path) {
  std::error_code ec;
  PAGEDINFER_CHECK(std::filesystem::is_regular_file(path, ec), "load_weight_file", "'", path,
                   "' is not a regular file (cannot open it)");
  std::ifstream f(path, std::ios::binary);
  PAGEDINFER_CHECK(f.good(), "load_weight_file", "cannot open '", path, "'");
  std::vector<uint8_t> bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } catch (const std::ios_base::failure& e) {
    detail::fail("load_weight_file", "reading '", path, "' failed: ", e.what());
  }
  PAGEDINFER_CHECK(!f.bad(), "load_weight_file", "reading '", path, "' failed");
  return load_weight(bytes.data(), bytes.size());
}

}  // namespace pagedinfer
