#!/usr/bin/env python3
"""Reference runner: hnswlib on a FORMAT.md dataset, writing the same results JSON as `hybrid-bench ann`.

    pip install hnswlib numpy
    python3 Benchmarks/hnswlib_reference.py --dataset DIR --out hnswlib.json [--connectivity 16]
        [--ef-construction 200] [--ef 10,20,40,80,160,320,640] [--build-threads N] [--queries N]

Same build parameters and thread count as the Swift run; queries run one at a time on one thread. Filtered
classes use hnswlib's filter callable over a mask evaluated from the filter's JSON tree with numpy (the filter
cost is not counted, as in PEERS.md). Recall@10 is FORMAT.md's definition.
"""
import argparse
import json
import os
import platform
import resource
import time

import hnswlib
import numpy as np


def load(directory):
    meta = json.load(open(os.path.join(directory, "meta.json")))
    dim, count, qn = meta["dim"], meta["count"], meta["query_count"]
    base = np.fromfile(os.path.join(directory, "base.f32"), dtype="<f4").reshape(count, dim)
    queries = np.fromfile(os.path.join(directory, "queries.f32"), dtype="<f4").reshape(qn, dim)
    rows = [json.loads(line) for line in open(os.path.join(directory, "base.jsonl")) if line.strip()]
    columns = {}
    for key in rows[0]:
        if key == "id":
            continue
        values = [r.get(key) for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None):
            columns[key] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            columns[key] = np.array(values, dtype=object)
    cases = [json.loads(line) for line in open(os.path.join(directory, "filters.jsonl")) if line.strip()]
    return meta, base, queries, columns, cases


def mask_of(node, columns, count):
    (op, arg), = node.items()
    if op == "and":
        m = np.ones(count, dtype=bool)
        for child in arg:
            m &= mask_of(child, columns, count)
        return m
    if op == "or":
        m = np.zeros(count, dtype=bool)
        for child in arg:
            m |= mask_of(child, columns, count)
        return m
    if op == "not":
        return ~mask_of(arg, columns, count)
    if op == "between":
        col, lo, hi = arg
        c = columns[col]
        return (c >= lo) & (c <= hi)
    if op == "in":
        col, values = arg
        return np.isin(columns[col], values)
    col, value = arg
    c = columns[col]
    return {"eq": c == value, "ne": c != value, "lt": c < value, "lte": c <= value,
            "gt": c > value, "gte": c >= value}[op]


