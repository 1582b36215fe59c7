// merge_states against the log-sum-exp formula in double: every dtype, rows that only one side
// or neither side saw, strided inputs, an fp32 output, in place, and its errors.
#include <gtest/gtest.h>

#include <limits>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

TEST(MergeStates, MatchesTheLogSumExpFormulaInDouble) {
  const int32_t tokens = 3, heads = 5, dim = 24;
  const float inf = std::numeric_limits<float>::infinity();
  std::mt19937 rng(7);
  for (DType t : {DType::f32, DType::bf16, DType::f16}) {
    Buffer a(t, tokens * heads * dim), b(t, tokens * heads * dim), out(t, tokens * heads * dim);
    a.fill_uniform(rng, -1, 1);
    b.fill_uniform(rng, -1, 1);
    std::vector<float> la(tokens * heads), lb(tokens * heads), lo(tokens * heads);
    std::uniform_real_distribution<float> u(-20, 20);
    for (std::size_t i = 0; i < la.size(); ++i) la[i] = u(rng), lb[i] = u(rng);
    la[0] = -inf;             // only b saw keys
    lb[1] = -inf;             // only a saw keys
    la[2] = lb[2] = -inf;     // neither: out 0, lse -inf
    MergeStatesParams mp;
    mp.num_tokens = tokens;
    mp.num_heads = heads;
    mp.head_dim = dim;
    mp.a = {a.data(), t, heads * dim, dim};
    mp.lse_a = la.data();
    mp.b = {b.data(), t, heads * dim, dim};
    mp.lse_b = lb.data();
    mp.out = {out.data(), t, heads * dim, dim};
    mp.lse_out = lo.data();
    merge_states(mp);
    for (std::size_t row = 0; row < la.size(); ++row) {
      const double m = std::max(la[row], lb[row]);
      const double ea = std::isinf(la[row]) ? 0 : std::exp(la[row] - m), eb = std::isinf(lb[row]) ? 0 : std::exp(lb[row] - m);
      const double lse = ea + eb > 0 ? m + std::log(ea + eb) : -inf;
      if (std::isinf(lse)) ASSERT_EQ(lo[row], -inf);
      else ASSERT_NEAR(lo[row], lse, 4e-6 * std::fabs(lse) + 1e-6);
      for (int32_t d = 0; d < dim; ++d) {
        const std::size_t i = row * dim + d;
        const double want = ea + eb > 0 ? (ea * a.get(i) + eb * b.get(i)) / (ea + eb) : 0.0;
        ASSERT_NEAR(out.get(i), want, unit_roundoff(t) * std::fabs(want) + 1e-6) << dtype_name(t) << " row " << row;
      }
    }
    // Strided: b as every other head of a wider buffer, out in fp32 with a padded token stride.
    Buffer wide(t, tokens * heads * dim * 2), out32(DType::f32, tokens * (heads * dim + 8));
    for (int64_t tok = 0; tok < tokens; ++tok)
      for (int32_t h = 0; h < heads; ++h)
        for (int32_t d = 0; d < dim; ++d) wide.set(size_t((tok * heads + h) * 2 * dim + d), b.get(size_t((tok * heads + h) * dim + d)));
    const auto round_to = [](DType type, float x) {
      Buffer one(type, 1);
      one.set(0, x);
      return one.get(0);
    };
    MergeStatesParams sp = mp;
    sp.b = {wide.data(), t, heads * 2 * dim, 2 * dim};
    sp.out = {out32.data(), DType::f32, heads * dim + 8, dim};
    merge_states(sp);
    for (int64_t tok = 0; tok < tokens; ++tok)
      for (int32_t h = 0; h < heads; ++h)
        for (int32_t d = 0; d < dim; ++d)
          ASSERT_EQ(round_to(t, out32.get(size_t(tok * (heads * dim + 8) + h * dim + d))),
                    out.get(size_t((tok * heads + h) * dim + d)));
    // In place: out aliases a; a shifted alias is refused.
    MergeStatesParams ip = mp;
    ip.out = {a.data(), t, heads * dim, dim};
    ip.lse_out = la.data();
    merge_states(ip);
    for (std::size_t i = 0; i < a.n; ++i) ASSERT_EQ(a.get(i), out.get(i));
    ip.out.data = static_cast<char*>(a.data()) + dtype_size(t) * dim;
    ip.num_tokens = tokens - 1;
    expect_error([&] { merge_states(ip); }, {"merge_states", "out must be a itself"});
    ip.num_tokens = tokens;
    ip.out.data = out.data();
    ip.lse_a = nullptr;
    expect_error([&] { merge_states(ip); }, {"lse_a and lse_b must not be null"});
  }
}

}  // namespace
