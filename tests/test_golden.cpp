// Golden vectors (golden.hpp): file formats byte by byte, every corrupt-file rule, the check's
// verdicts, and the library's kernels passing their own golden files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "pagedinfer/golden.hpp"
#include "pagedinfer/pagedinfer.hpp"
#include "golden_run.hpp"
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using golden::File;
using golden::Tensor;
using testutil::expect_error;

// A safetensors file from a header text and a buffer, as the format defines it.
std::vector<uint8_t> safetensors_bytes(const std::string& header, const std::vector<uint8_t>& buffer) {
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

File parse(const std::vector<uint8_t>& bytes) { return golden::parse_safetensors(bytes.data(), bytes.size(), "t"); }

TEST(Golden, HandWrittenSafetensorsIsRead) {
  const float a[3] = {1.5f, -2.f, 0.25f};
  std::vector<uint8_t> buffer(reinterpret_cast<const uint8_t*>(a), reinterpret_cast<const uint8_t*>(a) + 12);
  buffer.push_back(0x80);  // BF16 -2 = 0xC000, stored little-endian
  buffer.push_back(0xBF);  // ... here 0xBF80 = -1
  const File f = parse(safetensors_bytes(
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[12,14]}})",
      buffer));
  EXPECT_EQ(f.metadata.at("k"), "v");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors.at("a").get(1), -2.0);
  EXPECT_EQ(f.tensors.at("b").get(0), -1.0);
  EXPECT_EQ(f.tensors.at("b").shape, (std::vector<int64_t>{1, 1}));
  // And written back, it reads the same.
  const File g = parse(golden::serialize_safetensors(f));
  EXPECT_EQ(g.tensors.at("a").data, f.tensors.at("a").data);
  EXPECT_EQ(g.metadata, f.metadata);
}

TEST(Golden, Fp8ValuesDecode) {
  Tensor t{"F8_E4M3", {4}, {0x38, 0xC0, 0x7E, 0x7F}};  // 1, -2, 448, NaN
  EXPECT_EQ(t.get(0), 1.0);
  EXPECT_EQ(t.get(1), -2.0);
  EXPECT_EQ(t.get(2), 448.0);
  EXPECT_TRUE(std::isnan(t.get(3)));
  Tensor e{"F8_E5M2", {2}, {0x3C, 0x7C}};  // 1, inf
  EXPECT_EQ(e.get(0), 1.0);
  EXPECT_TRUE(std::isinf(e.get(1)));
}

TEST(Golden, CorruptFilesAreRefusedWithTheRule) {
  const std::vector<uint8_t> four(4, 0);
  const std::string ok = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_NO_THROW(parse(safetensors_bytes(ok, four)));
  expect_error([] { golden::parse_safetensors(nullptr, 0, "t"); }, {"shorter than the 8-byte header length"});
  auto huge = safetensors_bytes(ok, four);
  huge[5] = 1;  // header length 2^40
  expect_error([&] { parse(huge); }, {"header length", "does not fit"});
  expect_error([&] { parse(safetensors_bytes("{nope", four)); }, {"not JSON"});
  expect_error([&] { parse(safetensors_bytes(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", four)); },
               {"unknown safetensors dtype", "F33"});
  expect_error([&] { parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four)); },
               {"\"a\"", "8 bytes", "span 4 bytes"});
  expect_error([&] { parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", four)); },
               {"leave the 4-byte buffer"});
  expect_error([&] { parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1]}})", four)); }, {"data_offsets"});
  expect_error([&] { parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four)); },
               {"non-negative"});
  const std::vector<uint8_t> eight(8, 0);
  expect_error([&] {
    parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight));
  }, {"overlap"});
  expect_error([&] { parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight)); },
               {"gap"});
  expect_error([&] { parse(safetensors_bytes(ok, eight)); }, {"4 bytes after the last tensor"});
  expect_error([&] { parse(safetensors_bytes(R"({"__metadata__":{"k":1}})", {})); }, {"metadata", "not a string"});
  // A shape whose element count overflows is refused before it is multiplied out.
  expect_error([&] {
    parse(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", four));
  }, {"more elements than the file has bytes"});
  expect_error([] { golden::read_safetensors("/nonexistent/x.safetensors"); }, {"cannot open"});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// A version 1.0 .npy file: magic, version, u16 header length, dict, data.
std::string npy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + data;
}

