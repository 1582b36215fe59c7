"""paged_attention and merge_states against an explicit softmax in float64 over gathered pages."""
import math

import pytest
import torch

import pagedinfer as pi
from conftest import DTYPES, UNIT


def make_cache(num_pages, page, kv_heads, dim, dtype, layout):
    shape = (num_pages, page, kv_heads, dim) if layout == "nhd" else (num_pages, kv_heads, page, dim)
    k = torch.randn(shape).to(dtype)
    v = torch.randn(shape).to(dtype)
    return pi.KVCache(k, v, layout), k, v


def gather(pool, pages, kv_len, layout):
    """[kv_len, heads, dim] float64 of one request's pages, in token order."""
    rows = []
    for j in range(kv_len):
        p, off = pages[j // pool.shape[1 if layout == "nhd" else 2]], j % pool.shape[1 if layout == "nhd" else 2]
        rows.append(pool[p, off] if layout == "nhd" else pool[p, :, off])
    return torch.stack(rows).double()


def torch_attention(q, k, v, q_indptr, kv_len, tables, layout, scale, causal=True, window_left=-1, softcap=0.0,
                    alibi=None, sinks=None, masks=None):
    tokens, heads, _ = q.shape
    kv_heads = k.shape[2] if layout == "nhd" else k.shape[1]
    group = heads // kv_heads
    out = torch.zeros(tokens, heads, v.shape[-1], dtype=torch.float64)
    lse = torch.full((tokens, heads), -math.inf, dtype=torch.float64)
    for r in range(len(kv_len)):
        K, V = gather(k, tables[r], kv_len[r], layout), gather(v, tables[r], kv_len[r], layout)
        q_len = q_indptr[r + 1] - q_indptr[r]
        for i in range(q_len):
            t, pos = q_indptr[r] + i, kv_len[r] - q_len + i
            for h in range(heads):
                s = scale * (K[:, h // group] @ q[t, h].double())
                if softcap > 0:
                    s = softcap * torch.tanh(s / softcap)
                j = torch.arange(kv_len[r], dtype=torch.float64)
                if alibi is not None:
                    s = s - alibi[h] * (pos - j).abs()
                visible = torch.ones(kv_len[r], dtype=torch.bool)
                if causal:
                    visible &= j <= pos
                if window_left >= 0:
                    visible &= j >= pos - window_left
                if masks is not None:
                    visible &= masks[r][i]
                s = torch.where(visible, s, torch.tensor(-math.inf, dtype=torch.float64))
                terms = [s]
                if sinks is not None:
                    terms.append(torch.tensor([sinks[h]], dtype=torch.float64))
                z = torch.logsumexp(torch.cat(terms), 0)
                if torch.isinf(z):
                    continue
                p = torch.exp(s - z)
                out[t, h] = p @ V[:, h // group]
                lse[t, h] = z
    return out, lse


@pytest.mark.parametrize("layout", ["nhd", "hnd"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [{}, {"window_left": 5, "softcap": 20.0}, {"alibi": True, "sinks": True}])
def test_mixed_batch_matches_torch(layout, dtype, options):
    page, kv_heads, heads, dim = 4, 2, 4, 64
    kv_len, q_lens = [9, 13, 5], [1, 13, 2]  # decode, prefill, multi-token decode
    q_indptr = [0]
    for n in q_lens:
        q_indptr.append(q_indptr[-1] + n)
    num_pages = sum((n + page - 1) // page for n in kv_len) + 3
    perm = torch.randperm(num_pages).tolist()  # shuffled, non-contiguous pages
    tables, at = [], 0
    for n in kv_len:
        c = (n + page - 1) // page
        tables.append(perm[at:at + c])
        at += c
    cols = max(len(t) for t in tables)
    block_table = torch.tensor([t + [0] * (cols - len(t)) for t in tables], dtype=torch.int32)
    cache, k, v = make_cache(num_pages, page, kv_heads, dim, dtype, layout)
    qkv = torch.randn(q_indptr[-1], heads + 2 * kv_heads, dim).to(dtype)  # q as a slice of fused QKV
    q = qkv[:, :heads]
    scale = 1 / math.sqrt(dim)
    alibi = [0.1 * (h + 1) for h in range(heads)] if options.get("alibi") else None
    sinks = [0.5 - h for h in range(heads)] if options.get("sinks") else None
    plan = pi.plan_attention(torch.tensor(q_indptr, dtype=torch.int32), torch.tensor(kv_len, dtype=torch.int32),
                             heads, kv_heads, dim, num_threads=2)
    out, lse = pi.paged_attention(plan, q, cache, block_table=block_table, return_lse=True, scale=scale,
                                  window_left=options.get("window_left", -1), softcap=options.get("softcap", 0.0),
                                  alibi_slopes=alibi, sinks=sinks)
    ref_out, ref_lse = torch_attention(q, k, v, q_indptr, kv_len, tables, layout, scale,
                                       window_left=options.get("window_left", -1), softcap=options.get("softcap", 0.0),
                                       alibi=alibi, sinks=sinks)
    assert out.dtype == dtype and out.shape == (q_indptr[-1], heads, dim)
    vmax = max(v.abs().max().item(), 1.0)
    # attention.hpp: fp32 arithmetic (sums over dim and kv_len), one rounding to the output, and
    # with bf16 q and KV the P rounding (2^-8 of sum p |v|).
    bound = UNIT[dtype] * ref_out.abs() + (dim + max(kv_len)) * 8 * 2.0**-24 * vmax * 50
    if dtype == torch.bfloat16:
        bound = bound + 2.0**-8 * vmax
    assert ((out.double() - ref_out).abs() <= bound).all()
    finite = torch.isfinite(ref_lse)
    assert torch.allclose(lse.double()[finite], ref_lse[finite], rtol=1e-5, atol=1e-4)
    # The CSR form of the same table and the reference agree too.
    indptr = [0]
    for t in tables:
        indptr.append(indptr[-1] + len(t))
    csr = pi.paged_attention(plan, q, cache, page_indptr=indptr, page_indices=sum(tables, []), scale=scale,
                             window_left=options.get("window_left", -1), softcap=options.get("softcap", 0.0),
                             alibi_slopes=alibi, sinks=sinks)
    assert torch.equal(csr, out)
    oracle = pi.reference.paged_attention(plan, q, cache, block_table=block_table, scale=scale,
                                          window_left=options.get("window_left", -1),
                                          softcap=options.get("softcap", 0.0), alibi_slopes=alibi, sinks=sinks)
    assert ((oracle.double() - ref_out).abs() <= UNIT[dtype] * ref_out.abs() + 1e-6).all()


def test_tree_mask_dense_and_packed_match_torch():
    """A speculative step: each request verifies a draft tree, every node seeing the prefix and its branch."""
    page, kv_heads, heads, dim = 4, 2, 8, 64
    parents = [[-1, 0, 0, 1, 1, 2, 3], [-1, 0, 1]]  # two trees, node 0 hangs off the prefix
    prefix = [10, 3]
    kv_len = [p + len(t) for p, t in zip(prefix, parents)]
    q_indptr = [0, len(parents[0]), len(parents[0]) + len(parents[1])]
    masks = []
    for p, tree, n in zip(prefix, parents, kv_len):
        m = torch.zeros(len(tree), n, dtype=torch.bool)
        m[:, :p] = True
        for i in range(len(tree)):
            a = i
            while a >= 0:
                m[i, p + a] = True
                a = tree[a]
        masks.append(m)
    dense = torch.cat([m.flatten() for m in masks])
    dense_indptr = torch.tensor([0, masks[0].numel(), dense.numel()], dtype=torch.int64)
    packed, packed_indptr = [], [0]
    for m in masks:  # FlashInfer's segment_packbits, little bit order
        bits = m.flatten().tolist() + [False] * (-m.numel() % 8)
        packed += [sum(int(b) << k for k, b in enumerate(bits[i:i + 8])) for i in range(0, len(bits), 8)]
        packed_indptr.append(len(packed))
    num_pages = sum((n + page - 1) // page for n in kv_len)
    tables, at = [], 0
    perm = torch.randperm(num_pages).tolist()
    for n in kv_len:
        tables.append(perm[at:at + (n + page - 1) // page])
        at += len(tables[-1])
    block_table = torch.tensor([t + [0] * (5 - len(t)) for t in tables], dtype=torch.int32)
    cache, k, v = make_cache(num_pages, page, kv_heads, dim, torch.float32, "nhd")
    q = 2 * torch.randn(q_indptr[-1], heads, dim)
    plan = pi.plan_attention(q_indptr, kv_len, heads, kv_heads, dim)
    scale = 1 / math.sqrt(dim)
    ref, _ = torch_attention(q, k, v, q_indptr, kv_len, tables, "nhd", scale, masks=masks)
    out_dense = pi.paged_attention(plan, q, cache, block_table=block_table, custom_mask=dense, mask_indptr=dense_indptr)
    out_packed = pi.paged_attention(plan, q, cache, block_table=block_table,
                                    custom_mask=torch.tensor(packed, dtype=torch.uint8),
                                    mask_indptr=torch.tensor(packed_indptr, dtype=torch.int32))
    assert torch.allclose(out_dense.double(), ref, atol=1e-5)
    assert torch.equal(out_dense, out_packed)
    with pytest.raises(pi.Error, match="request 0's segment has 6 bytes"):
        pi.paged_attention(plan, q, cache, block_table=block_table, custom_mask=torch.tensor(packed, dtype=torch.uint8),
                           mask_indptr=[0, 6, len(packed)])
    with pytest.raises(pi.Error, match="fewer than mask_indptr"):
        pi.paged_attention(plan, q, cache, block_table=block_table, custom_mask=dense[:-1], mask_indptr=dense_indptr)


def test_merge_states_of_two_halves_is_attention_over_all_keys():
    heads, dim = 3, 16
    a, b = torch.randn(5, heads, dim), torch.randn(5, heads, dim)
    la, lb = torch.randn(5, heads), torch.randn(5, heads)
    out, lse = pi.merge_states(a, la, b, lb)
    m = torch.logaddexp(la.double(), lb.double())
    want = torch.exp(la.double() - m)[..., None] * a.double() + torch.exp(lb.double() - m)[..., None] * b.double()
    assert torch.allclose(out.double(), want, atol=1e-6)
    assert torch.allclose(lse.double(), m, atol=1e-6)
    wide = torch.randn(5, heads, 2 * dim)[..., :dim]  # strided head view
    wide.copy_(b)
    out2, _ = pi.merge_states(a, la, wide, lb)
    assert torch.equal(out2, out)


def test_errors_name_the_argument():
    cache, _, _ = make_cache(4, 4, 2, 64, torch.bfloat16, "nhd")
    plan = pi.plan_attention([0, 1], [3], 4, 2, 64)
    q = torch.randn(1, 4, 64).to(torch.bfloat16)
    with pytest.raises(pi.Error, match="page id 9 .* outside the pool"):
        pi.paged_attention(plan, q, cache, block_table=torch.tensor([[9]], dtype=torch.int32))
    with pytest.raises(pi.Error, match="int32"):
        pi.paged_attention(plan, q, cache, block_table=torch.tensor([[0]], dtype=torch.int64))
    with pytest.raises(pi.Error, match="unit stride"):
        pi.paged_attention(plan, torch.randn(1, 4, 128).to(torch.bfloat16)[..., ::2], cache,
                           block_table=torch.tensor([[0]], dtype=torch.int32))
    with pytest.raises(ValueError):
        pi.paged_attention(plan, None, cache, block_table=torch.tensor([[0]], dtype=torch.int32))


def test_mla_latent_cache_end_to_end():
    """DeepSeek's absorbed MLA: one latent KV head of 576 (512 + 64 rotary last), V its first 512, no copy."""
    pages, page, heads, tokens = 6, 4, 16, 9
    kv = torch.zeros(pages, page, 1, 576, dtype=torch.bfloat16)
    cache = pi.KVCache(kv, kv[..., :512])  # a slice: V inside K
    assert cache.block_bytes == page * 576 * 2
    q = torch.randn(tokens, heads, 576).to(torch.bfloat16)
    k = torch.randn(tokens, 1, 576).to(torch.bfloat16)
    positions = torch.arange(tokens, dtype=torch.int64)
    table = pi.make_rope_cache(64, 64)
    q_rot, k_rot = q.clone(), k.clone()
    pi.apply_rope(q_rot, k_rot, positions, table, style="gptj", rotary_offset=512)
    assert torch.equal(k_rot[..., :512], k[..., :512]) and not torch.equal(k_rot[..., 512:], k[..., 512:])
    slots = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3, 12], dtype=torch.int64)  # pages 1, 0, 3 in token order
    pi.apply_rope_and_append_kv(q, k, None, positions, table, cache, slots, style="gptj", rotary_offset=512)
    assert torch.equal(q, q_rot)
    for t, s in enumerate(slots.tolist()):
        assert torch.equal(kv[s // page, s % page], k_rot[t])
    # One request: the last token decodes over all nine (pages 1, 0, 3 hold tokens 0-3, 4-7, 8).
    table_pages = torch.tensor([[1, 0, 3]], dtype=torch.int32)
    plan = pi.plan_attention([0, 1], [tokens], heads, 1, 576, head_dim_v=512)
    scale = 1 / math.sqrt(192)  # DeepSeek-V3: the pre-absorption head dim 128 + 64
    out = pi.paged_attention(plan, q[-1:], cache, block_table=table_pages, scale=scale)
    keys = k_rot[:, 0].double()
    p = torch.softmax(scale * (q[-1].double() @ keys.T), dim=-1)
    want = p @ keys[:, :512]
    assert out.shape == (1, heads, 512)
    assert ((out[0].double() - want).abs() <= 2.0**-8 * want.abs() + 2.0**-8 * keys[:, :512].abs().max()).all()


def test_cascade_equals_flat_attention_over_prefix_and_suffix():
    """Four requests in two groups share prefixes (pages held once); each has its own suffix pages."""
    page, kv_heads, heads, dim = 4, 2, 8, 64
    prefix, groups = [10, 5], [0, 3, 4]
    q_lens, suffix = [1, 2, 1, 3], [3, 2, 6, 3]
    num_pages = 20
    cache, k, v = make_cache(num_pages, page, kv_heads, dim, torch.float32, "nhd")
    perm = torch.randperm(num_pages).tolist()
    shared_tables = [perm[0:3], perm[3:5]]
    unique_tables = [perm[5:6], perm[6:7], perm[7:9], perm[9:10]]
    q_indptr = [0]
    for n in q_lens:
        q_indptr.append(q_indptr[-1] + n)
    q = 2 * torch.randn(q_indptr[-1], heads, dim)
    plan = pi.plan_cascade(groups, prefix, q_indptr, suffix, heads, kv_heads, dim)
    shared = torch.tensor([t + [0] * (3 - len(t)) for t in shared_tables], dtype=torch.int32)
    unique_csr = ([0, 1, 2, 4, 5], sum(unique_tables, []))
    out, lse = pi.cascade_attention(plan, q, cache, shared, unique_csr, return_lse=True)
    # Flat: each request's keys are its group's prefix tokens, then its suffix tokens.
    group_of = [0, 0, 0, 1]
    for r in range(4):
        pre = gather(k, shared_tables[group_of[r]], prefix[group_of[r]], "nhd")
        keys = torch.cat([pre, gather(k, unique_tables[r], suffix[r], "nhd")])
        vals = torch.cat([gather(v, shared_tables[group_of[r]], prefix[group_of[r]], "nhd"),
                          gather(v, unique_tables[r], suffix[r], "nhd")])
        n = keys.shape[0]
        for i in range(q_lens[r]):
            t, pos = q_indptr[r] + i, n - q_lens[r] + i
            for h in range(heads):
                s = (keys[: pos + 1, h // 4] @ q[t, h].double()) / math.sqrt(dim)
                p = torch.softmax(s, 0)
                assert torch.allclose(out[t, h].double(), p @ vals[: pos + 1, h // 4], atol=2e-5)
                assert abs(lse[t, h].item() - torch.logsumexp(s, 0).item()) < 1e-4


def fp8_value(code, e4m3):
    """An fp8 code's value (OCP e4m3fn or e5m2), from the format's definition (finite codes)."""
    ebits, bias = (4, 7) if e4m3 else (5, 15)
    mbits = 7 - ebits
    e, m = (code >> mbits) & ((1 << ebits) - 1), code & ((1 << mbits) - 1)
    sign = -1.0 if code & 0x80 else 1.0
    if e == 0:
        return sign * math.ldexp(m, 1 - bias - mbits)
    return sign * math.ldexp(1 + m / (1 << mbits), e - bias)


@pytest.mark.parametrize("kv_cache_dtype", ["int8", "fp8", "fp8_e5m2"])
@pytest.mark.parametrize("layout", ["nhd", "hnd"])
def test_quantized_cache_append_and_decode(kv_cache_dtype, layout):
    """int8 (a scale per row) and fp8 (vLLM: uint8 pools, per-tensor scales) caches: append_kv quantizes as the
    header states, attention reads the dequantized values."""
    pages, page, kv_heads, dim, heads, tokens = 5, 4, 2, 64, 4, 11
    shape = (pages, page, kv_heads, dim) if layout == "nhd" else (pages, kv_heads, page, dim)
    row_shape = shape[:3]
    if kv_cache_dtype == "int8":
        k8, v8 = torch.zeros(shape, dtype=torch.int8), torch.zeros(shape, dtype=torch.int8)
        ks, vs = torch.zeros(row_shape), torch.zeros(row_shape)
        cache = pi.KVCache(k8, v8, layout, kv_cache_dtype="int8", k_scales=ks, v_scales=vs)
        assert cache.block_bytes == page * kv_heads * (2 * dim + 8)
    else:
        k8, v8 = torch.zeros(shape, dtype=torch.uint8), torch.zeros(shape, dtype=torch.uint8)
        cache = pi.KVCache(k8, v8, layout, kv_cache_dtype=kv_cache_dtype, k_scale=0.02, v_scale=0.01)
        assert cache.block_bytes == page * kv_heads * 2 * dim
    k = torch.randn(tokens, kv_heads, dim).to(torch.bfloat16)
    v = torch.randn(tokens, kv_heads, dim).to(torch.bfloat16)
    slots = torch.tensor([8, 9, 10, 11, 0, 1, 2, 3, 16, 17, 18], dtype=torch.int64)  # pages 2, 0, 4
    pi.append_kv(cache, k, v, slots)

    def row(pool, t):
        s = slots[t].item()
        return pool[s // page, s % page] if layout == "nhd" else pool[s // page, :, s % page]

    def dequantized(pool, t, which):
        if kv_cache_dtype == "int8":
            return row(pool, t).double() * row(ks if which == "k" else vs, t).double()[:, None]
        scale = 0.02 if which == "k" else 0.01
        e4m3 = kv_cache_dtype == "fp8"
        return torch.tensor([[fp8_value(c, e4m3) for c in h] for h in row(pool, t).tolist()], dtype=torch.float64) * scale

    for t in range(tokens):
        if kv_cache_dtype == "int8":  # a row's scale is its max |x| / 127: every value within half a step
            want = k[t].float().abs().amax(dim=-1) / 127
            assert torch.equal(row(ks, t), want)
            err = (dequantized(k8, t, "k") - k[t].double()).abs().amax(dim=-1)
            assert (err <= 0.5 * want.double() * (1 + 2**-16)).all(), (err, want)
        else:
            err = (dequantized(k8, t, "k") - k[t].double()).abs()
            rel = 2.0**-4 if kv_cache_dtype == "fp8" else 2.0**-3
            assert (err <= rel * k[t].double().abs() + 0.02 * 2.0**-9).all()
    keys = torch.stack([dequantized(k8, t, "k") for t in range(tokens)])
    values = torch.stack([dequantized(v8, t, "v") for t in range(tokens)])
    q = torch.randn(1, heads, dim).to(torch.bfloat16)
    plan = pi.plan_attention([0, 1], [tokens], heads, kv_heads, dim)
    out = torch.empty(1, heads, dim)
    pi.paged_attention(plan, q, cache, block_table=torch.tensor([[2, 0, 4]], dtype=torch.int32), out=out, scale=0.125)
    for h in range(heads):
        p = torch.softmax(0.125 * (keys[:, h // 2] @ q[0, h].double()), dim=-1)
        want = p @ values[:, h // 2]
        assert ((out[0, h].double() - want).abs() <= 1e-5 * (1 + want.abs())).all()
