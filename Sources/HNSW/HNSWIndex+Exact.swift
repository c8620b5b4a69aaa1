import CKernels
import Dispatch

extension HNSWIndex {
    /// The `k` nearest among `candidates` (node ids): exact. Nodes that are not live are skipped. Splits the
    /// work over `threads` when there are many candidates. With int8 codes it reads the codes of every
    /// candidate (a quarter of the bytes) and float32 only for those whose distance bound can still reach
    /// the k nearest (see `scanCodes`); the result is the same.
    /// - Throws: `dimensionMismatch`, `nonFiniteVector`, `invalidParameter` (k < 1).
    /// - Complexity: O(candidates × dimensions); no graph access.
    public func exactSearch(
        _ query: [Float], k: Int, candidates: [UInt32], threads: Int = 1
    ) throws(HNSWError)
        -> IndexSearchResult
    {
        unsafe try query.withUnsafeBufferPointer { (q) throws(HNSWError) in unsafe try validate(q, label: nil) }
        guard k >= 1 else { throw HNSWError(.invalidParameter, "k must be ≥ 1, got \(k)") }
        let k = min(k, max(1, candidates.count))
        var normalised = query
        if parameters.metric == .cosine { unsafe normalised.withUnsafeMutableBufferPointer { unsafe normalize($0) } }
        return withReadLock {
            let workers = candidates.count >= 40_000 ? max(1, threads) : 1
            let chunk = (candidates.count + workers - 1) / max(workers, 1)
            var partial = [[Neighbor]](repeating: [], count: workers)
            unsafe normalised.withUnsafeBufferPointer { q in
                unsafe candidates.withUnsafeBufferPointer { ids in
                    unsafe partial.withUnsafeMutableBufferPointer { out in
                        // SAFETY: each worker writes only its own slot of `out`; all buffers outlive the call.
                        let work = unsafe ScanWork(query: q.baseAddress!, ids: ids, out: out)
                        let body = { @Sendable (w: Int) in
                            let lo = w * chunk, hi = unsafe min(work.ids.count, lo + chunk)
                            guard lo < hi else { return }
                            unsafe work.out[w] =
                                unsafe self.storage.hasCodes
                                ? self.scanCodes(work.query, work.ids[lo..<hi], k: k)
                                : self.scan(work.query, work.ids[lo..<hi], k: k)
                        }
                        if workers == 1 {
                            body(0)
                        } else {
                            DispatchQueue.concurrentPerform(iterations: workers, execute: body)
                        }
                    }
                }
            }
            var merged = partial.flatMap { $0 }
            merged.sort { ($0.distance, $0.node) < ($1.distance, $1.node) }
            var stats = SearchStats()
            stats.distanceComputations = candidates.count
            stats.visitedNodes = candidates.count
            let hits = merged.prefix(k).map {
                IndexHit(
                    label: storage.label($0.node), distance: parameters.metric.reported($0.distance),
                    node: $0.node)
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
        for i in unsafe ids.indices {
            // Fetch a few vectors ahead: candidates are sparse, so the hardware prefetcher does not help.
            if unsafe i + 4 < ids.endIndex, unsafe Int(ids[i + 4]) < capacity {
                let ahead = unsafe storage.vector(ids[i + 4])
                var line = 0
                while line < lines {
                    unsafe hs_prefetch(ahead + line &* 16)
                    line &+= 1
                }
            }
            let node = unsafe ids[i]
            guard Int(node) < capacity && storage.state(node) == .live else { continue }
            let d = unsafe kernel(query, storage.vector(node), dim)
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

extension HNSWIndex {
    /// Exact top-k of one slice through int8 codes. Each code's decoded vector x̂ lies within `codeErrors`
    /// (r, the stored ‖x − x̂‖) of the vector x, so from the code distance d̂ the true distance is bounded:
    /// for L2, √d ∈ [√d̂ − r, √d̂ + r]; for the dot metrics, |q·x − q·x̂| ≤ ‖q‖ r (Cauchy–Schwarz), widened
    /// by a margin for float32 rounding. Pass 1 bounds every candidate from its code; the k-th smallest upper
    /// bound caps the true k-th distance, so only candidates whose lower bound is below it can be among the k
    /// nearest. Pass 2 scores those in float32, lowest bound first, until the next bound exceeds the k-th
    /// exact distance found. Ties at the k-th distance are kept (a bound equal to it is scored).
    /// Caller holds the read lock.
    private func scanCodes(
        _ query: UnsafePointer<Float>, _ ids: Slice<UnsafeBufferPointer<UInt32>>,
        k: Int
    ) -> [Neighbor] {
        let dim = parameters.dimensions
        let capacity = storage.capacity
        let approximate = unsafe CodeDistance(
            query: query, storage: storage, metric: parameters.metric, kernels: codeKernel)
        let exact = unsafe floatDistance(query)
        let l2 = parameters.metric == .l2
        var queryNorm: Float = 0
        for i in 0..<dim { unsafe queryNorm += query[i] * query[i] }
        queryNorm = queryNorm.squareRoot()
        let rounding: Float = 3e-5  // float32 sums of up to thousands of terms, relative
        var lower: [Neighbor] = []
        var upper: [Float] = []
        unsafe lower.reserveCapacity(ids.count)
        unsafe upper.reserveCapacity(ids.count)
        for i in unsafe ids.indices {
            // Fetch a few codes ahead: candidates are sparse, so the hardware prefetcher does not help.
            if unsafe i + 4 < ids.endIndex, unsafe Int(ids[i + 4]) < capacity {
                unsafe approximate.prefetchHead(ids[i + 4])
                unsafe approximate.prefetchTail(ids[i + 4])
                unsafe storage.prefetchCodeError(ids[i + 4])
            }
            let node = unsafe ids[i]
            guard Int(node) < capacity && storage.state(node) == .live else { continue }
            let d = unsafe approximate(node)
            let r = storage.codeError(node) * (1 + rounding)
            if l2 {
                let root = max(d, 0).squareRoot()
                let spread = r + rounding * root
                let low = max(0, root - spread)
                lower.append(Neighbor(distance: low * low, node: node))
                upper.append((root + spread) * (root + spread))
            } else {
                let spread =
                    unsafe queryNorm * r + rounding
                    * (abs(d) + queryNorm * approximate.scales[Int(node)] * 127
                        * Float(dim).squareRoot())
                lower.append(Neighbor(distance: d - spread, node: node))
                upper.append(d + spread)
            }
        }
        // The k-th smallest upper bound: no candidate with a lower bound above it can be among the k nearest.
        var cap = Float.infinity
        if upper.count > k {
            var top = NeighborHeap(nearestFirst: false, capacity: k + 1)
            defer { top.release() }
            for u in upper {
                if top.count < k {
                    top.push(Neighbor(distance: u, node: 0))
                } else if u < top.top.distance {
                    top.pop()
                    top.push(Neighbor(distance: u, node: 0))
                }
            }
            cap = top.top.distance
        }
        var survivors = lower.filter { $0.distance <= cap }
        survivors.sort { ($0.distance, $0.node) < ($1.distance, $1.node) }
        // The heap holds the k smallest exact distances so far (for the stopping rule); every scored candidate is
        // kept so that ties at the k-th distance resolve by node id, as in the float32 scan's final sort.
        var heap = NeighborHeap(nearestFirst: false, capacity: k + 1)
        defer { heap.release() }
        var scored: [Neighbor] = []
        for (i, candidate) in survivors.enumerated() {
            if heap.count == k && candidate.distance > heap.top.distance { break }
            if i + 2 < survivors.count {
                unsafe exact.prefetchHead(survivors[i + 2].node)
                unsafe exact.prefetchTail(survivors[i + 2].node)
            }
            let d = unsafe exact(candidate.node)
            scored.append(Neighbor(distance: d, node: candidate.node))
            if heap.count < k {
                heap.push(Neighbor(distance: d, node: candidate.node))
            } else if d < heap.top.distance {
                heap.pop()
                heap.push(Neighbor(distance: d, node: candidate.node))
            }
        }
        scored.sort { ($0.distance, $0.node) < ($1.distance, $1.node) }
        return Array(scored.prefix(k))
    }
}

/// Buffers lent to the workers of one exact scan.
@unsafe private struct ScanWork: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): read-only query and ids; each worker writes a distinct element of `out`.
    let query: UnsafePointer<Float>
    let ids: UnsafeBufferPointer<UInt32>
    let out: UnsafeMutableBufferPointer<[Neighbor]>
}