TEST(Golden, NpyIsRead) {
  const std::string path = testing::TempDir() + "/golden_test.npy";
  const int32_t values[6] = {1, 2, 3, 4, 5, -6};
  const std::string data(reinterpret_cast<const char*>(values), sizeof values);
  write_file(path, npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", data));
  const Tensor t = golden::read_npy(path);
  EXPECT_EQ(t.dtype, "I32");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.get(5), -6.0);
  write_file(path, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", data.substr(0, 4)));
  EXPECT_EQ(golden::read_npy(path).numel(), 1);
  write_file(path, npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", data));
  expect_error([&] { golden::read_npy(path); }, {"Fortran-order"});
  write_file(path, npy("{'descr': '>i4', 'fortran_order': False, 'shape': (2, 3), }", data));
  expect_error([&] { golden::read_npy(path); }, {">i4", "not supported"});
  write_file(path, npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 4), }", data));
  expect_error([&] { golden::read_npy(path); }, {"needs 32 bytes", "has 24"});
  write_file(path, "not numpy at all");
  expect_error([&] { golden::read_npy(path); }, {"not a .npy file"});
}

TEST(Golden, SpecErrorsNameTheKey) {
  expect_error([] { golden::generate(R"({"op":"attention","kv_lens":[3],"num_kv_head":1})"); },
               {"\"num_kv_head\"", "not a key"});
  expect_error([] { golden::generate(R"({"op":"attention"})"); }, {"needs \"kv_lens\""});
  expect_error([] { golden::generate(R"({"op":"attention","kv_lens":"long"})"); }, {"kv_lens", "wrong type"});
  expect_error([] { golden::generate(R"({"op":"linear","m":0})"); }, {"\"m\"", "[1,"});
  expect_error([] { golden::generate(R"({"op":"matmul"})"); }, {"\"op\"", "attention"});
  expect_error([] { golden::generate("[1]"); }, {"JSON object"});
}

TEST(Golden, KernelsPassTheirGoldenFileAndAPerturbationIsNamed) {
  const File f = golden::generate(
      R"({"op":"attention","num_q_heads":8,"num_kv_heads":2,"head_dim":64,"page_size":16,)"
      R"("kv_lens":[1,40,300,0],"q_lens":[1,3,300,0],"seed":7})");
  // The file survives its own bytes.
  const File g = parse(golden::serialize_safetensors(f));
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  std::map<std::string, Tensor> got = goldenrun::run_case(g, 2);
  const golden::Report pass = golden::check(g, got);
  EXPECT_TRUE(pass.pass) << pass.to_string();
  ASSERT_EQ(pass.outputs.size(), 2u);
  EXPECT_LE(pass.outputs[0].max_bound_ratio, 1.0);
  // The bounds are tight enough to mean something: a few bf16 units of roundoff of outputs up to 1.
  const Tensor& bound = g.tensors.at("out.bound");
  for (int64_t i = 0; i < bound.numel(); ++i) ASSERT_LT(bound.get(i), 1e-2) << i;
  // One element moved by twice its bound fails, and is reported by its index.
  const int64_t at = (5 * 8 + 3) * 64 + 17;  // token 5, head 3, dim 17
  uint16_t* out = reinterpret_cast<uint16_t*>(got["out"].data.data());  // bf16
  out[at] = float_to_bf16(float(g.tensors.at("out").get(at) + 2 * g.tensors.at("out.bound").get(at)));
  const golden::Report fail = golden::check(g, got);
  EXPECT_FALSE(fail.pass);
  EXPECT_EQ(fail.outputs[0].failures, 1);
  ASSERT_EQ(fail.worst.size(), 1u);
  EXPECT_EQ(fail.worst[0].index, (std::vector<int64_t>{5, 3, 17}));
  EXPECT_NE(fail.to_string().find("out[5, 3, 17]"), std::string::npos) << fail.to_string();
  // A NaN fails wherever it is; the rows of an empty request keep lse = -inf exactly.
  out[at] = float_to_bf16(NAN);
  EXPECT_EQ(golden::check(g, got).outputs[0].failures, 1);
  // The golden file is its own passing candidate.
  EXPECT_TRUE(golden::check(g, g.tensors).pass);
}

TEST(Golden, EveryOpPassesItsGoldenFile) {
  for (const char* spec : {
           R"({"op":"attention","dtype":"f16","kv_dtype":"bf16","num_q_heads":6,"num_kv_heads":3,"head_dim":72,)"
           R"("page_size":3,"kv_lens":[50,7],"q_lens":[4,7],"alibi":true,"sinks":true,"window_left":9})",
           R"({"op":"attention","kv_dtype":"i8","num_q_heads":8,"num_kv_heads":2,"head_dim":72,"page_size":5,)"
           R"("kv_lens":[1,40,300],"q_lens":[1,3,20],"softcap":30})",
           R"({"op":"attention","dtype":"f32","kv_dtype":"f8_e5m2","num_q_heads":4,"num_kv_heads":4,"head_dim":64,)"
           R"("page_size":16,"kv_lens":[33,700],"sinks":true})",
           R"({"op":"attention","kv_dtype":"f8_e4m3","num_q_heads":8,"num_kv_heads":1,"head_dim":128,)"
           R"("page_size":16,"kv_lens":[17,513],"q_lens":[8,24],"tree_mask":true})",
           R"({"op":"linear","format":"awq","m":9,"n":64,"k":256})",
           R"({"op":"linear","format":"gptq","act_order":true,"bits":8,"group_size":32,"m":3,"n":32,"k":128,"dtype":"f32"})",
           R"({"op":"linear","format":"w8a8","m":17,"n":40,"k":96})",
           R"({"op":"rope","num_tokens":5,"num_q_heads":3,"num_kv_heads":1,"head_dim":40,"rotary_dim":24,"style":"gptj",)"
           R"("scaling":"yarn","factor":4,"original_max_position":512,"dtype":"f16"})",
           R"({"op":"rms_norm","num_tokens":3,"hidden_size":333,"fused_add":true,"gemma":true,"weight_dtype":"f32"})"}) {
    const File f = golden::generate(spec);
    const golden::Report r = golden::check(f, goldenrun::run_case(f, 2));
    EXPECT_TRUE(r.pass) << spec << "\n" << r.to_string();
  }
}

// 8-bit caches carry their scales in the file: the library passes, and a kernel that misreads
// them (every V row scale, or the fp8 K scale, 5% off) fails.
TEST(Golden, QuantizedCachesPassAndAMisreadScaleFails) {
  const auto scaled = [](File f, const std::string& name, float factor) {
    Tensor& t = f.tensors.at(name);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float x = float(t.get(i)) * factor;
      std::memcpy(t.data.data() + 4 * i, &x, 4);
    }
    return f;
  };
  for (const auto& [kv, scale] : {std::pair{"i8", "v_scales"}, std::pair{"f8_e4m3", "k_scale"}}) {
    const File f = golden::generate(std::string(R"({"op":"attention","dtype":"f32","num_q_heads":8,"num_kv_heads":2,)") +
                                    R"("head_dim":64,"page_size":16,"kv_lens":[200,37],"kv_dtype":")" + kv + R"("})");
    EXPECT_EQ(f.tensors.at("k_cache").dtype, std::string(kv) == "i8" ? "I8" : "F8_E4M3");
    const golden::Report pass = golden::check(f, goldenrun::run_case(f, 2));
    EXPECT_TRUE(pass.pass) << kv << "\n" << pass.to_string();
    const golden::Report fail = golden::check(f, goldenrun::run_case(scaled(f, scale, 1.05f), 2));
    EXPECT_FALSE(fail.pass) << kv;
  }
  File missing = golden::generate(R"({"op":"attention","num_q_heads":2,"kv_lens":[3],"kv_dtype":"i8"})");
  missing.tensors.erase("k_scales");
  expect_error([&] { golden::attention_cache(missing); }, {"k_scales", "i8"});
}

