#!/usr/bin/env bash
# Main job: install dependencies, build in Release, print the benchmark report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGEDINFER_BUILD_TESTS=OFF
cmake --build build -j2
mkdir -p build/report
for b in bench_attention bench_kv_cache bench_norm bench_rope bench_gemm bench_e2e; do
  echo "=== $b"
  ./build/bench/$b --benchmark_out=build/report/$b.json --benchmark_out_format=json "$@"
done
echo "=== serve_decoder (examples/decoder): continuous batching on the tiny model"
./build/examples/serve_decoder --model tiny --batch 8 --context 256 --decode 32 --threads 2
echo "JSON results: build/report/*.json"
