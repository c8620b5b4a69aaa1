#!/usr/bin/env bash
# Fuzzes the service's search-request reader (libFuzzer + AddressSanitizer), compiled alone with swiftc, from the
# committed seed corpus; new inputs go to a scratch corpus. A crash leaves its input in $FUZZ_OUT and fails.
#   Examples/RAGService/Fuzz/run.sh -max_total_time=15      # what CI runs
#   Examples/RAGService/Fuzz/run.sh -runs=5000000           # a long run
set -euo pipefail
cd "$(dirname "$0")/.."
out=${FUZZ_OUT:-.build-fuzz/findings}
mkdir -p "$out/corpus-search-request" .build-fuzz
swiftc -O -parse-as-library -sanitize=fuzzer,address \
    Sources/RAGServiceCore/SearchRequestReader.swift Fuzz/SearchRequestFuzz.swift -o .build-fuzz/search-request-fuzz \
    2>&1 | { grep -Ev 'warning: Cannot export local symbol' || true; }
[ $# -gt 0 ] || set -- -max_total_time=20
log="$out/search-request.log"
if SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 .build-fuzz/search-request-fuzz \
    "$out/corpus-search-request" Fuzz/Corpus/search-request -artifact_prefix="$out/search-request-" -timeout=10 \
    -max_len=4096 -print_final_stats=1 "$@" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz search-request: $runs executions, no crash"
else
    echo "fuzz search-request: FAILED (log $log)" >&2
    grep -E 'ERROR|Fatal error|SUMMARY|Test unit written|deadly' "$log" | head -n 12 >&2 || true
    exit 1
fi
