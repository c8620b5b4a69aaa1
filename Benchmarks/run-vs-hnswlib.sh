#!/usr/bin/env bash
# Builds in release mode, runs `hybrid-bench ann` and the hnswlib reference on the same dataset with the
# same parameters in the same run, and prints the compare table.
#   Benchmarks/run-vs-hnswlib.sh DATASET_DIR [OUT_DIR] [extra hybrid-bench/hnswlib flags, e.g. --queries 500]
# Needs: pip install hnswlib numpy.
set -euo pipefail
dataset=${1:?usage: run-vs-hnswlib.sh DATASET_DIR [OUT_DIR] [flags...]}
out=${2:-bench-results}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")/.." && pwd)
name=$(basename "$dataset")
mkdir -p "$out"
python3 -c "import hnswlib, numpy" 2>/dev/null || pip install -q hnswlib numpy
(cd "$here" && swift build -c release --product hybrid-bench >&2)
bench="$here/.build/release/hybrid-bench"
threads=$(nproc)
# The same ef list for both engines, finer than the program's default around the 0.90 / 0.95 lines, so the
# table compares the engines there and not where the grid happens to fall (an extra --ef overrides it).
ef=10,15,20,25,30,40,50,60,80,120,160,240,320,640
"$bench" ann --dataset "$dataset" --out "$out/$name.hybridstore.json" --build-threads "$threads" \
    --svg "$out/$name.svg" --ef "$ef" "$@"
python3 "$here/Benchmarks/hnswlib_reference.py" --dataset "$dataset" --out "$out/$name.hnswlib.json" \
    --build-threads "$threads" --ef "$ef" "$@"
"$bench" compare "$out/$name.hnswlib.json" "$out/$name.hybridstore.json" | tee "$out/$name.compare.txt"
