// sample(): every registered kernel this CPU runs against reference::sample and the reference's
// distribution (sampling_probabilities), over greedy, temperature, top-k, top-p, min-p and the
// three penalties, logit dtypes, vocabularies from 1 to 152064, masked (-inf) tokens, threads
// and batch order; the generator's known answer; the draw's statistics; errors.
#include <map>
#include <string>

#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using testutil::Buffer;
using testutil::expect_error;

constexpr double kEps32 = 1.0 / (1 << 24);

struct Batch {
  int64_t vocab = 0;
  Buffer logits;
  std::vector<SamplingParams> requests;
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> prev;

  Batch(int64_t v, DType dtype, int64_t reqs, std::mt19937& rng, float spread = 4.f) : vocab(v) {
    logits = Buffer(dtype, size_t(reqs * v));
    std::normal_distribution<float> d(0.f, spread);
    for (size_t i = 0; i < logits.n; ++i) logits.set(i, d(rng));
    requests.resize(size_t(reqs));
    for (int64_t r = 0; r < reqs; ++r) indptr.push_back(0);
  }
  void add_previous(int64_t r, std::vector<int32_t> tokens) {
    std::vector<int32_t> next;
    for (int64_t q = 0; q < int64_t(requests.size()); ++q) {
      next.insert(next.end(), prev.begin() + indptr[size_t(q)], prev.begin() + indptr[size_t(q) + 1]);
      if (q == r) next.insert(next.end(), tokens.begin(), tokens.end());
    }
    prev = next;
    for (int64_t q = r; q < int64_t(requests.size()); ++q) indptr[size_t(q) + 1] += int64_t(tokens.size());
  }
  SampleParams params(int32_t* tokens, float* logprobs = nullptr) const {
    SampleParams p;
    p.num_reqs = int64_t(requests.size());
    p.vocab = vocab;
    p.logits = {logits.data(), logits.dtype, vocab, 0};
    p.requests = requests.data();
    p.prev_indptr = indptr.data();
    p.prev_tokens = prev.data();
    p.tokens = tokens;
    p.logprobs = logprobs;
    return p;
  }
};

// sample() with a fresh workspace (filled with garbage).
void run_sample(SampleParams p, int threads) {
  p.num_threads = threads;
  std::vector<uint8_t> ws(sample_workspace_size(p) + 64, 0xCD);
  p.workspace = ws.data() + (64 - reinterpret_cast<uintptr_t>(ws.data()) % 64) % 64;
  p.workspace_bytes = ws.size() - 64;
  sample(p);
}

// The kernel's token t for request r must be where the reference's distribution puts u: its
// cumulative probability (kept tokens in vocabulary order) before t is at most u and after t
// above it, within the contract's bound on fp32 weights and sums ((n + 4) 2^-24 for each of the
// two sums of up to n kept weights, and 2^-22 for the weights' own rounding).
void expect_drawn_where_u_falls(const SampleParams& p, int64_t r, int32_t token, const std::string& what) {
  std::vector<double> probs(static_cast<size_t>(p.vocab));
  reference::sampling_probabilities(p, r, probs.data());
  int64_t kept = 0;
  double before = 0;
  for (int64_t i = 0; i < p.vocab; ++i) {
    kept += probs[size_t(i)] > 0;
    if (i < token) before += probs[size_t(i)];
  }
  const double u = sampling_uniform(p.requests[r].seed, p.requests[r].step);
  const double delta = 2 * (double(kept) + 4) * kEps32 + std::ldexp(1.0, -22) + 1e-12;
  ASSERT_LE(before, u + delta) << what << " request " << r << " token " << token;
  ASSERT_GT(before + probs[size_t(token)], u - delta) << what << " request " << r << " token " << token;
}

