// Tensor-parallel shards of a packed weight (quant.hpp): a shard is described by which source
// packed column each of its rows reads, which source packed k each of its packed k reads, and
// which source group each of its groups takes its scale and zero point from; one copy routine
// builds any shard from those three maps.
#include <algorithm>
#include <numeric>
#include <string>

#include "common/check.hpp"
#include "quant/layout.hpp"
#include "quant/pack.hpp"

namespace pagedinfer {

using Storage = QuantizedWeight::Storage;

namespace {

struct ShardMaps {
  std::vector<int64_t> rows;       // [n'] source weight row of each shard row
  std::vector<int64_t> k_source;   // [k_packed'] source packed k of each shard packed k; -1: zero
  std::vector<int64_t> group_of;   // [groups'] source group of each shard group
  std::vector<int32_t> k_order;    // the shard's k_order (empty: identity)
};

void check_ranks(const char* where, int rank, int ranks, int num_threads) {
  PAGEDINFER_CHECK(ranks >= 1, where, "ranks = ", ranks, " must be >= 1");
  PAGEDINFER_CHECK(rank >= 0 && rank < ranks, where, "rank = ", rank, " is outside [0, ranks = ", ranks, ")");
  detail::check_num_threads(num_threads, where, "num_threads");
}

// Builds the shard of `src` that the maps describe; `dst` is allocated with its shape.
QuantizedWeight copy_shard(const Storage& src, std::shared_ptr<Storage> dst, ShardMaps maps, int num_threads) {
  const int64_t n = dst->n;
  std::vector<int64_t> column_source(size_t(dst->n_packed), -1);  // shard packed column -> source packed column
  for (int64_t r = 0; r < n; ++r) column_source[size_t(dst->packed_column(r))] = src.packed_column(maps.rows[size_t(r)]);
  const auto element = [&](int64_t p, int64_t i) -> uint32_t {
    const int64_t c = column_source[size_t(p)], k = maps.k_source[size_t(i)];
    return c < 0 || k < 0 ? 0u : src.get_q(c, k);
  };
  detail::pack_q<detail::SourceOrder::n_major>(*dst, dst->n_packed, dst->k_packed, num_threads, element);
  // Group params (unquantized weights have none).
  if (dst->quantized()) {
    detail::for_each_tile(*dst, num_threads, [&](int64_t t) {
      for (int64_t p = t * Storage::kTileN; p < (t + 1) * Storage::kTileN; ++p) {
        const int64_t c = column_source[size_t(p)];
        if (c < 0) continue;  // padding columns keep scale 0
        for (int64_t g = 0; g < dst->groups; ++g) {
          const int64_t from = src.param(c, maps.group_of[size_t(g)]);
          dst->scales[size_t(dst->param(p, g))] = src.scales[size_t(from)];
          if (!dst->zeros.empty()) dst->zeros[size_t(dst->param(p, g))] = src.zeros[size_t(from)];
        }
      }
    });
  }
  if (!maps.k_order.empty()) {
    dst->k_order = std::move(maps.k_order);
    dst->index_k_order();
  }
  return QuantizedWeight(std::move(dst));
}

// Source packed k of every packed k, keeping the source's order (column-parallel shards).
ShardMaps whole_k(const Storage& s) {
  ShardMaps m;
  m.k_source.resize(size_t(s.k_packed));
  std::iota(m.k_source.begin(), m.k_source.end(), int64_t(0));
  m.group_of.resize(size_t(s.groups));
  std::iota(m.group_of.begin(), m.group_of.end(), int64_t(0));
  m.k_order = s.k_order;
  return m;
}

// An act-order weight's columns [k0, k0 + width): each source group's members among them, in
// packed order, padded to whole groups of `group` (the largest of 128, 64, 32 up to the source
// group that divides every run, else 32). Returns the shard's packed k and group.
std::pair<int64_t, int64_t> act_order_runs(const Storage& s, int64_t k0, int64_t width, ShardMaps& m) {
  std::vector<std::vector<int64_t>> runs(size_t(s.groups));
  for (int64_t i = 0; i < s.k_packed; ++i) {
    const int32_t col = s.k_order[size_t(i)];
    if (col >= k0 && col < k0 + width) runs[size_t(i / s.group)].push_back(i);
  }
  int64_t group = 32;
  for (int64_t g : {int64_t(128), int64_t(64)})
    if (g <= s.group && s.group % g == 0 &&
        std::all_of(runs.begin(), runs.end(), [&](const auto& r) { return int64_t(r.size()) % g == 0; })) {
      group = g;
      break;
    }
  for (size_t g = 0; g < runs.size(); ++g) {
    const int64_t padded = (int64_t(runs[g].size()) + group - 1) / group * group;
    for (int64_t j = 0; j < padded; ++j) {
      const bool real = j < int64_t(runs[g].size());
      m.k_source.push_back(real ? runs[g][size_t(j)] : -1);
      m.k_order.push_back(real ? int32_t(s.k_order[size_t(runs[g][size_t(j)])] - k0) : -1);
      if (j % group == 0) m.group_of.push_back(int64_t(g));
    }
  }
  return {int64_t(m.k_source.size()), group};
}

}  // namespace

QuantizedWeight shard_output_features(const QuantizedWeight& w, int rank, int ranks,
                                      const std::vector<int64_t>& segments, int num_threads) {
  constexpr const char* where = "shard_output_features";
  const Storage& s = w.storage();
  check_ranks(where, rank, ranks, num_threads);
  std::vector<int64_t> parts = segments;
  if (parts.empty()) parts = s.gate_up ? std::vector<int64_t>{s.n / 2, s.n / 2} : std::vector<int64_t>{s.n};
  int64_t total = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    PAGEDINFER_CHECK(parts[i] > 0 && parts[i] % ranks == 0, where, "segments[", i, "] = ", parts[i],
                     " must be positive and divide by ranks = ", ranks);
    total += parts[i];
  }
  PAGEDINFER_CHECK(total == s.n, where, "the segments add up to ", total, ", not the weight's n = ", s.n);
  PAGEDINFER_CHECK(!s.gate_up || (parts.size() == 2 && parts[0] == parts[1]), where,
                   "a gate_up weight has two equal segments (gate, up), got ", parts.size());
  ShardMaps m = whole_k(s);
  int64_t offset = 0;
  for (int64_t part : parts) {
    const int64_t each = part / ranks;
    for (int64_t r = 0; r < each; ++r) m.rows.push_back(offset + rank * each + r);
    offset += part;
  }
  const bool padded = s.k_packed != s.k && s.format.group_size > 0;
  auto dst = detail::new_storage(where, total / ranks, s.k, s.format, s.gate_up, -1, padded ? s.k_packed : 0);
  return copy_shard(s, std::move(dst), std::move(m), num_threads);
}

