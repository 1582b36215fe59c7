// The parameters of RoPE, RMSNorm, linear (incl. unquantized weights), sampling and the KV-cache operations (append, copy, gather /
// scatter in the flat format, export / import of KV transfers, damaged or foreign) decoded from the input, with buffers sized exactly as the
// description implies. What validation accepts must run in bounds; RoPE, RMSNorm and linear
// results must agree with the reference.
#include "fuzz_util.hpp"

namespace {

using namespace pagedinfer;

void rope(FuzzedDataProvider& in) {
  const DType t = fuzz::any_dtype(in);
  const int64_t tokens = in.ConsumeIntegralInRange<int64_t>(0, 6);
  const int32_t hq = in.ConsumeIntegralInRange<int32_t>(0, 3), hkv = in.ConsumeIntegralInRange<int32_t>(0, 2);
  const int32_t d = in.ConsumeIntegralInRange<int32_t>(1, 40), rot = in.ConsumeIntegralInRange<int32_t>(0, 42);
  const int64_t max_position = in.ConsumeIntegralInRange<int64_t>(1, 32);
  const int64_t pad = in.ConsumeIntegralInRange<int64_t>(-1, 3);
  const bool mrope = in.ConsumeIntegralInRange<int>(0, 7) == 0;
  std::vector<int64_t> positions(std::size_t(tokens * (mrope ? 3 : 1)));
  for (int64_t& p : positions) p = in.ConsumeIntegralInRange<int64_t>(-1, max_position);
  int32_t section[3] = {in.ConsumeIntegralInRange<int32_t>(0, 8), in.ConsumeIntegralInRange<int32_t>(0, 8),
                        in.ConsumeIntegralInRange<int32_t>(0, 8)};
  fuzz::Buffer table(std::size_t(max_position * rot), t, &in);
  const std::size_t q_elems = fuzz::extent(tokens, hq * (d + pad), hq, d + pad, d);
  const std::size_t k_elems = fuzz::extent(tokens, hkv * (d + pad), hkv, d + pad, d);
  fuzz::Buffer q(q_elems, t, &in), k(k_elems, t, &in), q_ref(q_elems, t), k_ref(k_elems, t);
  q_ref.copy_from(q);
  k_ref.copy_from(k);
  RopeParams p;
  p.style = in.ConsumeBool() ? RopeStyle::neox : RopeStyle::gptj;
  p.num_tokens = tokens;
  p.positions = positions.data();
  p.mrope_section = mrope ? section : nullptr;
  p.mrope_interleaved = in.ConsumeBool();
  p.table = {table.data(), t, max_position, rot};
  p.head_dim = d;
  p.num_q_heads = hq;
  p.q = {in.ConsumeBool() ? q.data() : nullptr, t, hq * (d + pad), d + pad};
  p.num_kv_heads = hkv;
  p.k = {k.data(), t, hkv * (d + pad), d + pad};
  p.num_threads = in.ConsumeIntegralInRange<int>(1, 2);
  if (!fuzz::accepted([&] { apply_rope(p); })) return;
  if (p.q.data) p.q.data = q_ref.data();
  p.k.data = k_ref.data();
  reference::apply_rope(p);
  for (std::size_t i = 0; i < q.size(); ++i) fuzz::expect_close(q.at(i), q_ref.at(i), 0.02, "rope q");
  for (std::size_t i = 0; i < k.size(); ++i) fuzz::expect_close(k.at(i), k_ref.at(i), 0.02, "rope k");
}

void norm(FuzzedDataProvider& in) {
  const DType t = fuzz::any_dtype(in), wt = fuzz::any_dtype(in);
  const int64_t tokens = in.ConsumeIntegralInRange<int64_t>(0, 5);
  const int32_t heads = in.ConsumeIntegralInRange<int32_t>(0, 3), dim = in.ConsumeIntegralInRange<int32_t>(0, 300);
  const int64_t stride = int64_t(heads) * dim + in.ConsumeIntegralInRange<int64_t>(-2, 4);
  const std::size_t elems = fuzz::extent(tokens, stride, heads, dim, dim);
  fuzz::Buffer x(elems, t, &in), out(elems, t), ref(elems, t), res(elems, t, &in), res_ref(elems, t),
      w(std::size_t(dim), wt, &in);
  res_ref.copy_from(res);
  const bool fused = in.ConsumeBool(), in_place = in.ConsumeBool();
  RmsNormParams p;
  p.num_tokens = tokens;
  p.num_heads = heads;
  p.dim = dim;
  p.input = {x.data(), t, stride, dim};
  p.output = {in_place ? x.data() : out.data(), t, stride, dim};
  p.residual = {fused ? res.data() : nullptr, t, stride, dim};
  p.weight = w.data();
  p.weight_dtype = wt;
  p.eps = in.ConsumeBool() ? 1e-6f : in.ConsumeFloatingPoint<float>();
  p.weight_plus_one = in.ConsumeBool();
  p.num_threads = in.ConsumeIntegralInRange<int>(1, 2);
  fuzz::Buffer x_copy(elems, t);
  x_copy.copy_from(x);
  if (!fuzz::accepted([&] { fused ? fused_add_rms_norm(p) : rms_norm(p); })) return;
  p.input.data = x_copy.data();
  p.output.data = ref.data();
  if (fused) p.residual.data = res_ref.data();
  fused ? reference::fused_add_rms_norm(p) : reference::rms_norm(p);
  const fuzz::Buffer& got = in_place ? x : out;
  for (int64_t tok = 0; tok < tokens; ++tok)
    for (int64_t i = 0; i < int64_t(heads) * dim; ++i) {
      const std::size_t e = std::size_t(tok * stride + i);
      fuzz::expect_close(got.at(e), ref.at(e), 0.02 * (1 + std::fabs(ref.at(e))), "rms_norm");
    }
}

void linear_op(FuzzedDataProvider& in) {
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(1, 24) * 2, k = 32 * in.ConsumeIntegralInRange<int64_t>(1, 4);
  QuantFormat f;
  f.bits = in.PickValueInArray({4, 8, 16});
  f.group_size = in.PickValueInArray({0, 32, 64, 128});
  f.zero = QuantZero(in.ConsumeIntegralInRange<int>(0, 2));
  if (f.bits == 16) f = QuantFormat::unquantized(in.ConsumeBool() ? DType::bf16 : DType::f16);  // W16A16
  QuantizeOptions options(f);
  options.gate_up = in.ConsumeBool();
  fuzz::Buffer wf(std::size_t(n * k), DType::f32, &in);
  QuantizedWeight w;
  if (!fuzz::accepted([&] { w = quantize(wf.data(), DType::f32, n, k, k, options); })) return;
  const DType xt = fuzz::any_dtype(in), yt = fuzz::any_dtype(in);
  LinearParams p;
  p.m = in.ConsumeIntegralInRange<int64_t>(0, 12);
  p.k = k + (in.ConsumeIntegralInRange<int>(0, 15) == 0);
  p.silu_mul = in.ConsumeBool();
  p.activations = in.ConsumeBool() ? LinearActivations::float_ : LinearActivations::int8_per_token;
  const int64_t n_out = p.silu_mul ? n / 2 : n;
  p.x = {nullptr, xt, k + in.ConsumeIntegralInRange<int64_t>(-1, 3), 0};
  p.y = {nullptr, yt, n_out + in.ConsumeIntegralInRange<int64_t>(-1, 3), 0};
  fuzz::Buffer x(fuzz::extent(p.m, p.x.stride_token, 1, 0, k), xt, &in);
  fuzz::Buffer y(fuzz::extent(p.m, p.y.stride_token, 1, 0, n_out), yt, &in), ref(y.size(), yt);
  fuzz::Buffer bias(std::size_t(n), DType::bf16, &in);
  ref.copy_from(y);
  p.x.data = x.data();
  p.y.data = y.data();
  if (in.ConsumeBool()) p.residual = p.y;  // in place: y += x W^T
  p.bias = in.ConsumeBool() ? bias.data() : nullptr;
  p.bias_dtype = DType::bf16;
  p.num_threads = in.ConsumeIntegralInRange<int>(1, 2);
  std::size_t bytes = 0;
  if (!fuzz::accepted([&] { bytes = linear_workspace_size(w, p); })) return;
  fuzz::Bytes ws(bytes);
  p.workspace = ws.data();
  p.workspace_bytes = bytes;
  if (!fuzz::accepted([&] { linear(w, p); })) return;
  p.y.data = ref.data();
  if (p.residual.data) p.residual.data = ref.data();
  reference::linear(w, p);
  for (std::size_t i = 0; i < y.size(); ++i) fuzz::expect_close(y.at(i), ref.at(i), 0.05 * (1 + std::fabs(ref.at(i))), "linear");
}

void kv_ops(FuzzedDataProvider& in) {
  const DType t = fuzz::half_dtype(in);
  const int64_t pages = in.ConsumeIntegralInRange<int64_t>(0, 6);
  const int32_t page = in.ConsumeIntegralInRange<int32_t>(1, 5), heads = in.ConsumeIntegralInRange<int32_t>(1, 3);
  const int32_t d = 8 * in.ConsumeIntegralInRange<int32_t>(1, 3);
  const int layout = in.ConsumeIntegralInRange<int>(0, 3);
  const std::size_t pool = std::size_t(pages * page * heads * d);
  fuzz::Buffer kv(2 * pool, t, &in);
  char* base = static_cast<char*>(kv.data());
  const std::size_t half = pool * dtype_size(t);
  KVCacheView cache = layout == 0   ? kv_cache_nhd(base, base + half, t, pages, page, heads, d, d)
                      : layout == 1 ? kv_cache_hnd(base, base + half, t, pages, page, heads, d, d)
                      : layout == 2 ? kv_cache_combined_nhd(base, t, pages, page, heads, d)
                                    : kv_cache_combined_hnd(base, t, pages, page, heads, d);
  const int threads = in.ConsumeIntegralInRange<int>(1, 2);
  const int64_t count = in.ConsumeIntegralInRange<int64_t>(0, 6);
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: {  // append_kv by slot_mapping (slots possibly negative, outside, repeated)
      std::vector<int64_t> slots(static_cast<std::size_t>(count));
      for (int64_t& s : slots) s = in.ConsumeIntegralInRange<int64_t>(-2, pages * page + 1);
      const DType src = fuzz::any_dtype(in);
      fuzz::Buffer key(std::size_t(count * heads * d), src, &in), value(std::size_t(count * heads * d), src, &in);
      AppendKvParams p{cache, {key.data(), src, int64_t(heads) * d, d}, {value.data(), src, int64_t(heads) * d, d},
                       slots.data(), count, threads};
      fuzz::accepted([&] { append_kv(p); });
      break;
    }
    case 1: {  // copy_blocks
      std::vector<int32_t> pairs(std::size_t(2 * count));
      for (int32_t& id : pairs) id = in.ConsumeIntegralInRange<int32_t>(-1, int32_t(pages));
      fuzz::accepted([&] { copy_blocks({cache, pairs.data(), count, threads}); });
      break;
    }
    case 2: {  // a KV transfer of two layers (kv_transfer.hpp), damaged or not, imported back
      const KVCacheView layers[2] = {cache, cache};
      const int64_t tokens = in.ConsumeIntegralInRange<int64_t>(0, 12);
      std::vector<int32_t> ids(std::size_t((tokens + page - 1) / page));
      for (int32_t& id : ids) id = in.ConsumeIntegralInRange<int32_t>(-1, int32_t(pages));
      std::size_t bytes = 0;
      if (!fuzz::accepted([&] { bytes = kv_transfer_bytes(cache, 2, tokens); })) return;
      fuzz::Bytes transfer(bytes);
      if (!fuzz::accepted([&] { export_kv({layers, 2, ids.data(), tokens, transfer.data(), bytes, threads}); })) return;
      const auto* out = static_cast<const uint8_t*>(transfer.data());
      std::vector<uint8_t> sent(out, out + bytes), received = sent;
      const int damage = in.ConsumeIntegralInRange<int>(0, 3);
      if (damage == 1 && !received.empty())  // one byte changed
        received[in.ConsumeIntegralInRange<std::size_t>(0, received.size() - 1)] ^= in.ConsumeIntegralInRange<uint8_t>(1, 255);
      if (damage == 2) received.resize(in.ConsumeIntegralInRange<std::size_t>(0, received.size()));
      if (damage == 3) received = in.ConsumeBytes<uint8_t>(received.size());  // foreign bytes
      std::vector<int32_t> to(ids.size());
      for (int32_t& id : to) id = in.ConsumeIntegralInRange<int32_t>(-1, int32_t(pages));
      fuzz::Bytes copy(received.size());
      std::copy(received.begin(), received.end(), static_cast<uint8_t*>(copy.data()));
      if (fuzz::accepted([&] { import_kv({layers, 2, copy.data(), received.size(), to.data(), int64_t(to.size()), threads}); }) &&
          received != sent)
        __builtin_trap();  // a damaged transfer was accepted
      break;
    }
    default: {  // gather to the transfer format, scatter back
      std::vector<int32_t> ids(static_cast<std::size_t>(count));
      for (int32_t& id : ids) id = in.ConsumeIntegralInRange<int32_t>(-1, int32_t(pages));
      std::size_t block_bytes = 0;
      if (!fuzz::accepted([&] { block_bytes = kv_block_bytes(cache); })) return;
      fuzz::Bytes flat(std::size_t(count) * block_bytes);
      if (!fuzz::accepted([&] { gather_blocks({cache, ids.data(), count, flat.data(), threads}); })) return;
      fuzz::Buffer before(kv.size(), t);
      before.copy_from(kv);
      if (!fuzz::accepted([&] { scatter_blocks({cache, flat.data(), ids.data(), count, threads}); })) return;
      for (std::size_t i = 0; i < kv.size(); ++i)  // a round trip changes nothing
        if (before.at(i) != kv.at(i)) __builtin_trap();
    }
  }
}

}  // namespace

