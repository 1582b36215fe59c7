"""Golden vectors: generate a case, run your kernel on its inputs, check its outputs.

A golden file is a safetensors file with the inputs of one call (named as vLLM names them:
``q``, ``k_cache``, ``v_cache``, ``block_table``, ``seq_lens``, ``query_start_loc``, ...), each
output's reference (computed in double, stored as float32) and ``<output>.bound``, the largest
error a correct fp32-accumulating kernel may show at each element (include/pagedinfer/golden.hpp,
docs/golden.md)::

    case = pagedinfer.golden.generate(op="attention", num_q_heads=28, num_kv_heads=4,
                                      page_size=16, kv_lens=[1, 100, 2048])
    out = my_kernel(case["q"], case["k_cache"], case["v_cache"], case["block_table"], ...)
    report = pagedinfer.golden.check(case, {"out": out, "lse": lse})
    assert report, report

Tensors are torch tensors (F8 dtypes, which torch 1.13 lacks, come as uint8 bit patterns).
"""
import json

import torch

from . import _pagedinfer

_golden = _pagedinfer._golden

_TORCH = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.uint8, "F8_E5M2": torch.uint8,
}
_NAME = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _to_torch(triple):
    dtype, shape, data = triple
    if dtype not in _TORCH:
        raise _pagedinfer.Error(f"pagedinfer.golden: dtype {dtype} has no torch counterpart")
    if not data:
        return torch.empty(shape, dtype=_TORCH[dtype])
    return torch.frombuffer(bytearray(data), dtype=_TORCH[dtype]).reshape(shape)


def _to_triple(name, tensor):
    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor)
    if tensor.dtype not in _NAME:
        raise _pagedinfer.Error(f"pagedinfer.golden: tensor {name!r} has dtype {tensor.dtype}, "
                                f"which safetensors cannot store")
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return (_NAME[tensor.dtype], list(tensor.shape), data)


class Case(dict):
    """The tensors of a golden file by name, with ``metadata``, ``spec`` and ``outputs``."""

    def __init__(self, tensors, metadata):
        super().__init__(tensors)
        self.metadata = dict(metadata)
        self.spec = json.loads(self.metadata.get("pagedinfer.spec", "{}"))
        self.outputs = [o for o in self.metadata.get("pagedinfer.outputs", "").split(",") if o]

    def save(self, path):
        """Writes the case as a safetensors file."""
        save(path, self, self.metadata)


def _case(pair):
    tensors, metadata = pair
    return Case({name: _to_torch(t) for name, t in tensors.items()}, metadata)


def generate(spec=None, **keys):
    """A case from a spec (dict or JSON text) and/or keyword keys: op, seed, shapes, dtypes..."""
    merged = dict(json.loads(spec) if isinstance(spec, str) else (spec or {}))
    merged.update(keys)
    return _case(_golden.generate(json.dumps(merged)))


def suite():
    """The specs of the standard suite (each with a "name")."""
    return [json.loads(s) for s in _golden.suite()]


def load(path):
    """Reads a safetensors file (a golden file or a candidate's outputs) as a Case."""
    return _case(_golden.read(path))


def load_npy(path):
    """Reads an .npy file as a torch tensor (without numpy's pickle support)."""
    return _to_torch(_golden.read_npy(path))


def save(path, tensors, metadata=None):
    """Writes tensors (a dict of torch tensors or numpy arrays) as a safetensors file."""
    _golden.write(path, {n: _to_triple(n, t) for n, t in tensors.items()}, dict(metadata or {}))


