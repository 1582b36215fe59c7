// Threading: the caller chooses the thread count; OpenMP provides the team. Independent
// calls from different caller threads each get their own team, so concurrent calls are safe.
#pragma once
#include <algorithm>
#include <cstdint>

#include <omp.h>

namespace pagedinfer::detail {

// Runs body(i) for i in [0, n) on up to num_threads threads. Iterations are handed out
// dynamically in chunks of `grain`; body must not depend on which thread runs it.
template <class Body>
void parallel_for(int64_t n, int num_threads, int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (num_threads <= 1 || n <= grain) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, grain)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// Runs body(begin, end) over [0, n) split into one contiguous, equal range per thread, for
// streaming kernels whose items all cost the same: each thread then reads one forward stream
// that the hardware prefetchers follow (dynamic chunks interleave the threads' addresses and
// break the streams: RoPE over 512 tokens ran at 0.45-0.75 of bandwidth that way). At least
// min_items per thread, so that small jobs stay on fewer threads.
template <class Body>
void parallel_ranges(int64_t n, int num_threads, int64_t min_items, Body&& body) {
  if (n <= 0) return;
  const int64_t teams = std::max<int64_t>(1, std::min<int64_t>(num_threads, n / std::max<int64_t>(1, min_items)));
  if (teams <= 1) return body(int64_t(0), n);
#pragma omp parallel for num_threads(int(teams)) schedule(static, 1)
  for (int64_t t = 0; t < teams; ++t) body(n * t / teams, n * (t + 1) / teams);
}

// Runs body(thread_index) once on each thread of a team of at most num_threads threads
// (thread_index < num_threads). The team may be smaller: share work through a counter.
template <class Body>
void parallel_team(int num_threads, Body&& body) {
  if (num_threads <= 1) {
    body(0);
    return;
  }
#pragma omp parallel num_threads(num_threads)
  {
    body(omp_get_thread_num());
  }
}

}  // namespace pagedinfer::detail
