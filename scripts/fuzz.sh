#!/usr/bin/env bash
# Fuzzing: builds the libFuzzer targets (tests/fuzz/) with clang 14, AddressSanitizer and UBSan,
# and runs each for SECONDS (default 60), two at a time, on a copy of its seed corpus
# (tests/fuzz/corpus/<target>/). A crash leaves its reproducer in build-fuzz/artifacts/ and
# fails the script: turn it into a regression test.
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
$( [ "$(id -u)" -eq 0 ] || echo sudo ) apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev \
  libomp-14-dev >/dev/null
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDINFER_FUZZ=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" \
  -DPAGEDINFER_BUILD_TESTS=OFF -DPAGEDINFER_BUILD_BENCHMARKS=OFF -DPAGEDINFER_BUILD_EXAMPLES=OFF \
  -DPAGEDINFER_BUILD_PYTHON=OFF -DPAGEDINFER_BUILD_TOOLS=OFF >/dev/null
cmake --build build-fuzz -j2
mkdir -p build-fuzz/artifacts
run() {
  local target=$1 corpus=build-fuzz/corpus/$1
  rm -rf "$corpus" && mkdir -p "$corpus" && cp tests/fuzz/corpus/"$target"/* "$corpus"/
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./build-fuzz/tests/fuzz/"$target" "$corpus" \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
      -artifact_prefix=build-fuzz/artifacts/"$target"- > build-fuzz/"$target".log 2>&1; then
    echo "$target: $(grep -E 'stat::number_of_executed_units' build-fuzz/"$target".log | awk '{print $2}') inputs, no crash"
  else
    echo "$target: FAILED"; tail -40 build-fuzz/"$target".log; return 1
  fi
}
status=0
targets=$(ls build-fuzz/tests/fuzz/ | grep '^fuzz_' | grep -v '\.' || true)
set -- $targets
while [ $# -gt 0 ]; do
  run "$1" & a=$!
  if [ $# -gt 1 ]; then run "$2" & b=$!; wait $b || status=1; shift; fi
  wait $a || status=1
  shift
done
exit $status