def recall(result, gt, k=10):
    truth = set(gt[:k])
    if not truth:
        return 1.0 if len(result) == 0 else 0.0
    return len(truth.intersection(result[:k])) / min(k, len(truth))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--connectivity", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="10,20,40,80,160,320,640")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count())
    ap.add_argument("--queries", type=int)
    ap.add_argument("--classes")
    ap.add_argument("--engine", choices=["hnswlib", "exact"], default="hnswlib",
                    help="exact: a numpy scan over the matching rows, ids given (the PEERS.md 'exact' column)")
    args = ap.parse_args()
    efs = [int(x) for x in args.ef.split(",")]
    meta, base, queries, columns, cases = load(args.dataset)
    count, dim = base.shape
    space = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[meta.get("metric", "l2")]

    if args.engine == "exact":
        return run_exact(args, meta, base, queries, columns, cases)
    index = hnswlib.Index(space=space, dim=dim)
    index.init_index(max_elements=count, M=args.connectivity, ef_construction=args.ef_construction, random_seed=100)
    index.set_num_threads(args.build_threads)
    t0 = time.perf_counter()
    index.add_items(base, np.arange(count))
    build_seconds = time.perf_counter() - t0
    print(f"hnswlib built in {build_seconds:.2f} s on {args.build_threads} threads", flush=True)
    index.set_num_threads(1)

    wanted = set(args.classes.split(",")) if args.classes else None
    classes = []
    for c in cases:
        if c["class"] not in classes and (wanted is None or c["class"] in wanted):
            classes.append(c["class"])
    runs = []
    mask_cache = {}
    for cls in classes:
        cc = [c for c in cases if c["class"] == cls]
        if args.queries:
            cc = cc[: args.queries]
        filters = []
        for c in cc:
            if not c.get("json"):
                filters.append(None)
                continue
            key = c["where"] or json.dumps(c["json"], sort_keys=True)
            if key not in mask_cache:
                allowed = bytes(mask_of(c["json"], columns, count).astype(np.uint8))
                mask_cache[key] = allowed.__getitem__
            filters.append(mask_cache[key])
        for ef in efs:
            index.set_ef(ef)
            lat = []
            rsum = 0.0
            wall0 = time.perf_counter()
            for c, f in zip(cc, filters):
                q = queries[c["qid"]]
                t = time.perf_counter()
                try:
                    labels, _ = index.knn_query(q, k=10, filter=f)
                    got = labels[0].tolist()
                except RuntimeError:  # fewer than k matches reachable
                    got = []
                lat.append(time.perf_counter() - t)
                rsum += recall(got, c["gt"])
            wall = time.perf_counter() - wall0
            lat.sort()
            run = {"class": cls, "effort": ef, "queries": len(cc), "recall_at_10": rsum / max(len(cc), 1),
                   "qps": len(cc) / wall, "p50_ms": lat[len(lat) // 2] * 1e3,
                   "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3,
                   "plans": {"hnswlib_filter" if filters[0] else "graph": len(cc)}}
            runs.append(run)
            print(f"{cls:16s} ef {ef:4d}  recall {run['recall_at_10']:.4f}  qps {run['qps']:9.1f}  "
                  f"p50 {run['p50_ms']:.3f} ms", flush=True)
    result = {
        "program": "hnswlib_reference.py", "mode": "ann", "engine": "hnswlib",
        "dataset": {"name": meta.get("name", ""), "count": count, "dim": dim, "metric": meta.get("metric", "l2")},
        "host": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "params": {"connectivity": args.connectivity, "ef_construction": args.ef_construction,
                   "build_threads": args.build_threads, "query_threads": 1},
        "build_seconds": build_seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "runs": runs,
    }
    json.dump(result, open(args.out, "w"), indent=1)


def run_exact(args, meta, base, queries, columns, cases):
    """Exact top-10 by numpy over just the matching rows (their ids computed beforehand, not timed)."""
    count, dim = base.shape
    metric = meta.get("metric", "l2")
    if metric == "cosine":
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
    wanted = set(args.classes.split(",")) if args.classes else None
    classes = []
    for c in cases:
        if c["class"] not in classes and (wanted is None or c["class"] in wanted):
            classes.append(c["class"])
    runs, id_cache = [], {}
    for cls in classes:
        cc = [c for c in cases if c["class"] == cls][: args.queries or None]
        ids = []
        for c in cc:
            key = c["where"] or json.dumps(c.get("json"), sort_keys=True)
            if key not in id_cache:
                id_cache[key] = (np.flatnonzero(mask_of(c["json"], columns, count)) if c.get("json")
                                 else np.arange(count))
            ids.append(id_cache[key])
        lat, rsum = [], 0.0
        wall0 = time.perf_counter()
        for c, sel in zip(cc, ids):
            t = time.perf_counter()
            q = queries[c["qid"]]
            sub = base[sel]
            if metric == "l2":
                d = ((sub - q) ** 2).sum(axis=1)
            else:
                qq = q / max(np.linalg.norm(q), 1e-30) if metric == "cosine" else q
                d = -(sub @ qq)
            k = min(10, len(d))
            top = sel[np.argpartition(d, k - 1)[:k]] if k > 0 else sel[:0]
            lat.append(time.perf_counter() - t)
            rsum += recall(top.tolist(), c["gt"])
        wall = time.perf_counter() - wall0
        lat.sort()
        runs.append({"class": cls, "effort": None, "queries": len(cc), "recall_at_10": rsum / max(len(cc), 1),
                     "qps": len(cc) / wall, "p50_ms": lat[len(lat) // 2] * 1e3,
                     "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3, "plans": {"exact": len(cc)}})
        print(f"{cls:16s} exact  recall {runs[-1]['recall_at_10']:.4f}  qps {runs[-1]['qps']:9.1f}", flush=True)
    result = {"program": "hnswlib_reference.py", "mode": "ann", "engine": "exact-numpy",
              "dataset": {"name": meta.get("name", ""), "count": count, "dim": dim, "metric": metric},
              "host": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
              "params": {"query_threads": 1}, "runs": runs}
    json.dump(result, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
