#include "common/registry.hpp"

#include <cstdlib>

#include "common/check.hpp"

namespace pagedinfer {

namespace {

using detail::OpRegistry;

OpRegistry* const* all_ops(std::size_t* n) {
  static OpRegistry* const ops[] = {&detail::attention_registry(),   &detail::convert_registry(),
                                    &detail::linear_registry(),      &detail::norm_registry(),
                                    &detail::quantize_kv_registry(), &detail::rope_registry(),
                                    &detail::sampling_registry()};
  *n = sizeof(ops) / sizeof(ops[0]);
  return ops;
}

OpRegistry& find_op(const std::string& op, const char* where) {
  std::size_t n = 0;
  OpRegistry* const* ops = all_ops(&n);
  for (std::size_t i = 0; i < n; ++i)
    if (op == ops[i]->op) return *ops[i];
  detail::fail(where, "unknown op '", op,
               "' (expected attention, convert, linear, norm, quantize_kv, rope or sampling)");
}

int find_kernel(const OpRegistry& reg, const std::string& name, const char* where) {
  for (std::size_t i = 0; i < reg.count; ++i)
    if (name == reg.infos[i].name) return int(i);
  std::string known;
  for (std::size_t i = 0; i < reg.count; ++i) known += std::string(i ? ", " : "") + reg.infos[i].name;
  detail::fail(where, "no ", reg.op, " kernel is named '", name, "' (registered: ", known, ")");
}

// PAGEDINFER_KERNEL="op=name,op=name", applied once, before the first call that reads it.
void force_from_environment() {
  static const bool applied = [] {
    const char* s = std::getenv("PAGEDINFER_KERNEL");
    const std::string spec = s ? s : "";
    std::size_t begin = 0;
    while (begin < spec.size()) {
      std::size_t end = spec.find(',', begin);
      if (end == std::string::npos) end = spec.size();
      const std::string item = spec.substr(begin, end - begin);
      begin = end + 1;
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      PAGEDINFER_CHECK(eq != std::string::npos, "PAGEDINFER_KERNEL", "'", item, "' is not op=kernel");
      OpRegistry& reg = find_op(item.substr(0, eq), "PAGEDINFER_KERNEL");
      reg.forced.store(find_kernel(reg, item.substr(eq + 1), "PAGEDINFER_KERNEL"));
    }
    return true;
  }();
  (void)applied;
}

}  // namespace

namespace detail {
// Called by the tables' registries at their construction (see each dispatch.cpp).
void apply_forced_kernels_from_environment() { force_from_environment(); }
}  // namespace detail

std::vector<std::string> kernel_ops() {
  return {"attention", "convert", "linear", "norm", "quantize_kv", "rope", "sampling"};
}

std::vector<KernelInfo> registered_kernels(const std::string& op) {
  force_from_environment();
  std::vector<KernelInfo> out;
  std::size_t n = 0;
  OpRegistry* const* ops = all_ops(&n);
  for (std::size_t i = 0; i < n; ++i)
    if (op.empty() || op == ops[i]->op) out.insert(out.end(), ops[i]->infos, ops[i]->infos + ops[i]->count);
  if (!op.empty() && out.empty()) find_op(op, "registered_kernels");  // throws for an unknown op
  return out;
}

bool kernel_runs_here(const KernelInfo& kernel) { return (kernel.needs & ~active_features()) == 0; }

void force_kernel(const std::string& op, const std::string& name) {
  force_from_environment();
  OpRegistry& reg = find_op(op, "force_kernel");
  reg.forced.store(name.empty() ? -1 : find_kernel(reg, name, "force_kernel"));
}

std::string forced_kernel(const std::string& op) {
  force_from_environment();
  const OpRegistry& reg = find_op(op, "forced_kernel");
  const int i = reg.forced.load();
  return i < 0 ? "" : reg.infos[i].name;
}

}  // namespace pagedinfer