QuantizedWeight shard_input_features(const QuantizedWeight& w, int rank, int ranks, int num_threads) {
  constexpr const char* where = "shard_input_features";
  const Storage& s = w.storage();
  check_ranks(where, rank, ranks, num_threads);
  PAGEDINFER_CHECK(s.k % ranks == 0, where, "k = ", s.k, " must divide by ranks = ", ranks);
  const int64_t width = s.k / ranks, k0 = rank * width;
  ShardMaps m;
  m.rows.resize(size_t(s.n));
  std::iota(m.rows.begin(), m.rows.end(), int64_t(0));
  QuantFormat f = s.format;
  int64_t k_packed_padded = 0;
  if (!s.k_order.empty()) {
    const auto [k_packed, group] = act_order_runs(s, k0, width, m);
    f.group_size = int32_t(group);
    if (k_packed != width) k_packed_padded = k_packed;
  } else if (f.group_size > 0) {
    PAGEDINFER_CHECK(width % s.group == 0, where, "k / ranks = ", width, " must be a multiple of the group size ",
                     s.group, " (shards hold whole groups)");
    for (int64_t i = 0; i < width; ++i) m.k_source.push_back(k0 + i);
    for (int64_t g = 0; g < width / s.group; ++g) m.group_of.push_back(k0 / s.group + g);
  } else {  // per-channel: one group; packed k padded to a multiple of 8 as usual
    for (int64_t i = 0; i < (width + 7) / 8 * 8; ++i) m.k_source.push_back(i < width ? k0 + i : -1);
    m.group_of.push_back(0);
  }
  auto dst = detail::new_storage(where, s.n, width, f, s.gate_up, -1, k_packed_padded);
  return copy_shard(s, std::move(dst), std::move(m), num_threads);
}

}  // namespace pagedinfer
