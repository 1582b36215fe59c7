"""Validating an implementation against golden vectors, end to end.

    pagedinfer-golden --suite golden/ --filter qwen-1.8b      # or pagedinfer.golden.generate(...)
    python3 validate_with_golden.py golden/                   # every case in the folder

For each golden file: read the inputs, run the implementation under test, check its outputs
against the reference and the per-element bound. Here the implementation is pagedinfer's own
CPU kernels; an accelerator team replaces `candidate()` with its kernel (moving the tensors to
its device and back). The exit status is 0 when every case passes.
"""
import glob
import os
import sys

from pagedinfer import golden


def candidate(case):
    """The outputs of the implementation under test, as a dict name -> tensor: for attention
    "out" and "lse", for linear "y", for rope "q_out" and "k_out", for rms_norm "out" (and
    "residual_out" with the fused add). case.spec says how to call it."""
    return golden.run_pagedinfer(case, num_threads=2)


def main(folder):
    paths = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not paths:
        sys.exit(f"no .safetensors files in {folder}")
    failed = 0
    for path in paths:
        case = golden.load(path)
        report = golden.check(case, candidate(case))
        worst = max(o["max_bound_ratio"] for o in report.outputs)
        print(f"{'PASS' if report else 'FAIL'}  {os.path.basename(path)}  max |error| / bound {worst:.3g}")
        if not report:
            print(report)
            failed += 1
    print(f"{len(paths) - failed} of {len(paths)} cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "golden"))
