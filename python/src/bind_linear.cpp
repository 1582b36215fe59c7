// Quantized weights (quantize, importers, save / load) and linear.
#include <pybind11/stl.h>

#include "bindings.hpp"

namespace pagedinfer::python {

namespace {

QuantZero parse_zero(const std::string& s) {
  if (s == "symmetric") return QuantZero::symmetric;
  if (s == "zero_point") return QuantZero::zero_point;
  if (s == "float_offset") return QuantZero::float_offset;
  throw Error("pagedinfer: zero '" + s + "' must be symmetric, zero_point or float_offset");
}

const char* zero_name(QuantZero z) {
  switch (z) {
    case QuantZero::symmetric: return "symmetric";
    case QuantZero::zero_point: return "zero_point";
    case QuantZero::float_offset: return "float_offset";
    case QuantZero::none: return "none";
  }
  return "?";
}

LinearActivations parse_activations(const std::string& s) {
  if (s == "float") return LinearActivations::float_;
  if (s == "int8") return LinearActivations::int8_per_token;
  throw Error("pagedinfer: activations '" + s + "' must be 'float' or 'int8'");
}

const int32_t* int32_data(const Borrowed& b, int dims) {
  b.dims(dims).dtype_is(kDLInt, 32, "int32").contiguous();
  return static_cast<const int32_t*>(b.data());
}

// fp16 scales, as a float16 tensor or its int16 / uint16 bits.
const uint16_t* fp16_bits(const Borrowed& b) {
  if (!b.is(kDLFloat, 16) && !b.is(kDLInt, 16) && !b.is(kDLUInt, 16))
    throw Error("pagedinfer: " + b.name() + " must be float16 (or its 16-bit patterns)");
  b.dims(2).contiguous();
  return static_cast<const uint16_t*>(b.data());
}

template <void (*Run)(const QuantizedWeight&, const LinearParams&)>
py::object linear_call(const QuantizedWeight& w, py::handle x_obj, py::object out, py::handle bias_obj,
                       py::handle residual_obj, const std::string& activations, bool silu_mul, py::object out_dtype,
                       int threads) {
  Borrowed x(x_obj, "x");
  x.dims(2);
  LinearParams p;
  p.m = x.size(0);
  p.k = x.size(1);
  p.x = x.tokens();
  p.activations = parse_activations(activations);
  p.silu_mul = silu_mul;
  p.num_threads = threads;
  const int64_t n_out = linear_out_features(w, p);
  if (out.is_none())
    out = empty_like_dtype({p.m, n_out}, out_dtype.is_none() ? x.dtype() : parse_dtype(py::str(out_dtype)));
  Borrowed y(out, "out");
  y.dims(2);
  p.y = y.out_tokens();
  std::unique_ptr<Borrowed> bias, res;
  if (given(bias_obj)) {
    bias = std::make_unique<Borrowed>(bias_obj, "bias");
    bias->dims(1).contiguous();
    p.bias = bias->data();
    p.bias_dtype = bias->dtype();
  }
  if (given(residual_obj)) {
    res = std::make_unique<Borrowed>(residual_obj, "residual");
    res->dims(2);
    p.residual = res->tokens();
  }
  p.workspace_bytes = linear_workspace_size(w, p);
  Scratch ws(p.workspace_bytes);
  p.workspace = ws.get();
  {
    py::gil_scoped_release nogil;
    Run(w, p);
  }
  return out;
}

void linear_kernel(const QuantizedWeight& w, const LinearParams& p) { linear(w, p); }
void linear_reference(const QuantizedWeight& w, const LinearParams& p) { reference::linear(w, p); }

template <void (*Run)(const QuantizedWeight&, const LinearParams&)>
void def_linear(py::module_& m) {
  m.def("linear", &linear_call<Run>, py::arg("weight"), py::arg("x"), py::arg("out") = py::none(),
        py::arg("bias") = py::none(), py::arg("residual") = py::none(), py::arg("activations") = "float",
        py::arg("silu_mul") = false, py::arg("out_dtype") = py::none(), py::arg("num_threads") = 1,
        "y = x W^T (+ bias) (SiLU(gate) * up) (+ residual): x [m, k]; returns out [m, n_out] (x's dtype unless "
        "out_dtype); activations 'float' (W4A16 / W8A16) or 'int8' (dynamic per token, W4A8 / W8A8).");
}

}  // namespace

void bind_linear(py::module_& m, py::module_& ref) {
  py::class_<QuantizedWeight>(m, "QuantizedWeight", "A packed int4 / int8 or unquantized bf16 / fp16 weight [n, k] (quant.hpp).")
      .def_property_readonly("n", &QuantizedWeight::n)
      .def_property_readonly("k", &QuantizedWeight::k)
      .def_property_readonly("bits", [](const QuantizedWeight& w) { return w.format().bits; })
      .def_property_readonly("group_size", &QuantizedWeight::group_size)
      .def_property_readonly("zero", [](const QuantizedWeight& w) { return std::string(zero_name(w.format().zero)); })
      .def_property_readonly("dtype",
                             [](const QuantizedWeight& w) -> py::object {
                               if (w.format().quantized()) return py::none();
                               return py::str(dtype_name(w.format().dtype));
                             })
      .def_property_readonly("gate_up", &QuantizedWeight::gate_up)
      .def_property_readonly("act_order", &QuantizedWeight::act_order)
      .def_property_readonly("nbytes", &QuantizedWeight::bytes)
      .def(
          "dequantize",
          [](const QuantizedWeight& w) {
            py::object t = empty_with({w.n(), w.k()}, "float64");
            Borrowed b(t, "dequantized");
            auto* d = static_cast<double*>(b.data());
            {
              py::gil_scoped_release nogil;
              for (int64_t r = 0; r < w.n(); ++r)
                for (int64_t c = 0; c < w.k(); ++c) d[r * w.k() + c] = w.dequantize(r, c);
            }
            return t;
          },
          "The exact dequantized weight, float64 [n, k] (scale * q + offset).");
  m.def(
      "quantize",
      [](py::handle w_obj, int32_t bits, int32_t group_size, const std::string& zero, bool gate_up, int threads,
         py::object dtype) {
        Borrowed w(w_obj, "weight");
        w.dims(2);
        if (w.size(1) > 1 && w.stride(1) != 1) throw Error("pagedinfer: weight must have unit stride along k");
        QuantFormat f{bits, group_size, bits == 16 ? QuantZero::none : parse_zero(zero)};
        if (bits == 16) {  // W16A16: the values of `dtype`, by default the weight's own bf16 / fp16
          const DType values = dtype.is_none() ? w.dtype() : parse_dtype(py::str(dtype));
          if (values != DType::bf16 && values != DType::f16)
            throw Error("pagedinfer: bits=16 keeps bf16 or float16 values: pass dtype= for a float32 weight");
          f = QuantFormat::unquantized(values);
        }
        QuantizeOptions o(f);
        o.gate_up = gate_up;
        o.num_threads = threads;
        py::gil_scoped_release nogil;
        return quantize(w.data(), w.dtype(), w.size(0), w.size(1), w.stride(0), o);
      },
      py::arg("weight"), py::arg("bits") = 4, py::arg("group_size") = 128, py::arg("zero") = "zero_point",
      py::arg("gate_up") = false, py::arg("num_threads") = 1, py::arg("dtype") = py::none(),
      "Round-to-nearest quantization of a float [n, k] weight; bits=16 packs it unquantized (W16A16) as bf16 or "
      "float16 values (dtype, default the weight's; group_size and zero are not used).");
  m.def(
      "import_awq",
      [](py::handle qweight, py::handle qzeros, py::handle scales, int32_t group_size, int num_threads) {
        Borrowed qw(qweight, "qweight"), qz(qzeros, "qzeros"), s(scales, "scales");
        const int32_t *q = int32_data(qw, 2), *z = int32_data(qz, 2);
        const uint16_t* sc = fp16_bits(s);
        py::gil_scoped_release unlocked;
        return import_awq(q, z, sc, qw.size(1) * 8, qw.size(0), group_size, num_threads);
      },
      py::arg("qweight"), py::arg("qzeros"), py::arg("scales"), py::arg("group_size") = 128, py::arg("num_threads") = 1,
      "AutoAWQ GEMM tensors: qweight [k, n/8] int32, qzeros [k/g, n/8] int32, scales [k/g, n] float16.");
  m.def(
      "import_gptq",
      [](py::handle qweight, py::handle qzeros, py::handle scales, py::handle g_idx, int32_t bits, int32_t group_size,
         int num_threads) {
        Borrowed qw(qweight, "qweight"), qz(qzeros, "qzeros"), s(scales, "scales");
        const int32_t* q = int32_data(qw, 2);
        std::unique_ptr<Borrowed> gi;
        const int32_t* g = nullptr;
        if (given(g_idx)) {
          gi = std::make_unique<Borrowed>(g_idx, "g_idx");
          g = int32_data(*gi, 1);
        }
        const int32_t* z = int32_data(qz, 2);
        const uint16_t* sc = fp16_bits(s);
        py::gil_scoped_release unlocked;
        return import_gptq(q, z, sc, g, qw.size(1), qw.size(0) * 32 / bits, bits, group_size, num_threads);
      },
      py::arg("qweight"), py::arg("qzeros"), py::arg("scales"), py::arg("g_idx") = py::none(), py::arg("bits") = 4,
      py::arg("group_size") = 128, py::arg("num_threads") = 1, "AutoGPTQ tensors: qweight [k * bits / 32, n] int32, qzeros, scales, g_idx [k].");
  for (const char* fmt : {"q4_0", "q8_0"}) {
    const bool q4 = std::string(fmt) == "q4_0";
    m.def(
        (std::string("import_") + fmt).c_str(),
        [q4](py::handle blocks, int64_t n, int64_t k, int num_threads) {
          Borrowed b(blocks, "blocks");
          b.contiguous();
          const int64_t need = n * (k / 32) * (q4 ? 18 : 34);
          if (b.numel() * (b.t().dtype.bits / 8) < need) throw Error("pagedinfer: blocks holds fewer bytes than n * k / 32 blocks");
          py::gil_scoped_release unlocked;
          return q4 ? import_q4_0(b.data(), n, k, num_threads) : import_q8_0(b.data(), n, k, num_threads);
        },
        py::arg("blocks"), py::arg("n"), py::arg("k"), py::arg("num_threads") = 1, "llama.cpp blocks (bytes) of a [n, k] weight.");
  }
  m.def(
      "shard_output_features",
      [](const QuantizedWeight& w, int rank, int ranks, std::vector<int64_t> segments, int num_threads) {
        py::gil_scoped_release unlocked;
        return shard_output_features(w, rank, ranks, segments, num_threads);
      },
      py::arg("weight"), py::arg("rank"), py::arg("ranks"), py::arg("segments") = std::vector<int64_t>{},
      py::arg("num_threads") = 1, "Column-parallel shard: rank's part of every segment of rows (QKV: [q, k, v]).");
  m.def(
      "shard_input_features",
      [](const QuantizedWeight& w, int rank, int ranks, int num_threads) {
        py::gil_scoped_release unlocked;
        return shard_input_features(w, rank, ranks, num_threads);
      },
      py::arg("weight"), py::arg("rank"), py::arg("ranks"), py::arg("num_threads") = 1,
      "Row-parallel shard: columns [rank k / ranks, (rank + 1) k / ranks), whole groups.");
  m.def("save_weight", [](const QuantizedWeight& w) {
    const std::vector<uint8_t> bytes = save_weight(w);
    return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  });
  m.def("load_weight", [](py::bytes data) {
    const std::string s = data;
    return load_weight(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  });
  def_linear<linear_kernel>(m);
  def_linear<linear_reference>(ref);
  m.def(
      "linear_kernel_name",
      [](const QuantizedWeight& w, int64_t m, const std::string& x_dtype, const std::string& activations) {
        LinearParams p;
        p.m = m;
        p.k = w.k();
        p.x.dtype = parse_dtype(x_dtype);
        p.activations = parse_activations(activations);
        return std::string(linear_kernel_name(w, p));
      },
      py::arg("weight"), py::arg("m"), py::arg("x_dtype") = "bfloat16", py::arg("activations") = "float");
}

}  // namespace pagedinfer::python
