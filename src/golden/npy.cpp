// numpy .npy reading (format 1.0 - 3.0): magic "\x93NUMPY", version, header length, a Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, then the data.
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/check.hpp"
#include "pagedinfer/golden.hpp"

namespace pagedinfer::golden {
namespace {

constexpr const char* kWhere = "read_npy";

// The value text after 'key': in the header dict, up to the next top-level comma or brace.
std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  const std::size_t at = header.find("'" + key + "'");
  PAGEDINFER_CHECK(at != std::string::npos, kWhere, path, ": the header has no '", key, "'");
  std::size_t i = header.find(':', at);
  PAGEDINFER_CHECK(i != std::string::npos, kWhere, path, ": the header's '", key, "' has no value");
  ++i;
  while (i < header.size() && header[i] == ' ') ++i;
  std::size_t end = i;
  int depth = 0;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return header.substr(i, end - i);
}

std::string safetensors_dtype(const std::string& descr, const std::string& path) {
  // descr is quoted: '<f4'. One-byte types use '|'.
  PAGEDINFER_CHECK(descr.size() == 5 && descr.front() == '\'' && descr.back() == '\'', kWhere, path, ": descr ", descr,
                   " is not a plain dtype (structured arrays are not tensors)");
  const std::string d = descr.substr(1, 3);
  static const std::pair<const char*, const char*> kMap[] = {
      {"<f2", "F16"}, {"<f4", "F32"}, {"<f8", "F64"}, {"|i1", "I8"},  {"<i2", "I16"}, {"<i4", "I32"},
      {"<i8", "I64"}, {"|u1", "U8"},  {"<u2", "U16"}, {"<u4", "U32"}, {"<u8", "U64"}, {"|b1", "BOOL"}};
  for (const auto& [npy, st] : kMap)
    if (d == npy) return st;
  detail::fail(kWhere, path, ": dtype ", d, " is not supported (little-endian f2/f4/f8, i1-i8, u1-u8, b1)");
}

}  // namespace

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PAGEDINFER_CHECK(in, kWhere, "cannot open \"", path, "\"");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PAGEDINFER_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, kWhere, path,
                   ": not a .npy file (no \\x93NUMPY magic)");
  const int major = bytes[6];
  PAGEDINFER_CHECK(major >= 1 && major <= 3, kWhere, path, ": .npy format version ", major, " is not 1, 2 or 3");
  std::size_t header_len, start;
  if (major == 1) {
    header_len = std::size_t(bytes[8]) | std::size_t(bytes[9]) << 8;
    start = 10;
  } else {
    PAGEDINFER_CHECK(bytes.size() >= 12, kWhere, path, ": truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= std::size_t(bytes[std::size_t(8 + i)]) << (8 * i);
    start = 12;
  }
  PAGEDINFER_CHECK(header_len <= bytes.size() - start, kWhere, path, ": header length ", header_len,
                   " runs past the end of the file");
  const std::string header(bytes.begin() + std::ptrdiff_t(start), bytes.begin() + std::ptrdiff_t(start + header_len));
  Tensor t;
  t.dtype = safetensors_dtype(dict_value(header, "descr", path), path);
  PAGEDINFER_CHECK(dict_value(header, "fortran_order", path) == "False", kWhere, path,
                   ": Fortran-order arrays are not supported (save a C-contiguous array)");
  const std::string shape = dict_value(header, "shape", path);
  PAGEDINFER_CHECK(shape.size() >= 2 && shape.front() == '(' && shape.back() == ')', kWhere, path, ": shape ", shape,
                   " is not a tuple");
  const std::size_t data_bytes = bytes.size() - start - header_len;
  uint64_t count = 1;
  for (std::size_t i = 1; i + 1 < shape.size();) {
    while (i + 1 < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i + 1 >= shape.size()) break;
    std::size_t used = 0;
    long long extent = -1;
    try {
      extent = std::stoll(shape.substr(i), &used);
    } catch (const std::exception&) {
    }
    PAGEDINFER_CHECK(extent >= 0 && used > 0, kWhere, path, ": shape ", shape, " holds something other than sizes");
    PAGEDINFER_CHECK(extent == 0 || count <= data_bytes / uint64_t(extent), kWhere, path, ": shape ", shape,
                     " has more elements than the file has bytes");
    count *= uint64_t(extent);
    t.shape.push_back(extent);
    i += used;
  }
  const std::size_t need = std::size_t(count) * dtype_bytes(t.dtype);
  PAGEDINFER_CHECK(data_bytes == need, kWhere, path, ": shape ", shape, " of ", t.dtype, " needs ", need,
                   " bytes of data, the file has ", data_bytes);
  t.data.assign(bytes.end() - std::ptrdiff_t(data_bytes), bytes.end());
  return t;
}

}  // namespace pagedinfer::golden
