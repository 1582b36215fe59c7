"""pagedinfer: CPU kernels for LLM serving, over torch tensors and numpy arrays without copies.

Every tensor argument is read through DLPack (torch.Tensor, numpy.ndarray): bf16, fp16 and fp32
activations, int32 / int64 index arrays. Ops write into the tensors they are given (``out=``),
as vLLM's ``ops.*`` do, or return new torch tensors. Kernels run with the GIL released. Bad
arguments raise ``pagedinfer.Error`` (a ValueError) with the library's message, naming the
argument and the rule it broke. ``pagedinfer.reference`` holds the double-precision oracles with
the same signatures. See the C++ headers (include/pagedinfer/) for each op's contract.
"""
from ._pagedinfer import (  # noqa: F401
    AttentionPlan,
    CascadePlan,
    Error,
    KVCache,
    QuantizedWeight,
    active_features,
    active_isa,
    append_kv,
    apply_rope,
    apply_rope_and_append_kv,
    attention_kernel_name,
    cascade_attention,
    copy_blocks,
    detected_features,
    detected_isa,
    disabled_features,
    export_kv,
    force_kernel,
    forced_kernel,
    fused_add_rms_norm,
    gather_blocks,
    import_awq,
    import_gptq,
    import_kv,
    import_q4_0,
    import_q8_0,
    kernel_ops,
    linear,
    linear_kernel_name,
    load_weight,
    make_rope_cache,
    max_isa,
    merge_states,
    paged_attention,
    plan_attention,
    plan_cascade,
    quantize,
    reference,
    registered_kernels,
    rms_norm,
    rms_norm_kernel_name,
    sample,
    sample_kernel_name,
    sampling_uniform,
    save_weight,
    scatter_blocks,
    set_disabled_features,
    shard_input_features,
    shard_output_features,
    set_max_isa,
    tuning_vendor,
)


def combined_cache(kv, layout="nhd"):
    """A KVCache over one [num_pages, 2, ...] tensor (K at index 0, V at 1), without copies."""
    return KVCache(kv[:, 0], kv[:, 1], layout)