void check_every_kernel(const Batch& b, int threads, const char* what) {
  std::vector<int32_t> want(b.requests.size());
  reference::sample(b.params(want.data()));
  testutil::for_each_kernel("sampling", [] { return sample_kernel_name(); }, [&](const std::string& kernel) {
    std::vector<int32_t> got(b.requests.size(), -7);
    const SampleParams p = b.params(got.data());
    run_sample(p, threads);
    for (int64_t r = 0; r < p.num_reqs; ++r) {
      const std::string where = std::string(what) + " " + kernel;
      if (p.requests[r].temperature <= 0.f) {
        ASSERT_EQ(got[size_t(r)], want[size_t(r)]) << where << " greedy request " << r;
      } else {
        expect_drawn_where_u_falls(p, r, got[size_t(r)], where);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  });
}

TEST(Sampling, PhiloxKnownAnswer) {
  // Philox4x32-10 of counter 0 and key 0 is 6627e8d5 e169c58d bc57ac4c 9b00dbd8 (Random123's
  // known-answer vectors); u takes the top 24 bits of the first word.
  EXPECT_EQ(sampling_uniform(0, 0), float(0x6627e8d5u >> 8) / 16777216.f);
  EXPECT_NE(sampling_uniform(0, 1), sampling_uniform(0, 0));
  EXPECT_NE(sampling_uniform(1, 0), sampling_uniform(0, 0));
}

TEST(Sampling, GreedyIsTheArgmaxOfPenalizedLogits) {
  std::mt19937 rng(1);
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    Batch b(1000, dtype, 6, rng);
    for (auto& s : b.requests) s.temperature = 0.f;
    b.requests[1].repetition_penalty = 1.3f;
    b.requests[2].presence_penalty = 2.f;
    b.requests[3].frequency_penalty = 0.7f;
    b.requests[4].repetition_penalty = 0.5f;  // < 1 raises seen tokens
    for (int64_t r = 1; r < 5; ++r) {
      std::vector<int32_t> seen;
      for (int i = 0; i < 40; ++i) seen.push_back(int32_t(rng() % 60));  // repeats
      b.add_previous(r, seen);
    }
    // Request 5: a tie for the maximum at 17 and 600: the lower index wins.
    b.logits.set(size_t(5 * 1000 + 17), 100.f);
    b.logits.set(size_t(5 * 1000 + 600), 100.f);
    check_every_kernel(b, 2, dtype_name(dtype));
    std::vector<int32_t> t(6);
    reference::sample(b.params(t.data()));
    EXPECT_EQ(t[5], 17);
  }
}

struct Rules {
  float temperature, min_p, top_p;
  int32_t top_k;
};

TEST(Sampling, DrawsWhereTheReferenceDistributionPutsU) {
  std::mt19937 rng(2);
  const Rules rules[] = {{1.f, 0.f, 1.f, 0},    {0.7f, 0.f, 1.f, 50},   {1.f, 0.f, 0.9f, 0},  {1.2f, 0.f, 0.9f, 50},
                         {0.8f, 0.05f, 1.f, 0}, {1.f, 0.1f, 0.8f, 20},  {2.f, 0.f, 0.5f, 0},  {1.f, 0.f, 1.f, 1},
                         {0.5f, 1.f, 1.f, 0},   {1.f, 0.f, 0.99f, 3000}};
  for (int64_t vocab : {1, 7, 100, 1023, 1025, 5000, 32000}) {
    for (DType dtype : {DType::f32, DType::bf16}) {
      Batch b(vocab, dtype, int64_t(std::size(rules)) * 2, rng, vocab > 1000 ? 3.f : 1.f);
      for (size_t r = 0; r < b.requests.size(); ++r) {
        const Rules& x = rules[r % std::size(rules)];
        SamplingParams& s = b.requests[r];
        s.temperature = x.temperature;
        s.min_p = x.min_p;
        s.top_p = x.top_p;
        s.top_k = x.top_k;
        s.seed = rng();
        s.step = r;
        if (r >= std::size(rules)) {  // the second half with penalties and masked tokens
          s.repetition_penalty = 1.2f;
          s.frequency_penalty = 0.1f;
          std::vector<int32_t> seen;
          for (int i = 0; i < 30; ++i) seen.push_back(int32_t(rng() % vocab));
          b.add_previous(int64_t(r), seen);
          for (int64_t i = 1; i < vocab; i += 3) b.logits.set(size_t(int64_t(r) * vocab + i), -INFINITY);
        }
      }
      SCOPED_TRACE(testing::Message() << "vocab " << vocab << " " << dtype_name(dtype));
      check_every_kernel(b, 2, "rules");
      if (HasFatalFailure()) return;
    }
  }
}

// Penalties that move tokens across the top-k boundary: the largest logits pushed down, small
// ones pulled up (the top-k filter's lower bound must follow both).
TEST(Sampling, PenaltiesMoveTokensAcrossTopK) {
  std::mt19937 rng(8);
  const int64_t vocab = 40000;
  Batch b(vocab, DType::f32, 4, rng, 2.f);
  for (int64_t r = 0; r < 4; ++r) {
    SamplingParams& s = b.requests[size_t(r)];
    s.top_k = 5;
    s.temperature = 0.5f;
    s.seed = uint64_t(r);
    s.presence_penalty = r % 2 ? -12.f : 12.f;
    s.repetition_penalty = r < 2 ? 1.f : 0.8f;
    std::vector<std::pair<float, int32_t>> by_value;
    for (int64_t i = 0; i < vocab; ++i) by_value.push_back({b.logits.get(size_t(r * vocab + i)), int32_t(i)});
    std::sort(by_value.begin(), by_value.end(), std::greater<>());
    std::vector<int32_t> seen;
    if (r % 2 == 0)  // the 40 largest drop out
      for (int i = 0; i < 40; ++i) seen.push_back(by_value[size_t(i)].second);
    else  // 5 of the smallest become the top 5
      for (int i = 0; i < 5; ++i) seen.push_back(by_value[size_t(vocab - 1 - i)].second);
    b.add_previous(r, seen);
  }
  check_every_kernel(b, 2, "penalties");
  std::vector<int32_t> got(4);
  run_sample(b.params(got.data()), 1);
  for (int64_t r = 0; r < 4; ++r) {
    std::vector<double> probs(static_cast<size_t>(vocab));
    reference::sampling_probabilities(b.params(got.data()), r, probs.data());
    EXPECT_GT(probs[size_t(got[size_t(r)])], 0.0) << r;
  }
}

// A request's token depends on its own inputs only: the same requests in another order, in a
// batch with others, on one or two threads give the same tokens.
TEST(Sampling, TokensDoNotDependOnTheBatchOrThreads) {
  std::mt19937 rng(3);
  Batch b(20000, DType::f32, 8, rng);
  for (size_t r = 0; r < 8; ++r) {
    b.requests[r].seed = 1000 + r;
    b.requests[r].step = 7;
    b.requests[r].top_k = r % 2 ? 40 : 0;
    b.requests[r].top_p = r % 4 < 2 ? 0.9f : 1.f;
  }
  std::vector<int32_t> one(8), two(8);
  run_sample(b.params(one.data()), 1);
  run_sample(b.params(two.data()), 2);
  EXPECT_EQ(one, two);
  for (int64_t r = 0; r < 8; ++r) {  // request r alone
    SampleParams p = b.params(nullptr);
    int32_t alone = -1;
    p.num_reqs = 1;
    p.logits.data = static_cast<const float*>(b.logits.data()) + r * 20000;
    p.requests = &b.requests[size_t(r)];
    p.prev_indptr = nullptr;
    p.tokens = &alone;
    run_sample(p, 1);
    EXPECT_EQ(alone, one[size_t(r)]) << r;
  }
}

// Over many steps the draws of one request follow its distribution (chi-square, 5 degrees of
// freedom, seeded: the threshold 35.9 has a 1e-6 chance of failing a correct sampler).
TEST(Sampling, DrawsFollowTheDistribution) {
  std::mt19937 rng(4);
  const int64_t vocab = 6, steps = 20000;
  Batch b(vocab, DType::f32, steps, rng, 1.f);
  for (int64_t r = 0; r < steps; ++r) {
    for (int64_t i = 0; i < vocab; ++i) b.logits.set(size_t(r * vocab + i), float(i) * 0.3f);
    b.requests[size_t(r)].temperature = 0.7f;
    b.requests[size_t(r)].seed = 42;
    b.requests[size_t(r)].step = uint64_t(r);
  }
  std::vector<int32_t> tokens(static_cast<size_t>(steps));
  run_sample(b.params(tokens.data()), 2);
  std::vector<double> probs(static_cast<size_t>(vocab));
  reference::sampling_probabilities(b.params(tokens.data()), 0, probs.data());
  std::vector<double> seen(size_t(vocab), 0);
  for (int32_t t : tokens) seen[size_t(t)] += 1;
  double chi2 = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    const double expect = probs[size_t(i)] * double(steps);
    chi2 += (seen[size_t(i)] - expect) * (seen[size_t(i)] - expect) / expect;
  }
  EXPECT_LT(chi2, 35.9);
}

