"""One Llama-style decoder layer on torch tensors with pagedinfer: a paged bf16 KV cache, int4
weights (quantized here; import_awq / import_gptq take real checkpoints), a prefill step for two
prompts and a decode step. Run: PYTHONPATH=build/python /usr/bin/python3 python/examples/decoder_layer.py"""
import torch

import pagedinfer as pi

hidden, q_heads, kv_heads, head_dim, inter, page = 512, 8, 2, 64, 1024, 16
torch.manual_seed(0)


def weight(n, k, gate_up=False):
    return pi.quantize(torch.randn(n, k) / k**0.5, bits=4, group_size=128, gate_up=gate_up, num_threads=2)


qkv_w = weight((q_heads + 2 * kv_heads) * head_dim, hidden)
o_w, gate_up_w, down_w = weight(hidden, q_heads * head_dim), weight(2 * inter, hidden, True), weight(hidden, inter)
norm1, norm2 = torch.ones(hidden, dtype=torch.bfloat16), torch.ones(hidden, dtype=torch.bfloat16)
rope = pi.make_rope_cache(head_dim, 4096, theta=500000.0, scaling="llama3", factor=8.0, original_max_position=8192)
k_pool = torch.zeros(32, kv_heads, page, head_dim, dtype=torch.bfloat16)  # vLLM's CPU (HND) layout
v_pool = torch.zeros_like(k_pool)
cache = pi.KVCache(k_pool, v_pool, "hnd")
block_table = torch.tensor([[7, 3, 11], [20, 1, 5]], dtype=torch.int32)  # scattered pages


def layer(hidden_states, positions, q_indptr, kv_len):
    tokens = hidden_states.shape[0]
    slots = torch.cat([block_table[r, p // page] * page + p % page for r in range(len(kv_len))
                       for p in [positions[q_indptr[r]:q_indptr[r + 1]]]]).long()
    residual = hidden_states.clone()
    x = pi.rms_norm(hidden_states, norm1, eps=1e-5, num_threads=2)
    qkv = pi.linear(qkv_w, x, activations="int8", num_threads=2).view(tokens, -1, head_dim)
    q, k, v = qkv[:, :q_heads], qkv[:, q_heads:q_heads + kv_heads], qkv[:, q_heads + kv_heads:]
    pi.apply_rope_and_append_kv(q, k, v, positions, rope, cache, slots, num_threads=2)
    plan = pi.plan_attention(q_indptr, kv_len, q_heads, kv_heads, head_dim, num_threads=2)  # once per step
    attn = pi.paged_attention(plan, q, cache, block_table=block_table).view(tokens, -1)
    hidden_states = pi.linear(o_w, attn, residual=residual, activations="int8", num_threads=2)
    x = pi.rms_norm(hidden_states, norm2, eps=1e-5, num_threads=2)  # o_proj already added the residual
    act = pi.linear(gate_up_w, x, silu_mul=True, activations="int8", num_threads=2)
    return pi.linear(down_w, act, residual=hidden_states, activations="int8", num_threads=2)


# Prefill: two prompts of 20 and 9 tokens, packed along the token dimension.
prompt_lens = [20, 9]
positions = torch.cat([torch.arange(n) for n in prompt_lens])
out = layer(torch.randn(sum(prompt_lens), hidden).to(torch.bfloat16), positions, [0, 20, 29], prompt_lens)
# Decode: one new token each.
step = layer(torch.randn(2, hidden).to(torch.bfloat16), torch.tensor([20, 9]), [0, 1, 2], [21, 10])
print("prefill", tuple(out.shape), "decode", tuple(step.shape), "finite:", bool(torch.isfinite(step).all()),
      "kernels:", pi.linear_kernel_name(qkv_w, 1, "bfloat16", "int8"), pi.attention_kernel_name("bf16", "bf16"))