TEST(Golden, CheckRefusesWhatItCannotCompare) {
  const File f = golden::generate(R"({"op":"rms_norm","num_tokens":2,"hidden_size":16})");
  expect_error([&] { golden::check(f, {}); }, {"candidate has no tensor \"out\""});
  Tensor flat = f.tensors.at("out");
  flat.shape = {32};
  expect_error([&] { golden::check(f, {{"out", flat}}); }, {"shape [32]", "[2, 16]"});
  File plain = f;
  plain.metadata.clear();
  expect_error([&] { golden::check(plain, f.tensors); }, {"pagedinfer.outputs"});
  // A candidate in another float dtype is compared by value.
  Tensor bf{"BF16", {2, 16}, std::vector<uint8_t>(64)};
  for (int64_t i = 0; i < 32; ++i) {
    const uint16_t b = float_to_bf16(float(f.tensors.at("out").get(i)));
    std::memcpy(bf.data.data() + 2 * i, &b, 2);
  }
  EXPECT_TRUE(golden::check(f, {{"out", bf}}).pass);
}

TEST(Golden, SuiteSpecsAreValid) {
  const std::vector<std::string> suite = golden::standard_suite();
  EXPECT_EQ(suite.size(), 39u);
  for (const char* model : {"qwen2-7b", "llama3-8b", "qwen-1.8b"}) {
    int cases = 0;
    for (const std::string& s : suite) cases += s.find(std::string("\"name\":\"") + model) != std::string::npos;
    EXPECT_EQ(cases, 13) << model;
  }
  // The smallest case of each op generates (the whole suite runs in the tool test).
  for (const std::string& s : suite)
    if (s.find("qwen-1.8b-fused-add-rms-norm-decode8") != std::string::npos) EXPECT_NO_THROW(golden::generate(s));
}

}  // namespace
