import Dispatch
import CKernels

extension HNSWIndex {
    /// Matching nodes `linkSpread` samples at most, and slots it looks at to find them.
    public static let linkSpreadSample = 64
    static let linkSpreadSlots = 8192
    /// Links the sample must hold for `linkSpread` to tell.
    static let linkSpreadMinimumLinks = 256

    /// How the nodes `matches` picks (about `selectivity` of the live nodes) link to the rest of the graph: of the
    /// level-0 links of up to `linkSpreadSample` live matching nodes, the share leading to a live node outside the
    /// filter, ÷ the share a filter matching as many nodes at random would leave (1 − s). About 1 for a filter drawn
    /// independently of the vectors; near 0 for one that follows them (a topic, a region, a category of clustered
    /// data), whose nodes link among themselves because links join near rows. Within two standard deviations of
    /// a random filter's, 1 (the sample's noise). Nil where it cannot tell: s is 0 or 1, or the sample holds too
    /// few links. The nodes are visited in a scrambled order (a stride coprime to the capacity), so a filter on a
    /// row number's residue does not line up with the stride.
    /// - Complexity: at most `linkSpreadSlots` slots looked at and `linkSpreadSample` link lists read.
    public func linkSpread(selectivity s: Double, matches: (UInt32) -> Bool) -> Double? {
        let slots = nodeCapacity
        guard s > 0, s < 1, slots > 0 else { return nil }
        return withReadLock {
            let capacity = Int(storage.capacity)
            let step = Self.coprimeStep(slots)
            var slot = 0, sampled = 0, links = 0, outside = 0
            for _ in 0..<min(slots, Self.linkSpreadSlots) where sampled < Self.linkSpreadSample {
                let node = UInt32(slot)
                slot = (slot + step) % slots
                guard Int(node) < capacity, storage.state(node) == .live, matches(node) else { continue }
                sampled += 1
                let list = unsafe storage.linkList(node, level: 0)
                let count = unsafe min(Int(hs_load_acquire_u32(list)), storage.maxLinks0)
                for i in 0..<count {
                    let neighbour = unsafe hs_load_acquire_u32(list + 1 + i)
                    guard Int(neighbour) < capacity, storage.state(neighbour) == .live else { continue }
                    links += 1
                    if !matches(neighbour) { outside += 1 }
                }
            }
            guard links >= Self.linkSpreadMinimumLinks else { return nil }
            let expected = Double(links) * (1 - s)
            let deviation = (Double(links) * s * (1 - s)).squareRoot()
            guard Double(outside) < expected - 2 * deviation else { return 1 }
            return Double(outside) / expected
        }
    }

    /// A step near 0.618 of `n` that shares no factor with it, so stepping by it visits every slot once.
    package static func coprimeStep(_ n: Int) -> Int {
        guard n > 2 else { return 1 }
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        var step = max(1, Int(Double(n) * 0.618_034))
        while gcd(step, n) != 1 { step += 1 }
        return step
    }
}

extension HNSWIndex {
    /// Recall@k of the filtered graph search (mode a) under `filter` at `efforts` (ascending), for up to `queries`
    /// live nodes drawn at a stride coprime to the slots (from all the live nodes, so the queries lie as the data
    /// does; or from those `drawnFrom` admits, where the queries come from part of the data, such as a tenant's
    /// rows): each searched for as a query the graph has never seen (hidden: never visited, never returned), its
    /// answer compared with the exact k nearest among `candidates` (the filter's matches), itself left out. Per
    /// effort, each query's recall (`[effort][query]`), up to the first effort whose recalls `enough` accepts; a
    /// query with no answer among the candidates is skipped.
    /// - Complexity: per query, an exact scan of `candidates` and one filtered search per effort measured; the
    ///   queries spread over up to `threads` threads (each search and scan takes the index's read lock itself, so
    ///   call it holding no lock a writer could be waiting behind).
    package func filteredRecall(
        efforts: [Int], k: Int, queries: Int, filter: SearchFilter, candidates: [UInt32],
        drawnFrom: ((UInt32) -> Bool)? = nil, threads: Int = 1, enough: ([Double]) -> Bool = { _ in false }
    ) -> [[Double]] {
        guard k >= 1 else { return [] }
        let picked = strideSample(queries, drawnFrom: drawnFrom)
        let truths = Self.concurrentMap(picked.count, threads: threads) { i -> Set<UInt32> in
            let query = picked[i]
            guard let exact = try? self.exactSearch(query.vector, k: k + 1, candidates: candidates) else { return [] }
            return Set(exact.hits.filter { $0.node != query.node }.prefix(k).map(\.node))
        }
        let asked = zip(picked, truths).filter { !$0.1.isEmpty }.map {
            (node: $0.0.node, vector: $0.0.vector, truth: $0.1)
        }
        guard !asked.isEmpty else { return [] }
        var recalls: [[Double]] = []
        for effort in efforts {
            let measured = Self.concurrentMap(asked.count, threads: threads) { i -> Double in
                let query = asked[i]
                let hits =
                    (try? self.search(
                        query.vector, k: k, searchEffort: effort, filter: filter, mode: .admitMatching,
                        hiding: query.node
                    ).hits) ?? []
                return Double(hits.filter { query.truth.contains($0.node) }.count) / Double(query.truth.count)
            }
            recalls.append(measured)
            if enough(measured) { break }
        }
        return recalls
    }

    /// `body(0..<count)` in order, run on up to `threads` threads (each taking every `threads`-th index).
    package static func concurrentMap<T: Sendable>(
        _ count: Int, threads: Int, _ body: @Sendable (Int) -> T
    ) -> [T] {
        let workers = max(1, min(threads, count))
        guard workers > 1 else { return (0..<count).map(body) }
        let parts = Locked([[T]](repeating: [], count: workers))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let part = stride(from: w, to: count, by: workers).map(body)
            parts.withLock { $0[w] = part }
        }
        let done = parts.withLock { $0 }
        return (0..<count).map { done[$0 % workers][$0 / workers] }
    }

    /// Up to `count` live nodes (those `drawnFrom` admits, where given) and their vectors, drawn at a stride coprime
    /// to the slots: spread over the whole index, the same ones for the same index.
    package func strideSample(_ count: Int, drawnFrom: ((UInt32) -> Bool)? = nil) -> [(node: UInt32, vector: [Float])] {
        let slots = nodeCapacity
        guard slots > 0, count > 0 else { return [] }
        let step = Self.coprimeStep(slots)
        return withReadLock {
            var picked: [(node: UInt32, vector: [Float])] = []
            var slot = 0
            for _ in 0..<slots where picked.count < count {
                let node = UInt32(slot)
                slot = (slot + step) % slots
                guard Int(node) < storage.capacity, storage.state(node) == .live, drawnFrom?(node) ?? true else {
                    continue
                }
                let vector = unsafe Array(
                    UnsafeBufferPointer(start: storage.vector(node), count: parameters.dimensions))
                picked.append((node, vector))
            }
            return picked
        }
    }
}
