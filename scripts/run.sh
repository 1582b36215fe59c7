#!/usr/bin/env bash
# Main job: install dependencies, build in Release, run the headline benchmark cases (each
# binary measures the machine's ceilings first), print one summary table and draw a roofline
# chart in build/report/. --full runs every case (over 30 minutes on 2 cores); any other
# argument goes to every benchmark binary.
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
args=()
for a in "$@"; do
  if [ "$a" = "--full" ]; then full=1; else args+=("$a"); fi
done
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPAGEDINFER_BUILD_TESTS=OFF >/dev/null
cmake --build build -j2
mkdir -p build/report
rm -f build/report/bench_*.json

# The headline cases: 2 threads, the shapes the targets are set on (docs/performance.md).
declare -A headline=(
  [bench_attention]='attention/(decode_b8_ctx4096|decode_b1_ctx32768|prefill_512|vllm_b64_q512_kv512|paged_vs_dense_b8_ctx4096|cascade_vs_flat_b64_prefix4096|kv_(int8|fp8|fp16)_vs_bf16_b8_ctx4096|mla_decode_b8_ctx4096|tree_verify_b8_draft64_ctx4096)/.*threads:2'
  [bench_gemm]='gemm/(w[a0-9]+_vs_stream_m(1|8)_14336x4096|w4a16_m8_14336x4096|w8a8_m8_14336x4096|w[a0-9]+_m512_4096x4096|w(8a8|16a16)_vs_onednn_m512_4096x4096)/threads:2'
  [bench_kv_cache]='kv_cache/(append_decode_64tok|gather_blocks_1024)/threads:2'
  [bench_norm]='norm/(rmsnorm_t512|fused_add_rmsnorm_t512)/bf16/threads:2'
  [bench_rope]='rope/(rope_neox_t512|rope_append_t512)/bf16/threads:2'
  [bench_sampling]='sampling/(sample_topk_topp|sample_plain|sample_greedy)_b64_v152064/threads:2'
  [bench_e2e]='threads:2'
)
./build/tools/pagedinfer-info
for b in bench_attention bench_gemm bench_kv_cache bench_norm bench_rope bench_sampling bench_e2e; do
  echo "=== $b"
  filter=()
  # Headline cases: medians of 3 repetitions.
  [ "$full" = 1 ] || filter=(--benchmark_filter="${headline[$b]}" --benchmark_repetitions=3
                             --benchmark_report_aggregates_only=true)
  ./build/bench/$b "${filter[@]}" --benchmark_out=build/report/$b.json --benchmark_out_format=json "${args[@]}"
done
echo "=== bench_distributed: the tensor-parallel engine at 1 rank x 1 and 2 threads and 2 ranks x 1 thread"
for config in "1 1 core" "1 2 none" "2 1 core"; do
  read -r ranks threads bind <<< "$config"
  mpirun --allow-run-as-root --bind-to $bind -np $ranks ./build/bench/bench_distributed --threads $threads \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out=build/report/bench_distributed_r${ranks}t${threads}.json --benchmark_out_format=json "${args[@]}"
done
echo "=== disaggregated_serve (examples/distributed): prefill on rank 0, decode on rank 1"
mpirun --allow-run-as-root --bind-to core -np 2 ./build/examples/distributed/disaggregated_serve --model llama3-8b \
  --distinct-layers 1 --batch 3 --context 512 --decode 4 --local 1
echo "=== serve_decoder (examples/decoder): continuous batching on the tiny model"
./build/examples/serve_decoder --model tiny --batch 8 --context 256 --decode 32 --threads 2
echo "=== summary (build/report/summary.md)"
/usr/bin/python3 scripts/report.py build/report