TEST(Sampling, LargeVocabularyAndLogprobs) {
  std::mt19937 rng(5);
  const int64_t vocab = 152064;
  Batch b(vocab, DType::bf16, 4, rng, 3.f);
  b.requests[0].top_k = 50;
  b.requests[0].top_p = 0.9f;
  b.requests[1].top_p = 0.95f;
  b.requests[2].temperature = 0.f;
  b.requests[3].min_p = 0.01f;
  for (size_t r = 0; r < 4; ++r) b.requests[r].seed = 77 + r;
  check_every_kernel(b, 2, "large");
  std::vector<int32_t> got(4), want(4);
  std::vector<float> lp(4), want_lp(4);
  run_sample(b.params(got.data(), lp.data()), 2);
  reference::sample(b.params(want.data(), want_lp.data()));
  for (int64_t r = 0; r < 4; ++r) {
    // Reference at the kernel's token: the raw log-softmax, whose fp32 sum of vocab weights is
    // within (vocab + 4) 2^-24 of the exact sum (a log error of as much), and exp within 2^-22.
    std::vector<int32_t> at(4, got[size_t(r)]);
    const SampleParams p = b.params(nullptr);
    double m = -INFINITY, total = 0;
    for (int64_t i = 0; i < vocab; ++i) m = std::max(m, double(b.logits.get(size_t(r * vocab + i))));
    for (int64_t i = 0; i < vocab; ++i) total += std::exp(double(b.logits.get(size_t(r * vocab + i))) - m);
    const double exact = double(b.logits.get(size_t(r * vocab + got[size_t(r)]))) - m - std::log(total);
    EXPECT_NEAR(lp[size_t(r)], exact, (double(vocab) + 4) * kEps32 + std::ldexp(1.0, -21) + 4 * kEps32 * std::fabs(exact))
        << r;
    (void)p;
  }
}

