"""pagedinfer.golden: the library's own kernels pass their golden files, a perturbed output fails
at the perturbed element, and files round-trip through a reader that uses neither torch nor the
library."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest
import torch

import pagedinfer
from pagedinfer import golden


SPECS = [
    dict(op="attention", num_q_heads=8, num_kv_heads=2, head_dim=64, page_size=16, kv_lens=[1, 17, 300, 0],
         q_lens=[1, 5, 300, 0]),
    dict(op="attention", dtype="f16", num_q_heads=4, num_kv_heads=4, head_dim=128, page_size=5, kv_lens=[40, 9],
         window_left=7, softcap=30.0),
    dict(op="linear", format="awq", m=3, n=256, k=512),
    dict(op="linear", format="gptq", act_order=True, m=5, n=128, k=384),
    dict(op="linear", format="gptq", bits=8, group_size=64, m=2, n=64, k=256, dtype="f16"),
    dict(op="linear", format="w8a8", m=7, n=96, k=256),
    dict(op="rope", num_tokens=9, num_q_heads=4, num_kv_heads=2, head_dim=64, rotary_dim=32, style="gptj",
         scaling="llama3", factor=8.0, original_max_position=1024),
    dict(op="rms_norm", num_tokens=5, hidden_size=1000, fused_add=True),
    dict(op="rms_norm", num_tokens=3, hidden_size=256, dtype="f16", eps=1e-5, gemma=True),
    dict(op="attention", num_q_heads=4, num_kv_heads=1, head_dim=64, kv_lens=[33, 70], q_lens=[33, 2], alibi=True,
         sinks=True),
    dict(op="attention", kv_dtype="i8", num_q_heads=8, num_kv_heads=2, head_dim=64, page_size=16, kv_lens=[5, 300]),
    dict(op="attention", kv_dtype="f8_e4m3", num_q_heads=8, num_kv_heads=2, head_dim=64, page_size=16,
         kv_lens=[5, 300], q_lens=[5, 20]),
]


@pytest.mark.parametrize("spec", SPECS,
                         ids=lambda s: f"{s['op']}-{s.get('format', s.get('kv_dtype', s.get('dtype', 'bf16')))}")
def test_library_passes_its_golden_file(spec):
    case = golden.generate(spec, seed=3)
    report = golden.check(case, golden.run_pagedinfer(case))
    assert report, str(report)
    assert all(o["max_bound_ratio"] <= 1 for o in report.outputs)


def test_one_perturbed_element_fails_and_is_named():
    case = golden.generate(op="rms_norm", num_tokens=4, hidden_size=64)
    out = golden.run_pagedinfer(case)["out"].float()
    bound = case["out.bound"]
    out[2, 17] = case["out"][2, 17] + 2 * bound[2, 17]  # twice the bound away
    report = golden.check(case, {"out": out})
    assert not report
    assert report.outputs[0]["failures"] == 1
    assert report.worst[0]["index"] == [2, 17]
    assert "out[2, 17]" in str(report)


def test_spec_errors_name_the_key():
    with pytest.raises(pagedinfer.Error, match="num_kv_head"):
        golden.generate(op="attention", num_kv_head=2, kv_lens=[3])
    with pytest.raises(pagedinfer.Error, match="kv_lens"):
        golden.generate(op="attention")
    with pytest.raises(pagedinfer.Error, match="format"):
        golden.generate(op="linear", format="exl2")


def test_missing_or_misshapen_candidate_output():
    case = golden.generate(op="rms_norm", num_tokens=2, hidden_size=32)
    with pytest.raises(pagedinfer.Error, match="no tensor \"out\""):
        golden.check(case, {"y": case["out"]})
    with pytest.raises(pagedinfer.Error, match="shape"):
        golden.check(case, {"out": case["out"].reshape(-1)})


def read_safetensors_by_hand(path):
    """A reader from the format's definition: u64 header length, JSON header, raw buffers."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    buffers = blob[8 + n:]
    kinds = {"F32": "<f4", "I32": "<i4", "I64": "<i8", "BF16": "<u2", "F16": "<f2", "I8": "i1"}
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(buffers[begin:end], dtype=kinds[entry["dtype"]]).reshape(entry["shape"])
    return header, tensors


def test_golden_file_round_trips_through_a_torch_free_reader(tmp_path):
    case = golden.generate(op="attention", num_q_heads=2, head_dim=8, kv_lens=[10, 3], page_size=4)
    path = str(tmp_path / "case.safetensors")
    case.save(path)
    header, tensors = read_safetensors_by_hand(path)
    assert json.loads(header["__metadata__"]["pagedinfer.spec"])["kv_lens"] == [10, 3]
    assert np.array_equal(tensors["block_table"], case["block_table"].numpy())
    assert np.array_equal(tensors["out"], case["out"].numpy())
    assert np.array_equal(tensors["q"], case["q"].view(torch.int16).numpy().view(np.uint16))
    assert golden.check(path, golden.load(path))


def test_hand_written_file_is_read(tmp_path):
    """A safetensors file written here byte by byte, as the format defines it."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], dtype=np.int64)
    header = {"__metadata__": {"who": "test"},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}
    text = json.dumps(header).encode()
    path = tmp_path / "hand.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + a.tobytes() + b.tobytes())
    got = golden.load(str(path))
    assert got.metadata == {"who": "test"}
    assert torch.equal(got["a"], torch.from_numpy(a)) and torch.equal(got["b"], torch.from_numpy(b))
    # A byte range that disagrees with the shape is refused with the rule it broke.
    header["b"]["data_offsets"] = [24, 32]
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + a.tobytes() + b.tobytes())
    with pytest.raises(pagedinfer.Error, match="data_offsets span 8 bytes"):
        golden.load(str(path))


def tool(name):
    """The command-line tool next to the module in the build tree, if built."""
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(pagedinfer.__file__))))
    path = os.path.join(build, "tools", name)
    return path if os.path.exists(path) else None


@pytest.mark.skipif(tool("pagedinfer-check") is None, reason="pagedinfer-check not built next to the module")
def test_check_tool_reads_npy_candidates(tmp_path):
    case = golden.generate(op="rope", num_tokens=4, num_q_heads=2, head_dim=32)
    gold = str(tmp_path / "rope.safetensors")
    case.save(gold)
    got = golden.run_pagedinfer(case)
    np.save(tmp_path / "q_out.npy", got["q_out"].float().numpy())
    np.save(tmp_path / "k.npy", got["k_out"].float().numpy())
    ok = subprocess.run([tool("pagedinfer-check"), gold, str(tmp_path / "q_out.npy"), "k_out=" + str(tmp_path / "k.npy")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = got["k_out"].float().numpy()
    bad[3, 1, 5] += 1.0
    np.save(tmp_path / "k.npy", bad)
    fail = subprocess.run([tool("pagedinfer-check"), gold, str(tmp_path / "q_out.npy"), "k_out=" + str(tmp_path / "k.npy")],
                          capture_output=True, text=True)
    assert fail.returncode == 1 and "k_out[3, 1, 5]" in fail.stdout, fail.stdout
