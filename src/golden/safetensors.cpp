// safetensors reading and writing (format: golden.hpp), and element access of its dtypes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include <nlohmann/json.hpp>

#include "common/check.hpp"
#include "pagedinfer/dtype.hpp"
#include "pagedinfer/golden.hpp"

namespace pagedinfer::golden {
namespace {

using nlohmann::json;

struct DTypeInfo {
  const char* name;
  std::size_t bytes;
};
constexpr DTypeInfo kDTypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
                                 {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},      {"U16", 2},
                                 {"U32", 4}, {"U64", 8}, {"BOOL", 1}};

// Largest header we accept: safetensors itself caps it at 100 MB.
constexpr uint64_t kMaxHeader = 100u << 20;

// An fp8 value: 1 sign bit, `e` exponent bits with bias 2^(e-1) - 1, `m` mantissa bits. E4M3
// (OCP "fn" variant) has no infinities and NaN only at S.1111.111; E5M2 follows IEEE rules.
double fp8_to_double(uint8_t b, int e, int m, bool ieee_specials) {
  const int sign = b >> 7, exp = (b >> m) & ((1 << e) - 1), man = b & ((1 << m) - 1);
  const int bias = (1 << (e - 1)) - 1;
  double v;
  if (ieee_specials && exp == (1 << e) - 1) {
    v = man ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else if (!ieee_specials && exp == (1 << e) - 1 && man == (1 << m) - 1) {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(double(man), 1 - bias - m);
  } else {
    v = std::ldexp(double(man + (1 << m)), exp - bias - m);
  }
  return sign ? -v : v;
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::size_t dtype_bytes(const std::string& dtype) {
  for (const DTypeInfo& d : kDTypes)
    if (dtype == d.name) return d.bytes;
  detail::fail("golden", "unknown safetensors dtype \"", dtype, "\"");
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

double Tensor::get(int64_t i) const {
  const uint8_t* p = data.data() + std::size_t(i) * dtype_bytes(dtype);
  if (dtype == "F64") return load<double>(p);
  if (dtype == "F32") return load<float>(p);
  if (dtype == "F16") return f16_to_float(load<uint16_t>(p));
  if (dtype == "BF16") return bf16_to_float(load<uint16_t>(p));
  if (dtype == "F8_E4M3") return fp8_to_double(*p, 4, 3, false);
  if (dtype == "F8_E5M2") return fp8_to_double(*p, 5, 2, true);
  if (dtype == "I64") return double(load<int64_t>(p));
  if (dtype == "I32") return load<int32_t>(p);
  if (dtype == "I16") return load<int16_t>(p);
  if (dtype == "I8") return load<int8_t>(p);
  if (dtype == "U8" || dtype == "BOOL") return *p;
  if (dtype == "U16") return load<uint16_t>(p);
  if (dtype == "U32") return load<uint32_t>(p);
  return double(load<uint64_t>(p));  // U64
}

File parse_safetensors(const uint8_t* data, std::size_t size, const std::string& what) {
  const char* where = "read_safetensors";
  PAGEDINFER_CHECK(size >= 8, where, what, ": ", size, " bytes is shorter than the 8-byte header length");
  const uint64_t header_len = load<uint64_t>(data);
  PAGEDINFER_CHECK(header_len <= kMaxHeader && header_len <= size - 8, where, what, ": header length ", header_len,
                   " does not fit the file (", size, " bytes)");
  json header;
  try {
    header = json::parse(data + 8, data + 8 + header_len);
  } catch (const json::exception& e) {
    detail::fail(where, what, ": the header is not JSON (", e.what(), ")");
  }
  PAGEDINFER_CHECK(header.is_object(), where, what, ": the header is not a JSON object");
  const uint64_t buffer_len = size - 8 - header_len;
  const uint8_t* buffer = data + 8 + header_len;
  File file;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      PAGEDINFER_CHECK(entry.is_object(), where, what, ": __metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        PAGEDINFER_CHECK(value.is_string(), where, what, ": metadata \"", key, "\" is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const bool well_formed = entry.is_object() && entry.contains("dtype") && entry["dtype"].is_string() &&
                             entry.contains("shape") && entry["shape"].is_array() && entry.contains("data_offsets") &&
                             entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2 &&
                             entry["data_offsets"][0].is_number_unsigned() && entry["data_offsets"][1].is_number_unsigned();
    PAGEDINFER_CHECK(well_formed, where, what, ": tensor \"", name,
                     "\" needs dtype (string), shape (array) and data_offsets ([begin, end])");
    Tensor t;
    t.dtype = entry["dtype"].get<std::string>();
    const std::size_t elem = dtype_bytes(t.dtype);
    uint64_t count = 1;
    for (const json& d : entry["shape"]) {
      PAGEDINFER_CHECK(d.is_number_unsigned(), where, what, ": tensor \"", name, "\" has a shape entry that is not a ",
                       "non-negative integer");
      const uint64_t extent = d.get<uint64_t>();
      PAGEDINFER_CHECK(extent == 0 || count <= buffer_len / extent, where, what, ": tensor \"", name,
                       "\" has more elements than the file has bytes");
      count *= extent;
      t.shape.push_back(int64_t(extent));
    }
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>(), end = entry["data_offsets"][1].get<uint64_t>();
    PAGEDINFER_CHECK(begin <= end && end <= buffer_len, where, what, ": tensor \"", name, "\" data_offsets [", begin,
                     ", ", end, ") leave the ", buffer_len, "-byte buffer");
    PAGEDINFER_CHECK(end - begin == count * elem, where, what, ": tensor \"", name, "\" is ", t.dtype, " of ", count,
                     " elements (", count * elem, " bytes) but data_offsets span ", end - begin, " bytes");
    t.data.assign(buffer + begin, buffer + end);
    ranges.emplace_back(begin, end);
    file.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    PAGEDINFER_CHECK(begin == covered, where, what, ": tensor byte ranges ",
                     begin < covered ? "overlap" : "leave a gap", " at byte ", std::min(begin, covered));
    covered = end;
  }
  PAGEDINFER_CHECK(covered == buffer_len, where, what, ": ", buffer_len - covered,
                   " bytes after the last tensor belong to none");
  return file;
}

File read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PAGEDINFER_CHECK(in, "read_safetensors", "cannot open \"", path, "\"");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> serialize_safetensors(const File& file) {
  json header = json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    PAGEDINFER_CHECK(name != "__metadata__", "write_safetensors", "no tensor may be called __metadata__");
    PAGEDINFER_CHECK(uint64_t(t.numel()) * dtype_bytes(t.dtype) == t.data.size(), "write_safetensors", "tensor \"", name,
                     "\" holds ", t.data.size(), " bytes for ", t.numel(), " elements of ", t.dtype);
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // buffers start 8-byte aligned
  std::vector<uint8_t> out(8 + text.size());
  const uint64_t len = text.size();
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  out.reserve(out.size() + offset);
  for (const auto& entry : file.tensors) out.insert(out.end(), entry.second.data.begin(), entry.second.data.end());
  return out;
}

void write_safetensors(const std::string& path, const File& file) {
  const std::vector<uint8_t> bytes = serialize_safetensors(file);
  std::ofstream out(path, std::ios::binary);
  PAGEDINFER_CHECK(out, "write_safetensors", "cannot create \"", path, "\"");
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  PAGEDINFER_CHECK(out.good(), "write_safetensors", "writing \"", path, "\" failed");
}

}  // namespace pagedinfer::golden
