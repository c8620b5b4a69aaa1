#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer and AddressSanitizer, then fuzzes each from the committed seed corpus
# (Tests/Fuzz/Corpus/TARGET). New inputs go to a scratch corpus, never into the committed one; a crash leaves
# its input in $FUZZ_OUT (default .build-fuzz/findings) and fails the script.
#
#   Tests/Fuzz/run.sh -max_total_time=20              # every target, 20 s each (what CI runs)
#   Tests/Fuzz/run.sh -runs=1000000 filter-text csv   # a long run of some targets
#
# Arguments starting with '-' go to libFuzzer; others name targets (default: all).
set -euo pipefail
cd "$(dirname "$0")/../.."

flags=()
targets=()
for a in "$@"; do
    case "$a" in
        -*) flags+=("$a") ;;
        *) targets+=("$a") ;;
    esac
done
[ ${#flags[@]} -gt 0 ] || flags=(-max_total_time=20)
[ ${#targets[@]} -gt 0 ] || targets=(filter-text filter-json jsonl csv npy fvecs snapshot cold-block text-query schema-json)

swiftc_dir=$(dirname "$(readlink -f "$(command -v swiftc)")")
fuzzer_lib=$(find "$swiftc_dir/../lib/clang" -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -n 1)
[ -n "$fuzzer_lib" ] || { echo "fuzz: libFuzzer (libclang_rt.fuzzer_no_main) not found beside swiftc" >&2; exit 1; }

# libFuzzer's own main is not linked (fuzzer_no_main): the target's @main calls LLVMFuzzerRunDriver, because
# SwiftPM links an executable's entry point as `main` itself.
swift build -c release --scratch-path .build-fuzz --product hybridstore-fuzz \
    -Xswiftc -DFUZZING -Xswiftc -sanitize=address \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xlinker "$fuzzer_lib" -Xlinker -lstdc++ 2>&1 | grep -Ev 'warning: Cannot export local symbol' | tail -n 3
binary=.build-fuzz/release/hybridstore-fuzz

out=${FUZZ_OUT:-.build-fuzz/findings}
mkdir -p "$out"
status=0
for t in "${targets[@]}"; do
    work="$out/corpus-$t"
    mkdir -p "$work"
    log="$out/$t.log"
    # The Swift runtime's backtracer would hold a crashing child for its report; libFuzzer reports instead.
    if SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$binary" "$t" "$work" "Tests/Fuzz/Corpus/$t" \
        -artifact_prefix="$out/$t-" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 -print_final_stats=1 \
        "${flags[@]}" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "fuzz $t: $runs executions, no crash"
    else
        status=1
        echo "fuzz $t: FAILED (log $log)" >&2
        grep -E 'ERROR|Fatal error|SUMMARY|Test unit written|deadly' "$log" | head -n 12 >&2 || true
    fi
done
exit $status