// sample() on fuzzed logits (any bits: NaN, infinities), rules in and out of range, previous
// tokens in and out of the vocabulary: refused together with the reference, or every token in
// the vocabulary and of a finite logit (a -inf logit has no weight), as the reference's.
void sampling_op(FuzzedDataProvider& in) {
  const DType t = fuzz::any_dtype(in);
  const int64_t reqs = in.ConsumeIntegralInRange<int64_t>(0, 4), vocab = in.ConsumeIntegralInRange<int64_t>(1, 3000);
  SampleParams p;
  p.num_reqs = reqs;
  p.vocab = vocab;
  p.logits = {nullptr, t, vocab + in.ConsumeIntegralInRange<int64_t>(-1, 3), 0};
  fuzz::Buffer logits(fuzz::extent(reqs, p.logits.stride_token, 1, 0, vocab), t, &in);
  p.logits.data = logits.data();
  std::vector<SamplingParams> requests(static_cast<std::size_t>(reqs));
  for (SamplingParams& s : requests) {
    s.temperature = in.PickValueInArray({0.f, 0.5f, 1.f, 3.f, -1.f, NAN});
    s.top_k = in.ConsumeIntegralInRange<int32_t>(-1, int32_t(vocab) + 2);
    s.top_p = in.PickValueInArray({1.f, 0.9f, 0.3f, 1e-7f, 0.f, 1.5f});
    s.min_p = in.PickValueInArray({0.f, 0.05f, 1.f, -0.5f});
    s.repetition_penalty = in.PickValueInArray({1.f, 1.3f, 0.7f, 0.f});
    s.presence_penalty = in.PickValueInArray({0.f, 2.f, -3.f});
    s.frequency_penalty = in.PickValueInArray({0.f, 0.5f, INFINITY});
    s.seed = in.ConsumeIntegral<uint64_t>();
    s.step = in.ConsumeIntegral<uint64_t>();
  }
  p.requests = requests.data();
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> prev;
  for (int64_t r = 0; r < reqs; ++r) {
    for (int i = in.ConsumeIntegralInRange<int>(0, 20); i > 0; --i)
      prev.push_back(in.ConsumeIntegralInRange<int32_t>(-1, int32_t(vocab)));
    indptr.push_back(int64_t(prev.size()));
  }
  if (in.ConsumeBool()) {
    p.prev_indptr = indptr.data();
    p.prev_tokens = prev.data();
  }
  std::vector<int32_t> tokens(static_cast<std::size_t>(reqs), -7), ref(tokens);
  std::vector<float> logprobs(static_cast<std::size_t>(reqs));
  p.tokens = tokens.data();
  p.logprobs = in.ConsumeBool() ? logprobs.data() : nullptr;
  p.num_threads = in.ConsumeIntegralInRange<int>(1, 2);
  p.workspace_bytes = sample_workspace_size(p);
  fuzz::Bytes ws(p.workspace_bytes);
  p.workspace = ws.data();
  const bool ok = fuzz::accepted([&] { sample(p); });
  p.tokens = ref.data();
  fuzz::require(fuzz::accepted([&] { reference::sample(p); }) == ok, "sample: kernel and reference disagree on refusing");
  if (!ok) return;
  for (int64_t r = 0; r < reqs; ++r) {
    const int32_t token = tokens[std::size_t(r)];
    fuzz::require(token >= 0 && token < vocab, "sample: token outside the vocabulary");
    fuzz::require(logits.at(std::size_t(r * p.logits.stride_token + token)) > -INFINITY, "sample: a -inf logit drawn");
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: rope(in); break;
    case 1: norm(in); break;
    case 2: linear_op(in); break;
    case 3: sampling_op(in); break;
    default: kv_ops(in); break;
  }
  return 0;
}
