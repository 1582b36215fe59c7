// Compile-time counts from run-time values: register blocks need their row (or key, or column)
// count as a template argument, and unrolled loops their step.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace pagedinfer::detail {

// Calls f(std::integral_constant<int, C>) for the C of Counts that equals n; nothing if none.
template <int... Counts, class F>
void with_count_in(int64_t n, F&& f, std::integer_sequence<int, Counts...> = {}) {
  (void)((n == Counts ? (f(std::integral_constant<int, Counts>()), true) : false) || ...);
}

// The sequence {Scale * (I + 1)...}: 1..N for Scale 1, the even counts for Scale 2.
template <int Scale, int... I>
constexpr auto counts_from_one(std::integer_sequence<int, I...>) {
  return std::integer_sequence<int, Scale * (I + 1)...>();
}

// For n in [1, N].
template <int N, class F>
void with_count(int64_t n, F&& f) {
  with_count_in(n, f, counts_from_one<1>(std::make_integer_sequence<int, N>()));
}

// The rows a block of up to MR rows computes when `left` rows remain: all MR, or the even count
// that covers them (2, 4, 6, ...): blocks are only instantiated for those counts.
template <int MR, class F>
void with_block_rows(int64_t left, F&& f) {
  if constexpr (MR <= 2) {
    f(std::integral_constant<int, MR>());
  } else {
    const int64_t even = left + (left & 1);
    if (even >= MR) return f(std::integral_constant<int, MR>());
    with_count_in(even, f, counts_from_one<2>(std::make_integer_sequence<int, (MR - 1) / 2>()));
  }
}

// Calls step(i, set) for i in [begin, end), with set cycling through [0, Sets) as a compile-time
// constant: the loop is unrolled by Sets, its tail on set 0.
template <int Sets, class Step, int... S>
inline void for_each_unrolled(int64_t begin, int64_t end, Step&& step, std::integer_sequence<int, S...> = {}) {
  if constexpr (sizeof...(S) == 0) {
    for_each_unrolled<Sets>(begin, end, step, std::make_integer_sequence<int, Sets>());
  } else {
    int64_t i = begin;
    for (; i + Sets <= end; i += Sets) (step(i + S, std::integral_constant<int, S>()), ...);
    for (; i < end; ++i) step(i, std::integral_constant<int, 0>());
  }
}

}  // namespace pagedinfer::detail
