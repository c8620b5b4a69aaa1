#!/usr/bin/env bash
# The planner benchmark: every filter class through the store's public search (`hybrid-bench hybrid`), against
# hnswlib with a filter callable and against an exact numpy scan of the matching rows, on the same dataset in
# the same run, then the compare table.
#   Benchmarks/run-hybrid.sh DATASET_DIR [OUT_DIR] [REFERENCE_QUERIES]
# REFERENCE_QUERIES (default 200) limits the hnswlib runs, whose Python filter callable makes restrictive
# classes take minutes per ef; recall and QPS are means over the queries each engine ran.
set -euo pipefail
dataset=${1:?usage: run-hybrid.sh DATASET_DIR [OUT_DIR] [REFERENCE_QUERIES]}
out=${2:-bench-results}
refq=${3:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
name=$(basename "$dataset")
mkdir -p "$out"
python3 -c "import hnswlib, numpy" 2>/dev/null || pip install -q hnswlib numpy
(cd "$here" && swift build -c release --product hybrid-bench >&2)
bench="$here/.build/release/hybrid-bench"
# --warmup: the store first calibrates its effort on the query stream (RecallCalibration), then is measured
# reopened with the default configuration.
"$bench" hybrid --dataset "$dataset" --warmup 30 --out "$out/$name.hybrid.json" --svg "$out/$name.hybrid.svg"
# numpy with its own best kernels (see the env notes on OPENBLAS_* on these machines).
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 "$here/Benchmarks/hnswlib_reference.py" --engine exact \
    --dataset "$dataset" --out "$out/$name.exact.json"
python3 "$here/Benchmarks/hnswlib_reference.py" --dataset "$dataset" --out "$out/$name.hnswlib-filter.json" \
    --build-threads "$(nproc)" --ef 10,20,40,80,160 --queries "$refq"
"$bench" compare "$out/$name.hnswlib-filter.json" "$out/$name.exact.json" "$out/$name.hybrid.json" \
    --thresholds 0.95 | tee "$out/$name.hybrid-compare.txt"