TEST(Sampling, MaskedTokensAreNeverDrawn) {
  std::mt19937 rng(6);
  Batch b(3000, DType::f32, 16, rng);
  for (int64_t r = 0; r < 16; ++r) {
    for (int64_t i = 0; i < 3000; ++i)
      if (i % 10) b.logits.set(size_t(r * 3000 + i), -INFINITY);
    b.requests[size_t(r)].seed = uint64_t(r);
    b.requests[size_t(r)].top_p = r % 2 ? 0.9f : 1.f;
    b.requests[size_t(r)].temperature = r % 3 ? 1.f : 0.f;
  }
  testutil::for_each_kernel("sampling", [] { return sample_kernel_name(); }, [&](const std::string& kernel) {
    std::vector<int32_t> got(16);
    run_sample(b.params(got.data()), 2);
    for (int32_t t : got) EXPECT_EQ(t % 10, 0) << kernel;
  });
}

TEST(Sampling, Errors) {
  std::mt19937 rng(7);
  Batch b(64, DType::f32, 2, rng);
  std::vector<int32_t> tokens(2);
  auto bad = [&](auto change, std::initializer_list<const char*> words) {
    Batch c = b;
    SampleParams p = c.params(tokens.data());
    change(c, p);
    expect_error([&] { run_sample(p, 1); }, words);
    expect_error([&] { reference::sample(p); }, words);
  };
  bad([](Batch& c, SampleParams& p) { c.requests[1].top_p = 0.f; p.requests = c.requests.data(); },
      {"requests[1].top_p = 0", "(0, 1]"});
  bad([](Batch& c, SampleParams& p) { c.requests[0].top_k = -1; p.requests = c.requests.data(); },
      {"requests[0].top_k = -1"});
  bad([](Batch& c, SampleParams& p) { c.requests[0].min_p = 1.5f; p.requests = c.requests.data(); },
      {"min_p = 1.5", "[0, 1]"});
  bad([](Batch& c, SampleParams& p) { c.requests[0].repetition_penalty = 0.f; p.requests = c.requests.data(); },
      {"repetition_penalty = 0"});
  bad([](Batch& c, SampleParams& p) { c.requests[0].temperature = NAN; p.requests = c.requests.data(); },
      {"temperature = nan", "finite"});
  bad([](Batch& c, SampleParams& p) {
        c.add_previous(1, {3, 64});
        p = c.params(p.tokens);
      },
      {"prev_tokens[1] = 64", "[0, vocab = 64)"});
  bad([](Batch&, SampleParams& p) { p.logits.stride_token = 63; }, {"stride_token = 63", "vocab = 64"});
  bad([](Batch&, SampleParams& p) { p.tokens = nullptr; }, {"tokens is null"});
  bad([](Batch& c, SampleParams& p) {
        c.logits.set(64 + 5, NAN);
        p.logits.data = c.logits.data();
      },
      {"logits[1][5] = nan", "NaN and +inf are refused"});
  bad([](Batch& c, SampleParams& p) {
        for (int64_t i = 0; i < 64; ++i) c.logits.set(size_t(i), -INFINITY);
        p.logits.data = c.logits.data();
      },
      {"every logit of request 0 is -inf"});
  SampleParams p = b.params(tokens.data());
  p.num_threads = 1;
  std::vector<uint8_t> small(sample_workspace_size(p) / 2 + 64);
  p.workspace = small.data() + (64 - reinterpret_cast<uintptr_t>(small.data()) % 64) % 64;
  p.workspace_bytes = sample_workspace_size(p) / 2;
  expect_error([&] { sample(p); }, {"workspace_bytes", "sample_workspace_size"});
}

}  // namespace
