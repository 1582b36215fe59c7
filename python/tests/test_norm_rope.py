"""RMSNorm and RoPE against the formulas written in torch, float64."""
import pytest
import torch

import pagedinfer as pi
from conftest import DTYPES, UNIT


def torch_rms_norm(x, w, eps, plus_one=False):
    x = x.double()
    w = w.double() + (1.0 if plus_one else 0.0)
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 4096), (5, 8, 128), (3, 100)])
def test_rms_norm(dtype, shape):
    x = torch.randn(shape).to(dtype)
    w = torch.randn(shape[-1]).to(dtype)
    for plus_one in (False, True):
        y = pi.rms_norm(x, w, eps=1e-6, weight_plus_one=plus_one, num_threads=2)
        want = torch_rms_norm(x, w, 1e-6, plus_one)
        # norm.hpp: fp32 sum of squares (dim terms), one rounding to the output dtype.
        bound = (UNIT[dtype] + shape[-1] * 2.0**-24) * want.abs() + 1e-6
        assert y.dtype == dtype and ((y.double() - want).abs() <= bound).all()
    inplace = x.clone()
    assert pi.rms_norm(inplace, w, out=inplace) is inplace
    assert torch.equal(inplace, pi.rms_norm(x, w))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_add_rms_norm_is_the_unfused_pair(dtype):
    x, res = torch.randn(6, 256).to(dtype), torch.randn(6, 256).to(dtype)
    w = torch.randn(256).to(dtype)
    want_res = (x.float() + res.float()).to(dtype)
    out = pi.fused_add_rms_norm(x.clone(), res, w)
    assert torch.equal(res, want_res)
    assert torch.equal(out, pi.rms_norm(want_res, w))


def torch_rope(x, positions, theta, rotary, style):
    x = x.double().clone()
    inv = theta ** (-torch.arange(0, rotary, 2, dtype=torch.float64) / rotary)
    ang = positions.double()[:, None] * inv[None, :]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    if style == "neox":
        a, b = x[..., : rotary // 2].clone(), x[..., rotary // 2: rotary].clone()
        x[..., : rotary // 2], x[..., rotary // 2: rotary] = a * c - b * s, b * c + a * s
    else:
        a, b = x[..., 0:rotary:2].clone(), x[..., 1:rotary:2].clone()
        x[..., 0:rotary:2], x[..., 1:rotary:2] = a * c - b * s, b * c + a * s
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("style", ["neox", "gptj"])
@pytest.mark.parametrize("rotary", [128, 64])
def test_rope_on_slices_of_fused_qkv(dtype, style, rotary):
    tokens, qh, kh, d = 9, 8, 2, 128
    qkv = torch.randn(tokens, qh + 2 * kh, d).to(dtype)
    q, k = qkv[:, :qh], qkv[:, qh:qh + kh]
    positions = torch.randint(0, 4000, (tokens,), dtype=torch.int64)
    table = pi.make_rope_cache(rotary, 4096, theta=10000.0)
    want_q, want_k = torch_rope(q, positions, 10000.0, rotary, style), torch_rope(k, positions, 10000.0, rotary, style)
    pi.apply_rope(q, k, positions, table, style=style, num_threads=2)
    # rope.hpp: fp32 products of the table's fp32 cos/sin, one rounding; the table itself is
    # within fp32 rounding of the double angles.
    for got, want in ((q, want_q), (k, want_k)):
        bound = UNIT[dtype] * want.abs() + 3 * 2.0**-24 * 4000 * 2.0**-10 * want.abs().max() + 1e-5
        assert ((got.double() - want).abs() <= bound).all()


def test_rope_and_append_writes_rotated_k_into_pages():
    tokens, qh, kh, d, page = 5, 4, 2, 64, 4
    k_cache = torch.zeros(3, kh, page, d, dtype=torch.bfloat16)
    v_cache = torch.zeros_like(k_cache)
    cache = pi.KVCache(k_cache, v_cache, "hnd")
    q, k, v = (torch.randn(tokens, h, d).to(torch.bfloat16) for h in (qh, kh, kh))
    positions = torch.arange(tokens, dtype=torch.int64)
    slots = torch.tensor([4, 5, -1, 0, 11], dtype=torch.int64)
    table = pi.make_rope_cache(d, 64)
    q2, k2 = q.clone(), k.clone()
    pi.apply_rope(q2, k2, positions, table)
    k_before = k.clone()
    pi.apply_rope_and_append_kv(q, k, v, positions, table, cache, slots)
    assert torch.equal(q, q2) and torch.equal(k, k_before)
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            assert torch.equal(k_cache[slot // page, :, slot % page], k2[t])
            assert torch.equal(v_cache[slot // page, :, slot % page], v[t])
    assert k_cache[0, :, 2].abs().sum() == 0  # token 2 was skipped (slot -1), nothing else written


def test_reference_matches_kernels():
    x = torch.randn(4, 64)
    w = torch.randn(64)
    assert torch.allclose(pi.reference.rms_norm(x, w), pi.rms_norm(x, w), atol=1e-5)
    q = torch.randn(3, 2, 64)
    qr, table = q.clone(), pi.make_rope_cache(64, 16, scaling="linear", factor=2.0)
    pi.apply_rope(q, None, torch.arange(3), table)
    pi.reference.apply_rope(qr, None, torch.arange(3), table)
    assert torch.allclose(q, qr, atol=1e-5)
