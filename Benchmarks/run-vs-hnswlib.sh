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
"$bench" ann --dataset "$dataset" --out "$out/$name.hybridstore.json" --build-threads "$threads" \
    --svg "$out/$name.svg" "$@"
python3 "$here/Benchmarks/hnswlib_reference.py" --dataset "$dataset" --out "$out/$name.hnswlib.json" \
    --build-threads "$threads" "$@"
"$bench" compare "$out/$name.hnswlib.json" "$out/$name.hybridstore.json" | tee "$out/$name.compare.txt"
