// What the linear() tests share: a call with its oracle answer and a per-element error bound
// derived from linear.hpp's contract, run on every registered kernel this CPU runs.
#pragma once
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace linear_test {

using namespace pagedinfer;
using testutil::Buffer;

constexpr double kEps32 = 1.0 / (1 << 24);

struct Workspace {
  std::vector<uint8_t> bytes;
  void* ptr = nullptr;
  size_t size = 0;
  void reserve(size_t n) {
    bytes.assign(n + 64, 0xCD);  // garbage: the kernels must not rely on zeroed memory
    ptr = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
    size = n;
  }
};

// W8A8 / W4A8 params for m contiguous fp32 rows of k into fp32 y of n columns.
inline LinearParams int8_params(int64_t m, int64_t k, int64_t n, const Buffer& x, Buffer& y, int threads = 1) {
  LinearParams p;
  p.m = m;
  p.x.data = x.data();
  p.x.dtype = DType::f32;
  p.k = k;
  p.x.stride_token = k;
  p.y.data = y.data();
  p.y.dtype = DType::f32;
  p.y.stride_token = n;
  p.activations = LinearActivations::int8_per_token;
  p.num_threads = threads;
  return p;
}

// linear(w, p) with a fresh workspace.
inline void run_linear(const QuantizedWeight& w, LinearParams p) {
  Workspace ws;
  ws.reserve(linear_workspace_size(w, p));
  p.workspace = ws.ptr;
  p.workspace_bytes = ws.size;
  linear(w, p);
}

// Calls linear(w, p) with every kernel this CPU runs that can compute it, then check(kernel)
// (still forced).
template <class Check>
void on_every_kernel(const QuantizedWeight& w, const LinearParams& p, Check&& check) {
  testutil::for_each_kernel("linear", [&] { return linear_kernel_name(w, p); }, [&](const std::string& kernel) {
    run_linear(w, p);
    check(kernel);
  });
}

// Everything of one call, with the oracle's answer and a derived error bound per element.
struct Call {
  const QuantizedWeight& w;
  LinearParams p;
  Buffer x, y, expected, residual, bias;
  std::vector<double> tol, gate_up;
  int64_t n_out;

  Call(const QuantizedWeight& weight, int64_t m, DType xt, DType yt, LinearActivations mode, std::mt19937& rng,
       bool with_bias = false, bool with_residual = false, bool silu = false)
      : w(weight) {
    p.m = m;
    p.activations = mode;
    p.silu_mul = silu;
    n_out = linear_out_features(w, p);
    p.x.dtype = xt;
    p.k = w.k();
    p.x.stride_token = w.k() + 3;  // rows are not contiguous
    p.y.dtype = yt;
    p.y.stride_token = n_out + 5;
    x = Buffer(xt, size_t(m * p.x.stride_token));
    x.fill_uniform(rng, -1.f, 1.f);
    y = Buffer(yt, size_t(m * p.y.stride_token));
    expected = Buffer(yt, size_t(m * p.y.stride_token));
    p.x.data = x.data();
    if (with_bias) {
      bias = Buffer(DType::bf16, size_t(w.n()));
      bias.fill_uniform(rng, -0.5f, 0.5f);
      p.bias = bias.data();
      p.bias_dtype = DType::bf16;
    }
    if (with_residual) {
      residual = Buffer(yt, size_t(m * p.y.stride_token));
      residual.fill_uniform(rng, -2.f, 2.f);
      p.residual.stride_token = p.y.stride_token;
      p.residual.dtype = p.y.dtype;
    }
    compute_expected();
  }

  // Bound of |kernel - exact| before the final rounding, from linear.hpp's formula: group sums of
  // length L in fp32 and G group terms, over the magnitude sum_k (|s q| + |offset|) |x|; plus, for
  // one row of float x on fixed point (linear.hpp), x's rounding to a step of 2^(e - 30) with
  // max|x| < 2^e, over sum_k (|s q| + |offset|) (elsewhere far below the first term).
  std::vector<double> pre_activation_bounds(const std::vector<double>& xv) const {
    const double L = double(w.group_size()), G = double((w.k() + w.group_size() - 1) / w.group_size());
    double amax = 0;
    for (double v : xv) amax = std::max(amax, std::fabs(v));
    int e = 0;
    std::frexp(amax, &e);
    const double fixed_step = p.activations == LinearActivations::float_ ? std::ldexp(1.0, std::max(e, -96) - 31) : 0;
    std::vector<double> out(size_t(w.n()));
    for (int64_t r = 0; r < w.n(); ++r) {
      double mag = 0, weights = 0;
      for (int64_t i = 0; i < w.k(); ++i) {
        const double wi = w.error_magnitude(r, i);
        mag += wi * std::fabs(xv[size_t(i)]);
        weights += wi;
      }
      out[size_t(r)] = (L + G + 4) * kEps32 * mag + fixed_step * weights;
    }
    return out;
  }

  void compute_expected() {
    p.y.data = expected.data();
    if (residual.n) p.residual.data = residual.data();
    reference::linear(w, p);
    if (p.silu_mul) {  // the gate and up values themselves, for the bound of SiLU(gate) * up
      LinearParams q = p;
      q.silu_mul = false;
      q.residual.data = nullptr;
      q.y.dtype = DType::f32;
      q.y.stride_token = w.n();
      Buffer pre(DType::f32, size_t(p.m * w.n()));
      q.y.data = pre.data();
      reference::linear(w, q);
      gate_up.resize(pre.n);
      for (size_t i = 0; i < pre.n; ++i) gate_up[i] = pre.get(i);
    }
    // Derived tolerance of every output element.
    tol.assign(size_t(p.m * n_out), 0);
    const double u = testutil::unit_roundoff(p.y.dtype);
    for (int64_t m = 0; m < p.m; ++m) {
      std::vector<double> xv(size_t(w.k()));
      const char* xr = static_cast<const char*>(x.data()) + m * p.x.stride_token * dtype_size(p.x.dtype);
      if (p.activations == LinearActivations::int8_per_token) {
        std::vector<int8_t> a(size_t(w.k()));
        const double rs = reference::quantize_activation_row(xr, p.x.dtype, w.k(), a.data());
        for (int64_t i = 0; i < w.k(); ++i) xv[size_t(i)] = rs * a[size_t(i)];
      } else {
        for (int64_t i = 0; i < w.k(); ++i) xv[size_t(i)] = x.get(size_t(m * p.x.stride_token + i));
      }
      const std::vector<double> pre = pre_activation_bounds(xv);
      for (int64_t c = 0; c < n_out; ++c) {
        const double e = expected.get(size_t(m * p.y.stride_token + c));
        double t = pre[size_t(c)];
        if (p.silu_mul) {  // out = silu(g) * u, |silu'| <= 1.1
          const double g = gate_up[size_t(m * w.n() + c)], up = gate_up[size_t(m * w.n() + n_out + c)];
          t = 1.1 * pre[size_t(c)] * std::fabs(up) + std::fabs(g) * pre[size_t(n_out + c)] +
              8 * kEps32 * std::fabs(e);
        }
        t += 4 * kEps32 * (std::fabs(e) + (residual.n ? 2.0 : 0.0));
        tol[size_t(m * n_out + c)] = t + 2.01 * u * std::fabs(e) + 1e-7;
      }
    }
  }

  void run_and_check(int threads, const char* what) {
    p.num_threads = threads;
    Workspace ws;
    ws.reserve(linear_workspace_size(w, p));
    p.workspace = ws.ptr;
    p.workspace_bytes = ws.size;
    for (size_t i = 0; i < y.n; ++i) y.set(i, NAN);
    p.y.data = y.data();
    if (residual.n) {  // in place: y holds the residual, as in hidden += o_proj(attn)
      std::memcpy(y.data(), residual.data(), residual.bytes());
      p.residual.data = y.data();
    }
    linear(w, p);
    for (int64_t m = 0; m < p.m; ++m) {
      for (int64_t c = 0; c < n_out; ++c) {
        const size_t i = size_t(m * p.y.stride_token + c);
        ASSERT_LE(std::fabs(double(y.get(i)) - expected.get(i)), tol[size_t(m * n_out + c)])
            << what << " m " << m << " col " << c << " got " << y.get(i) << " expected " << expected.get(i);
      }
      for (int64_t c = n_out; c < p.y.stride_token && !residual.n; ++c)
        ASSERT_TRUE(std::isnan(y.get(size_t(m * p.y.stride_token + c)))) << what << ": wrote the row padding";
    }
  }

  // On every kernel: two threads within the bound, and one thread giving the same bits.
  void check_every_kernel_thread_invariant() {
    testutil::for_each_kernel("linear", [&] { return linear_kernel_name(w, p); }, [&](const std::string& kernel) {
      run_and_check(2, kernel.c_str());
      const std::vector<uint8_t> two(static_cast<const uint8_t*>(y.data()),
                                     static_cast<const uint8_t*>(y.data()) + y.bytes());
      run_and_check(1, (kernel + ", 1 thread").c_str());
      EXPECT_EQ(std::memcmp(two.data(), y.data(), two.size()), 0) << "thread count changed bits";
    });
  }

  void check_every_kernel(int threads = 1) {
    testutil::for_each_kernel("linear", [&] { return linear_kernel_name(w, p); },
                              [&](const std::string& kernel) { run_and_check(threads, kernel.c_str()); });
  }
};

inline std::vector<float> random_weights(int64_t n, int64_t k, std::mt19937& rng) {
  return testutil::random_weights(n, k, rng, 0.05f);
}

}  // namespace linear_test
