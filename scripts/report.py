#!/usr/bin/python3
"""Summary of a benchmark run: one table (case, figure, fraction of its ceiling, the ceiling,
target) and a roofline chart, from the Google Benchmark JSON files in a directory.

usage: report.py DIR        reads DIR/bench_*.json, writes DIR/summary.md and DIR/roofline.png
"""
import json
import re
import sys
from pathlib import Path

# (case pattern, counter compared with the target, target, what the target is against).
TARGETS = [
    (r"attention/decode_b8_ctx4096/", "bw_fraction", 0.80, "DRAM read"),
    (r"attention/decode_b1_ctx32768/", "bw_fraction", 0.80, "DRAM read"),
    (r"attention/paged_vs_dense_b8_ctx4096/", "paged_vs_dense", 0.95, "dense twin, alternated"),
    (r"attention/prefill_512/", "peak_fraction", 0.40, "unit peak"),
    (r"attention/cascade_vs_flat_b64_prefix4096/", "speedup", 3.0, "flat attention, alternated"),
    (r"attention/kv_(int8|fp8)_vs_bf16_b8_ctx4096/", "speedup", 1.7, "bf16 KV decode, alternated"),
    (r"attention/kv_fp16_vs_bf16_b8_ctx4096/", "speedup", 0.9, "bf16 KV decode, alternated"),
    (r"gemm/w\w+_vs_stream_m1_", "bw_fraction_alternated", 0.90, "DRAM read, alternated"),
    (r"gemm/w\w+_vs_stream_m8_", "bw_fraction_alternated", 0.85, "DRAM read, alternated"),
    (r"gemm/w\w+_vs_stream_m32_", "bw_fraction_alternated", 0.75, "DRAM read, alternated"),
    (r"e2e/e2e_decode_qwen2_7b_shape_b8_", "step_vs_floor", 0.75, "bytes read once over DRAM read"),
    (r"gemm/w(4|8)a16_m512_", "peak_fraction", 0.70, "unit peak"),
    (r"gemm/w4a8_m512_", "peak_fraction", 0.75, "unit peak"),
    (r"gemm/w(8a8|16a16)_vs_onednn_", "speedup_vs_onednn", 1.0, "oneDNN, alternated"),
    (r"rope/rope_neox_t512/", "bw_fraction", 0.80, "DRAM read"),
    (r"norm/(rmsnorm|fused_add_rmsnorm)_t512/", "bw_fraction", 0.80, "DRAM read"),
    (r"sampling/sample_topk_topp_b64_v152064/", "bw_fraction", 0.50, "DRAM read"),
]
# The counter that is a case's fraction, in order of preference.
FRACTIONS = ["bw_fraction_alternated", "paged_vs_dense", "speedup_vs_onednn", "speedup", "step_vs_floor",
             "peak_fraction", "bw_fraction"]


def load_runs(directory):
    runs, context = [], {}
    for path in sorted(Path(directory).glob("bench_*.json")):
        data = json.loads(path.read_text())
        context.update(data.get("context", {}))
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            b["binary"] = path.stem
            runs.append(b)
    return runs, context


def label_fields(label):
    return dict(item.split("=", 1) for item in label.split() if "=" in item)


def figure(b):
    for key, unit in (("GFLOP/s", "GFLOP/s"), ("GB/s", "GB/s"), ("tokens/s", "tokens/s")):
        if key in b:
            return f"{b[key]:.1f} {unit}"
    return f"{b.get('real_time', 0):.3g} {b.get('time_unit', '')}"


def target_of(name):
    for pattern, counter, target, against in TARGETS:
        if re.search(pattern, name):
            return counter, target, against
    return None


def summary(runs):
    rows = ["| case | figure | fraction | measured against | kernel | target |", "|---|---|---|---|---|---|"]
    for b in runs:
        name = b["name"].replace("/real_time", "").replace("/manual_time", "").replace("_median", "")
        fields = label_fields(b.get("label", ""))
        t = target_of(name)
        counter = t[0] if t and t[0] in b else next((c for c in FRACTIONS if c in b), None)
        fraction = f"{b[counter]:.2f} {counter}" if counter else "-"
        against = fields.get("unit") or fields.get("ceiling") or "-"
        if t:
            ok = counter == t[0] and b[counter] >= t[1]
            target = f">= {t[1]:.2f} of {t[2]} ({'met' if ok else 'not met'})"
        else:
            target = "-"
        rows.append(f"| `{name}` | {figure(b)} | {fraction} | {against} | {fields.get('kernel', '-')} | {target} |")
    return "\n".join(rows)


def roofline(runs, context, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def ceiling(key):
        return float(context.get(f"ceiling_{key}_t2", 0) or 0)

    dram = ceiling("dram_read_gbs")
    peaks = {u: ceiling(k) for u, k in (("fp32_fma", "fp32_fma_gflops"), ("bf16_dot", "bf16_dot_gflops"),
                                        ("int8_dot", "int8_dot_gops"), ("amx_bf16", "amx_bf16_gflops"),
                                        ("amx_int8", "amx_int8_gops"))}
    fig, ax = plt.subplots(figsize=(9, 6))
    xs = [2 ** (i / 4) for i in range(-8, 60)]
    for unit, peak in peaks.items():
        if peak > 0 and dram > 0:
            ax.plot(xs, [min(peak, dram * x) for x in xs], lw=1, label=f"{unit} {peak:.0f} G/s, DRAM {dram:.0f} GB/s")
    for b in runs:
        if "threads:2" not in b["name"] or "flops_per_byte" not in b:
            continue
        perf = b.get("GFLOP/s")
        if perf is None and "GB/s" in b:
            perf = b["GB/s"] * b["flops_per_byte"]
        if not perf:
            continue
        ax.plot(b["flops_per_byte"], perf, "o", ms=5)
        short = re.sub(r"^(attention|gemm)/", "", b["name"]).split("/")[0]
        ax.annotate(short, (b["flops_per_byte"], perf), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=10)
    ax.set_xlabel("arithmetic intensity (operations per byte of DRAM traffic)")
    ax.set_ylabel("G operations / s")
    ax.set_title("pagedinfer, 2 threads, against the same run's ceilings")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


def main():
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "build/report")
    runs, context = load_runs(directory)
    table = summary(runs)
    (directory / "summary.md").write_text(table + "\n")
    print(table)
    try:
        roofline(runs, context, directory / "roofline.png")
        print(f"\nroofline chart: {directory / 'roofline.png'}")
    except ImportError:
        print("\n(no roofline chart: python3-matplotlib is not installed)")


if __name__ == "__main__":
    main()
