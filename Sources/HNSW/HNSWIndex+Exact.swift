import CKernels
import Dispatch

extension HNSWIndex {
    /// The `k` nearest among `candidates` (node ids), by computing every distance: exact. Nodes that are not
    /// live are skipped. Splits the work over `threads` when there are many candidates.
    /// - Throws: `dimensionMismatch`, `nonFiniteVector`, `invalidParameter` (k < 1).
    /// - Complexity: O(candidates × dimensions); no graph access.
    public func exactSearch(_ query: [Float], k: Int, candidates: [UInt32], threads: Int = 1) throws(HNSWError)
        -> IndexSearchResult
    {
        try query.withUnsafeBufferPointer { (q) throws(HNSWError) in try validate(q, label: nil) }
        guard k >= 1 else { throw HNSWError(.invalidParameter, "k must be ≥ 1, got \(k)") }
        var normalised = query
        if parameters.metric == .cosine { normalised.withUnsafeMutableBufferPointer { normalize($0) } }
        return withReadLock {
            let workers = candidates.count >= 40_000 ? max(1, threads) : 1
            let chunk = (candidates.count + workers - 1) / max(workers, 1)
            var partial = [[Neighbor]](repeating: [], count: workers)
            normalised.withUnsafeBufferPointer { q in
                candidates.withUnsafeBufferPointer { ids in
                    partial.withUnsafeMutableBufferPointer { out in
                        // SAFETY: each worker writes only its own slot of `out`; all buffers outlive the call.
                        let work = ScanWork(query: q.baseAddress!, ids: ids, out: out)
                        let body = { @Sendable (w: Int) in
                            let lo = w * chunk, hi = min(work.ids.count, lo + chunk)
                            if lo < hi { work.out[w] = self.scan(work.query, work.ids[lo..<hi], k: k) }
                        }
                        if workers == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: body) }
                    }
                }
            }
            var merged = partial.flatMap { $0 }
            merged.sort { ($0.distance, $0.node) < ($1.distance, $1.node) }
            var stats = SearchStats()
            stats.distanceComputations = candidates.count
            stats.visitedNodes = candidates.count
            let hits = merged.prefix(k).map {
                IndexHit(label: storage.labels[Int($0.node)], distance: parameters.metric.reported($0.distance), node: $0.node)
            }
            return IndexSearchResult(hits: hits, stats: stats)
        }
    }

    /// Top-k of one slice by a bounded max-heap. Caller holds the read lock.
    private func scan(_ query: UnsafePointer<Float>, _ ids: Slice<UnsafeBufferPointer<UInt32>>, k: Int) -> [Neighbor] {
        var heap = NeighborHeap(nearestFirst: false, capacity: k + 1)
        defer { heap.release() }
        let dim = parameters.dimensions
        let capacity = storage.capacity
        let lines = min((dim + 15) / 16, 32)  // 64-byte lines per vector, prefetched up to 2 KiB
        for i in ids.indices {
            // Fetch a few vectors ahead: candidates are sparse, so the hardware prefetcher does not help.
            if i + 4 < ids.endIndex, Int(ids[i + 4]) < capacity {
                let ahead = storage.vector(ids[i + 4])
                var line = 0
                while line < lines {
                    hs_prefetch(ahead + line &* 16)
                    line &+= 1
                }
            }
            let node = ids[i]
            guard Int(node) < capacity && storage.state(node) == .live else { continue }
            let d = kernel(query, storage.vector(node), dim)
            if heap.count < k {
                heap.push(Neighbor(distance: d, node: node))
            } else if d < heap.top.distance {
                heap.pop()
                heap.push(Neighbor(distance: d, node: node))
            }
        }
        var out: [Neighbor] = []
        while !heap.isEmpty { out.append(heap.pop()) }
        return out
    }
}

/// Buffers lent to the workers of one exact scan.
private struct ScanWork: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): read-only query and ids; each worker writes a distinct element of `out`.
    let query: UnsafePointer<Float>
    let ids: UnsafeBufferPointer<UInt32>
    let out: UnsafeMutableBufferPointer<[Neighbor]>
}
