"""linear against torch.matmul over the dequantized weight; KV cache moves; errors."""
import pytest
import torch

import pagedinfer as pi
from conftest import UNIT


def quantize_rows_like_library(x):
    """linear.hpp's int8 rule: a = round(x * 127 / max|x|) per row (fp32, ties to even)."""
    xf = x.float()
    amax = xf.abs().amax(1, keepdim=True)
    inv = torch.full_like(amax, 127.0) / amax  # tensor / tensor: correctly rounded (scalar / tensor is not)
    a = torch.round(xf * inv).clamp(-127, 127)
    return a.double() * (amax.double() / 127.0)


@pytest.mark.parametrize("bits,group,zero", [(4, 128, "zero_point"), (8, 0, "symmetric"), (4, 64, "float_offset")])
@pytest.mark.parametrize("activations", ["float", "int8"])
@pytest.mark.parametrize("m", [1, 3, 17])
def test_linear_matches_torch_matmul(bits, group, zero, activations, m):
    n, k = 96, 512
    w = pi.quantize(torch.randn(n, k), bits=bits, group_size=group, zero=zero)
    assert (w.n, w.k, w.bits) == (n, k, bits)
    x = torch.randn(m, k).to(torch.bfloat16)
    wd = w.dequantize()
    xs = quantize_rows_like_library(x) if activations == "int8" else x.double()
    want = xs @ wd.T
    y = pi.linear(w, x, activations=activations, out_dtype="float32", num_threads=2)
    # Group sums in fp32 over exact products (or exact int32 with int8 x); fixed-point x on
    # Intel cores adds 2^-31 of the row's scale per element.
    mag = xs.abs() @ wd.abs().T
    bound = (k + 8) * 2.0**-24 * mag + x.double().abs().amax() * 2.0**-30 * wd.abs().sum(1) + 1e-5
    assert ((y.double() - want).abs() <= bound).all()
    ref = pi.reference.linear(w, x, activations=activations, out_dtype="float32")
    assert ((ref.double() - want).abs() <= bound).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 5, 40])
def test_unquantized_weights_match_torch_matmul(dtype, m):
    """W16A16: the weight's own bf16 / fp16 values, exact products summed in fp32."""
    n, k = 80, 384
    wt = torch.randn(n, k).to(dtype)
    w = pi.quantize(wt, bits=16, num_threads=2)
    assert (w.bits, w.dtype, w.zero, w.nbytes) == (16, "bf16" if dtype == torch.bfloat16 else "f16", "none", 128 * k * 2)
    assert torch.equal(w.dequantize(), wt.double())
    x = torch.randn(m, k).to(torch.bfloat16)
    want = x.double() @ wt.double().T
    y = pi.linear(w, x, out_dtype="float32", num_threads=2)
    bound = (k + 8) * 2.0**-24 * (x.double().abs() @ wt.double().abs().T) + 1e-6
    assert ((y.double() - want).abs() <= bound).all()
    assert torch.equal(pi.linear(pi.load_weight(pi.save_weight(w)), x, out_dtype="float32", num_threads=2), y)
    assert pi.quantize(wt.float(), bits=16, dtype="bfloat16").dtype == "bf16"
    with pytest.raises(pi.Error, match="int8_per_token needs a 4- or 8-bit weight"):
        pi.linear(w, x, activations="int8")
    with pytest.raises(pi.Error, match="pass dtype="):
        pi.quantize(wt.float(), bits=16)


