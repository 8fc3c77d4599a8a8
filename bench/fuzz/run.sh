#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz/ (docs/fuzzing.md), built by clang-16 with
# -fsanitize=fuzzer,address,undefined into build-fuzz/ (the `fuzz` preset), each run for a number of
# inputs from its seed corpus and dictionary. New inputs go to build-fuzz/corpus/<target>/ (the
# tree's corpus is only read); crashes to build-fuzz/artifacts/. Prints execs, coverage and corpus
# size per target; exits non-zero if any target crashed.
#
#   bench/fuzz/run.sh [RUNS] [TARGET...]       RUNS: inputs per target (default 1000000)
#   FUZZ_SECONDS=600 bench/fuzz/run.sh         a time bound per target instead (-max_total_time)
#   JOBS=4 bench/fuzz/run.sh                   build parallelism (default 1); runs are niced
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS="${1:-1000000}"
[ $# -gt 0 ] && shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(collector_parser kafka_message profile_codec cel ndjson_import http_request)
JOBS="${JOBS:-1}"

bash scripts/install-deps.sh --fuzz
cmake --preset fuzz -Wno-dev >/dev/null
nice -n 19 cmake --build --preset fuzz -j "$JOBS" --target "${TARGETS[@]/%/_fuzz}"

mkdir -p build-fuzz/artifacts
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
# Symbolized stacks in sanitizer reports.
if [ -x /usr/lib/llvm-16/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-16/bin/llvm-symbolizer
fi
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
limit=(-runs="$RUNS")
[ -n "${FUZZ_SECONDS:-}" ] && limit=(-max_total_time="$FUZZ_SECONDS")
summary=()
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/$t.log"
  echo "== $t: ${limit[*]}"
  start=$(date +%s)
  rc=0
  nice -n 19 "build-fuzz/tests/fuzz/${t}_fuzz" "${limit[@]}" -dict="tests/fuzz/dict/$t.dict" \
    -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" \
    "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="CRASH (rc $rc, see $log and build-fuzz/artifacts/)"
    failed=1
    grep -E 'ERROR: |runtime error|FUZZ_CHECK|Test unit written' "$log" | head -5 || true
  fi
  summary+=("$(printf '%-18s %10s execs %6ss  cov %6s  ft %7s  corpus %6s  %s' \
    "$t" "${execs:-?}" "$secs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status")")
done
echo
printf '%s\n' "${summary[@]}"
exit "$failed"
