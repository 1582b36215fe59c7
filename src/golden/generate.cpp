// generate(): reads the spec, runs the op's case generator, records the spec as used.
#include "golden/spec.hpp"

namespace pagedinfer::golden {

File generate(const std::string& spec_json) {
  detail::json j;
  try {
    j = detail::json::parse(spec_json);
  } catch (const detail::json::exception& e) {
    pagedinfer::detail::fail("golden", "the case spec is not JSON (", e.what(), ")");
  }
  detail::Spec spec(std::move(j));
  const std::string op = spec.choice("op", "", {"attention", "linear", "rope", "rms_norm"});
  spec.get<std::string>("name", op);
  std::mt19937_64 rng(spec.get<uint64_t>("seed", 0));
  File file;
  if (op == "attention") detail::generate_attention(spec, rng, file);
  if (op == "linear") detail::generate_linear(spec, rng, file);
  if (op == "rope") detail::generate_rope(spec, rng, file);
  if (op == "rms_norm") detail::generate_rms_norm(spec, rng, file);
  file.metadata["pagedinfer.spec"] = spec.finish().dump();
  file.metadata["pagedinfer.version"] = "1";
  file.metadata["format"] = "pt";  // what Hugging Face's loaders expect in __metadata__
  return file;
}

}  // namespace pagedinfer::golden
