#!/usr/bin/env python3
"""Recall of `hybridctl query -k K` against exact answers by numpy, for several k.

    Benchmarks/k-recall.py --dataset DIR --store STORE --k 10,100,1000 [--where "price < 10" --keep "a['price'] < 10"]

DIR is a dataset in the shared format (meta.json, base.f32, base.jsonl, queries.f32); STORE holds it as collection
`bench` with integer ids equal to the row numbers (`hybridctl import --store STORE bench DIR`). `--keep` is the
filter as a Python expression over a row's attributes `a` (from base.jsonl), for the exact answers. L2 only.
"""
import argparse, json, subprocess
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--dataset", required=True)
p.add_argument("--store", required=True)
p.add_argument("--k", default="10,100,1000")
p.add_argument("--where", default="")
p.add_argument("--keep", default="True")
p.add_argument("--queries", type=int, default=20)
p.add_argument("--hybridctl", default=".build/release/hybridctl")
p.add_argument("--extra", default="", help="more `hybridctl query` arguments, space-separated (e.g. \"--ef 80\")")
args = p.parse_args()

meta = json.load(open(f"{args.dataset}/meta.json"))
dim = meta["dim"]
base = np.fromfile(f"{args.dataset}/base.f32", dtype=np.float32).reshape(-1, dim)
queries = np.fromfile(f"{args.dataset}/queries.f32", dtype=np.float32).reshape(-1, dim)
rows = [json.loads(line) for line in open(f"{args.dataset}/base.jsonl")]
keep = np.array([bool(eval(args.keep, {}, {"a": a})) for a in rows])
for k in [int(x) for x in args.k.split(",")]:
    recalls = []
    for q in queries[: args.queries]:
        d = ((base - q) ** 2).sum(1)
        d[~keep] = np.inf
        want = min(k, int(keep.sum()))
        truth = set(np.argsort(d, kind="stable")[:want].tolist())
        command = [args.hybridctl, "query", "--store", args.store, "bench", "-k", str(k),
                   "--vector", "[" + ",".join(map(str, q.tolist())) + "]"]
        if args.where:
            command += ["--where", args.where]
        command += args.extra.split()
        lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split("\n")[2:]
        got = {int(line.split()[0]) for line in lines if line.strip()}
        recalls.append(len(got & truth) / max(len(truth), 1))
    print(f"k {k}  where {args.where or '(none)'}  recall {np.mean(recalls):.3f}  min {np.min(recalls):.3f}  "
          f"({len(recalls)} queries)")