def test_linear_epilogues_and_save_load():
    n, k = 64, 256
    w = pi.quantize(torch.randn(2 * n, k), bits=4, group_size=128, gate_up=True)
    x = torch.randn(4, k).to(torch.bfloat16)
    y = pi.linear(w, x, silu_mul=True, out_dtype="float32")
    pre = x.double() @ w.dequantize().T
    want = torch.nn.functional.silu(pre[:, :n]) * pre[:, n:]
    assert torch.allclose(y.double(), want, rtol=1e-3, atol=1e-3)
    w2 = pi.load_weight(pi.save_weight(w))
    assert torch.equal(pi.linear(w2, x, silu_mul=True, out_dtype="float32"), y)
    plain = pi.quantize(torch.randn(n, k), bits=8, group_size=0, zero="symmetric")
    res = torch.randn(4, n)
    bias = torch.randn(n)
    out = pi.linear(plain, x.float(), bias=bias, residual=res)
    assert torch.allclose(out.double(), x.double() @ plain.dequantize().T + bias.double() + res.double(), atol=1e-3)


@pytest.mark.parametrize("threads", [1, 2])
def test_awq_import_is_lossless(threads):
    n, k, g = 96, 256, 128
    q = torch.randint(0, 16, (k, n), dtype=torch.int32)
    z = torch.randint(0, 16, (k // g, n), dtype=torch.int32)
    s = (torch.rand(k // g, n) + 0.5).to(torch.float16)
    order = [0, 2, 4, 6, 1, 3, 5, 7]

    def pack(t):
        words = torch.zeros(t.shape[0], t.shape[1] // 8, dtype=torch.int64)
        for p in range(8):
            words |= t[:, order[p]::8].long() << (4 * p)
        return (((words + 2**31) % 2**32) - 2**31).to(torch.int32)

    w = pi.import_awq(pack(q), pack(z), s, group_size=g, num_threads=threads)
    want = ((q - z.repeat_interleave(g, 0)).double() * s.double().repeat_interleave(g, 0)).T
    assert torch.equal(w.dequantize(), want)


def test_kv_cache_moves():
    pool_k, pool_v = torch.randn(6, 4, 2, 32).to(torch.float16), torch.randn(6, 4, 2, 32).to(torch.float16)
    cache = pi.KVCache(pool_k, pool_v, "nhd")
    key, value = torch.randn(3, 2, 32).to(torch.float16), torch.randn(3, 2, 32).to(torch.float16)
    pi.append_kv(cache, key, value, torch.tensor([1, 9, -1]))
    assert torch.equal(pool_k[0, 1], key[0]) and torch.equal(pool_v[2, 1], value[1])
    pi.copy_blocks(cache, [[2, 5]])
    assert torch.equal(pool_k[5], pool_k[2])
    flat = pi.gather_blocks(cache, torch.tensor([0, 2], dtype=torch.int32))
    assert flat.numel() == 2 * cache.block_bytes
    other = pi.KVCache(torch.zeros(3, 2, 4, 32, dtype=torch.float16), torch.zeros(3, 2, 4, 32, dtype=torch.float16),
                       "hnd")
    pi.scatter_blocks(other, flat, torch.tensor([1, 0], dtype=torch.int32))
    assert torch.equal(other.k[1].transpose(0, 1), pool_k[0]) and torch.equal(other.v[0].transpose(0, 1), pool_v[2])
    combined = pi.combined_cache(torch.zeros(4, 2, 4, 2, 32, dtype=torch.bfloat16))
    assert (combined.num_pages, combined.page_size, combined.num_kv_heads) == (4, 4, 2)


def test_kv_transfer_between_layouts_and_its_checks():
    layers = [pi.KVCache(torch.randn(6, 4, 2, 32).to(torch.bfloat16), torch.randn(6, 4, 2, 32).to(torch.bfloat16), "nhd")
              for _ in range(3)]
    data = pi.export_kv(layers, [4, 1], num_tokens=7)
    assert data.dtype == torch.uint8
    other = [pi.KVCache(torch.zeros(5, 2, 4, 32, dtype=torch.bfloat16), torch.zeros(5, 2, 4, 32, dtype=torch.bfloat16),
                        "hnd") for _ in range(3)]
    assert pi.import_kv(other, data, [0, 3]) == 7
    for src, dst in zip(layers, other):
        assert torch.equal(dst.k[0].transpose(0, 1), src.k[4]) and torch.equal(dst.v[3].transpose(0, 1), src.v[1])
    damaged = data.clone()
    damaged[100] ^= 1
    before = [c.k.clone() for c in other]
    with pytest.raises(pi.Error, match="checksum"):
        pi.import_kv(other, damaged, [1, 2])
    with pytest.raises(pi.Error, match="truncated"):
        pi.import_kv(other, data[:-1], [1, 2])
    with pytest.raises(pi.Error, match="appears twice"):
        pi.import_kv(other, data, [1, 1])
    assert all(torch.equal(a, c.k) for a, c in zip(before, other))


@pytest.mark.parametrize("ranks", [2, 4])
def test_tensor_parallel_shards_recombine(ranks):
    torch.manual_seed(5)
    qkv = pi.quantize(torch.randn(128, 256) * 0.05, bits=4, group_size=64)
    x = torch.randn(3, 256)
    whole = pi.linear(qkv, x)
    parts = [pi.linear(pi.shard_output_features(qkv, r, ranks, segments=[64, 32, 32]), x) for r in range(ranks)]
    for s, (begin, size) in enumerate([(0, 64), (64, 32), (96, 32)]):  # q, k, v: each rank's slice of each
        each = size // ranks
        joined = torch.cat([p[:, sum([64, 32, 32][:s]) // ranks:][:, :each] for p in parts], dim=1)
        assert torch.equal(joined, whole[:, begin:begin + size])
    down = pi.quantize(torch.randn(64, 512) * 0.05, bits=8, group_size=0)
    summed = sum(pi.linear(pi.shard_input_features(down, r, ranks), x.repeat(1, 2)[:, r * 512 // ranks:(r + 1) * 512 // ranks])
                 for r in range(ranks))
    assert torch.allclose(summed, pi.linear(down, x.repeat(1, 2)), atol=1e-3, rtol=1e-3)
    with pytest.raises(pi.Error, match="divide by ranks"):
        pi.shard_input_features(down, 0, 3)


def test_errors():
    cache = pi.KVCache(torch.zeros(2, 4, 2, 32), torch.zeros(2, 4, 2, 32))
    with pytest.raises(pi.Error, match="slot_mapping"):
        pi.append_kv(cache, torch.zeros(1, 2, 32), torch.zeros(1, 2, 32), torch.tensor([99]))
    with pytest.raises(pi.Error, match="int64"):
        pi.append_kv(cache, torch.zeros(1, 2, 32), torch.zeros(1, 2, 32), torch.tensor([0], dtype=torch.int32))
    with pytest.raises(pi.Error, match="float32, bfloat16 or float16"):
        pi.rms_norm(torch.zeros(2, 8, dtype=torch.float64), torch.ones(8))
    with pytest.raises(pi.Error, match="layout"):
        pi.KVCache(torch.zeros(2, 4, 2, 32), torch.zeros(2, 4, 2, 32), "xyz")
    with pytest.raises(ValueError, match="activations"):
        pi.linear(pi.quantize(torch.randn(32, 128)), torch.randn(1, 128), activations="int4")
    import numpy as np
    y = pi.rms_norm(np.ones((2, 8), dtype=np.float32), np.ones(8, dtype=np.float32))
    assert torch.allclose(y, torch.ones(2, 8), atol=1e-5)


def test_kernel_control():
    names = [k["name"] for k in pi.registered_kernels("norm")]
    assert names and all(isinstance(n, str) for n in names)
    last = names[-1]
    pi.force_kernel("norm", last)
    try:
        assert pi.forced_kernel("norm") == last
        assert pi.rms_norm_kernel_name("bfloat16", "bfloat16") == last
    finally:
        pi.force_kernel("norm", "")
    with pytest.raises(pi.Error, match="no norm kernel"):
        pi.force_kernel("norm", "nope")
    assert pi.active_isa() in ("baseline", "avx2", "avx512", "avx512_bf16", "amx")