def _run_attention(case, threads):
    spec = case.spec
    plan = _pagedinfer.plan_attention(case["query_start_loc"], case["seq_lens"], spec["num_q_heads"],
                                      spec["num_kv_heads"], spec["head_dim"], spec["head_dim_v"], num_threads=threads)
    kv = {"f8_e4m3": "fp8_e4m3", "f8_e5m2": "fp8_e5m2", "i8": "int8"}.get(spec["kv_dtype"], "auto")
    scales = {name: case[name] for name in ("k_scales", "v_scales") if name in case}
    scales.update({name: case[name].item() for name in ("k_scale", "v_scale") if name in case})
    cache = _pagedinfer.KVCache(case["k_cache"], case["v_cache"], "nhd", kv_cache_dtype=kv, **scales)
    extra = {name: case[name].tolist() for name in ("alibi_slopes", "sinks") if name in case}
    if "custom_mask" in case:  # a speculative tree, FlashInfer's packed bits
        extra.update(custom_mask=case["custom_mask"], mask_indptr=case["mask_indptr"])
    out, lse = _pagedinfer.paged_attention(plan, case["q"], cache, block_table=case["block_table"],
                                           return_lse=True, scale=spec["scale"], causal=spec["causal"],
                                           window_left=spec["window_left"], softcap=spec["softcap"], **extra)
    return {"out": out, "lse": lse}


def _run_linear(case, threads):
    spec = case.spec
    if spec["format"] == "awq":
        w = _pagedinfer.import_awq(case["qweight"], case["qzeros"], case["scales"], spec["group_size"])
    elif spec["format"] == "gptq":
        w = _pagedinfer.import_gptq(case["qweight"], case["qzeros"], case["scales"], case["g_idx"], spec["bits"],
                                    spec["group_size"])
    else:  # int8 x per-channel scale, requantized exactly: each row's largest |q| is 127
        wf = case["weight"].float() * case["weight_scale"][:, None]
        w = _pagedinfer.quantize(wf, bits=8, group_size=0, zero="symmetric")
    mode = "int8" if spec["activations"] == "int8_per_token" else "float"
    return {"y": _pagedinfer.linear(w, case["x"], activations=mode, num_threads=threads)}


def _run_rope(case, threads):
    q, k = case["q"].clone(), case["k"].clone()
    _pagedinfer.apply_rope(q, k, case["positions"], case["cos_sin_cache"], style=case.spec["style"], num_threads=threads)
    return {"q_out": q, "k_out": k}


def _run_rms_norm(case, threads):
    spec = case.spec
    if spec["fused_add"]:
        x, residual = case["x"].clone(), case["residual"].clone()
        _pagedinfer.fused_add_rms_norm(x, residual, case["weight"], eps=spec["eps"], out=x,
                                       weight_plus_one=spec["gemma"], num_threads=threads)
        return {"out": x, "residual_out": residual}
    return {"out": _pagedinfer.rms_norm(case["x"], case["weight"], eps=spec["eps"], weight_plus_one=spec["gemma"],
                                        num_threads=threads)}


_RUN = {"attention": _run_attention, "linear": _run_linear, "rope": _run_rope, "rms_norm": _run_rms_norm}


def run_pagedinfer(case, num_threads=1):
    """The outputs of pagedinfer's own kernels on a case's inputs (the fastest kernel this CPU
    runs): what an accelerator's outputs can also be compared with, and a worked example of
    reading a case's tensors."""
    return _RUN[case.spec["op"]](case, num_threads)


class Report:
    """The result of check(): true when every output meets its bound; str() explains."""

    def __init__(self, r):
        self.passed = r["passed"]
        self.outputs = r["outputs"]
        self.worst = r["worst"]
        self.text = r["text"]

    def __bool__(self):
        return self.passed

    def __str__(self):
        return self.text

    __repr__ = __str__


def check(golden, candidate, max_worst=10):
    """Checks candidate outputs (dict name -> tensor, a Case or a path) against a golden Case or
    file path. Returns a Report; raises pagedinfer.Error for missing outputs or other shapes."""
    if isinstance(golden, str):
        golden = load(golden)
    if isinstance(candidate, str):
        candidate = load(candidate)
    wanted = {n: candidate[n] for n in golden.outputs if n in candidate}
    g = {n: _to_triple(n, t) for n, t in golden.items()}
    c = {n: _to_triple(n, t) for n, t in wanted.items()}
    return Report(_golden.check(g, golden.metadata, c, max_worst))
