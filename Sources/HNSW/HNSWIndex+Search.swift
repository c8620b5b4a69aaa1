import CKernels

/// In mode b, a node whose two-hop neighbourhood yields fewer new matching nodes than this also expands its
/// non-matching neighbours as navigation candidates. Measured on synth-200k (300 queries, ef 10/40/160):
/// counting all matches instead of new ones stalls (recall@10 ≤ 0.80 on `tenant` at any ef); with new ones,
/// 1 reaches 0.94 on `tenant` at ef 40, 2 reaches 0.96 there and 0.999 on `price_lt_1pct`, 4 costs 3× the
/// distance computations at 10 % selectivity for +0.02 recall.
let sparseNeighbourhood = 2

extension HNSWIndex {
    /// The `k` nearest live vectors to `query`, nearest first.
    ///
    /// - Parameters:
    ///   - k: how many hits at most (≥ 1).
    ///   - searchEffort: candidate list size ("ef" in the paper); raised to `k` when smaller. Default `max(k, 64)`.
    ///   - filter: only nodes it admits are returned; nil returns any live node.
    ///   - mode: how a filtered search walks the graph (see `FilteredSearchMode`); ignored without a filter.
    /// - Throws: `dimensionMismatch`, `nonFiniteVector`, `invalidParameter` (k < 1).
    /// - Complexity: about O(ef · M · log n) distance computations; no SQLite, no allocation per visited node.
    ///   - budget: stop after about this many distance computations (`stats.exhausted` then says the hits
    ///     are incomplete); applies to the level-0 search in mode a. nil: no limit.
    public func search(_ query: [Float], k: Int, searchEffort: Int? = nil, filter: SearchFilter? = nil,
                       mode: FilteredSearchMode = .admitMatching, budget: Int? = nil) throws(HNSWError) -> IndexSearchResult {
        let buffer = query.withUnsafeBufferPointer { $0 }
        // SAFETY: `query` is alive for the whole call and not mutated, so its buffer stays valid.
        return try withExtendedLifetime(query) { () throws(HNSWError) -> IndexSearchResult in
            try search(buffer, k: k, searchEffort: searchEffort, filter: filter, mode: mode, budget: budget)
        }
    }

    /// As `search(_:k:searchEffort:filter:mode:)`, over a borrowed buffer (no copy of the query).
    public func search(_ query: UnsafeBufferPointer<Float>, k: Int, searchEffort: Int? = nil,
                       filter: SearchFilter? = nil, mode: FilteredSearchMode = .admitMatching, budget: Int? = nil)
        throws(HNSWError) -> IndexSearchResult
    {
        let budget = budget ?? Int.max
        try validate(query, label: nil)
        guard k >= 1 else { throw HNSWError(.invalidParameter, "k must be ≥ 1, got \(k)") }
        let ef = max(searchEffort ?? max(k, 64), k)
        if parameters.metric == .cosine {
            var normalised = Array(query)
            normalised.withUnsafeMutableBufferPointer { normalize($0) }
            return normalised.withUnsafeBufferPointer { q in
                searchValidated(q.baseAddress!, k: k, ef: ef, filter: filter, mode: mode, budget: budget)
            }
        }
        return searchValidated(query.baseAddress!, k: k, ef: ef, filter: filter, mode: mode, budget: budget)
    }

    private func searchValidated(_ query: UnsafePointer<Float>, k: Int, ef: Int, filter: SearchFilter?,
                                 mode: FilteredSearchMode, budget: Int) -> IndexSearchResult {
        withReadLock {
            var stats = SearchStats()
            guard let (entryNode, topLevel) = loadEntry() else { return IndexSearchResult(hits: [], stats: stats) }
            let context = borrowContext()
            defer { returnContext(context) }
            let (start, startDistance) = greedyDescent(query, from: entryNode, topLevel: topLevel, toLevel: 1,
                                                       stats: &stats)
            switch filter {
            case nil:
                searchLayer(query, entry: start, entryDistance: startDistance, ef: ef, level: 0, context: context,
                            predicate: AllNodes(), stats: &stats, budget: budget)
            case .bitset(let set)?:
                set.words.withUnsafeBufferPointer { words in
                    let predicate = BitsetPredicate(words: words.baseAddress!, capacity: set.capacity)
                    searchFiltered(query, entry: start, entryDistance: startDistance, ef: ef, context: context,
                                   predicate: predicate, mode: mode, stats: &stats, budget: budget)
                }
            case .predicate(let body)?:
                searchFiltered(query, entry: start, entryDistance: startDistance, ef: ef, context: context,
                               predicate: ClosurePredicate(body: body), mode: mode, stats: &stats, budget: budget)
            }
            return IndexSearchResult(hits: takeHits(context, k: k), stats: stats)
        }
    }

    private func searchFiltered<P: NodePredicate>(
        _ query: UnsafePointer<Float>, entry: UInt32, entryDistance: Float, ef: Int, context: SearchContext,
        predicate: P, mode: FilteredSearchMode, stats: inout SearchStats, budget: Int
    ) {
        switch mode {
        case .admitMatching:
            searchLayer(query, entry: entry, entryDistance: entryDistance, ef: ef, level: 0, context: context,
                        predicate: predicate, stats: &stats, budget: budget)
        case .matchingOnly:
            searchMatchingOnly(query, entry: entry, entryDistance: entryDistance, ef: ef, context: context,
                               predicate: predicate, stats: &stats)
        }
    }

    /// Pops the results heap into hits, nearest first, at most `k`.
    private func takeHits(_ context: SearchContext, k: Int) -> [IndexHit] {
        while context.results.count > k { context.results.pop() }
        let n = context.results.count
        var hits = [IndexHit](repeating: IndexHit(label: 0, distance: 0, node: 0), count: n)
        var i = n - 1
        while !context.results.isEmpty {
            let r = context.results.pop()
            hits[i] = IndexHit(label: storage.labels[Int(r.node)], distance: parameters.metric.reported(r.distance),
                                node: r.node)
            i -= 1
        }
        return hits
    }

    /// Greedy walk (ef = 1) from `topLevel` down to `toLevel`, returning the closest node found.
    /// Caller holds the read lock.
    @inline(__always)
    func greedyDescent(_ query: UnsafePointer<Float>, from start: UInt32, topLevel: Int, toLevel: Int,
                       stats: inout SearchStats) -> (UInt32, Float) {
        let dim = parameters.dimensions
        var current = start
        var currentDistance = kernel(query, storage.vector(start), dim)
        stats.distanceComputations &+= 1
        var level = topLevel
        while level >= toLevel {
            var changed = true
            while changed {
                changed = false
                let list = storage.linkList(current, level: level)
                let n = Int(hs_load_acquire_u32(list))
                for j in 1...max(n, 1) where j <= n {
                    let neighbour = hs_load_acquire_u32(list + j)
                    let d = kernel(query, storage.vector(neighbour), dim)
                    stats.distanceComputations &+= 1
                    if d < currentDistance {
                        currentDistance = d
                        current = neighbour
                        changed = true
                    }
                }
            }
            level -= 1
        }
        return (current, currentDistance)
    }

    /// Starts a layer search: a fresh visited tag, empty heaps, the entry as the first candidate (and result
    /// when admitted and live). Returns the tag and the initial result bound.
    @inline(__always)
    private func begin(_ context: SearchContext, entry: UInt32, entryDistance: Float, ef: Int, admitEntry: Bool,
                       stats: inout SearchStats) -> (UInt16, Float) {
        let tag = context.nextTag(capacity: storage.capacity)
        context.candidates.removeAll()
        context.results.removeAll()
        context.visited[Int(entry)] = tag
        stats.visitedNodes &+= 1
        context.candidates.push(Neighbor(distance: entryDistance, node: entry))
        if admitEntry && storage.state(entry) == .live {
            context.results.push(Neighbor(distance: entryDistance, node: entry))
        }
        return (tag, context.results.count >= ef ? context.results.top.distance : Float.infinity)
    }

    /// Best-first search of one level. Leaves up to `ef` admitted nodes (predicate true and live) in
    /// `context.results`; non-admitted nodes are still traversed. Stops early, setting `stats.exhausted`,
    /// once `stats.distanceComputations` passes `budget`. Caller holds the read lock.
    @inline(__always)
    func searchLayer<P: NodePredicate>(
        _ query: UnsafePointer<Float>, entry: UInt32, entryDistance: Float, ef: Int, level: Int,
        context: SearchContext, predicate: P, stats: inout SearchStats, budget: Int = .max
    ) {
        let storage = self.storage
        let dim = parameters.dimensions
        let kernel = self.kernel.function
        let states = storage.states
        let (tag, initialBound) = begin(context, entry: entry, entryDistance: entryDistance, ef: ef,
                                 admitEntry: predicate.matches(entry), stats: &stats)
        let visited = context.visited  // after begin: a grown index reallocates the visited list there
        var bound = initialBound
        let lines = min(dim, 512)  // floats of a vector worth prefetching (16 a cache line, up to 2 KiB)

        while !context.candidates.isEmpty {
            let current = context.candidates.top
            if current.distance > bound { break }
            if stats.distanceComputations > budget {
                stats.exhausted = true
                break
            }
            context.candidates.pop()
            let list = storage.linkList(current.node, level: level)
            let n = Int(hs_load_acquire_u32(list))
            // First the unvisited neighbours, each vector's first line requested at once (the loads overlap
            // instead of one miss per distance), then their distances.
            let batch = context.batch
            var m = 0
            var j = 1
            while j <= n {
                let neighbour = hs_load_acquire_u32(list + j)
                j &+= 1
                if visited[Int(neighbour)] == tag { continue }
                visited[Int(neighbour)] = tag
                hs_prefetch(storage.vector(neighbour))
                batch[m] = neighbour
                m &+= 1
            }
            stats.visitedNodes &+= m
            var b = 0
            while b < m {
                let neighbour = batch[b]
                b &+= 1
                if b < m {  // the rest of the next vector while this one is scored
                    let ahead = storage.vector(batch[b])
                    var line = 16
                    while line < lines {
                        hs_prefetch(ahead + line)
                        line &+= 16
                    }
                }
                let d = kernel(query, storage.vector(neighbour), dim)
                stats.distanceComputations &+= 1
                if d < bound {
                    context.candidates.push(Neighbor(distance: d, node: neighbour))
                    if predicate.matches(neighbour) && hs_load_acquire_u8(states + Int(neighbour)) == 0 {
                        context.results.push(Neighbor(distance: d, node: neighbour))
                        if context.results.count > ef { context.results.pop() }
                        if context.results.count >= ef { bound = context.results.top.distance }
                    }
                }
            }
        }
    }

    /// Level-0 search that computes distances only for matching nodes, reaching them through the
    /// neighbours of non-matching neighbours (two hops, after ACORN-1). Where a node's two-hop neighbourhood
    /// yields fewer than `sparseNeighbourhood` new matching nodes, the filter is too sparse there to navigate
    /// by, so its non-matching neighbours also become navigation candidates (distance computed, never
    /// returned); this keeps the search from stalling in regions without matches. Caller holds the read lock.
    @inline(__always)
    func searchMatchingOnly<P: NodePredicate>(
        _ query: UnsafePointer<Float>, entry: UInt32, entryDistance: Float, ef: Int,
        context: SearchContext, predicate: P, stats: inout SearchStats
    ) {
        let storage = self.storage
        let dim = parameters.dimensions
        let kernel = self.kernel.function
        let states = storage.states
        let sparse = sparseNeighbourhood
        let maxMatching = storage.maxLinks0
        context.scratchIDs.removeAll(keepingCapacity: true)
        let (tag, initialBound) = begin(context, entry: entry, entryDistance: entryDistance, ef: ef,
                                 admitEntry: predicate.matches(entry), stats: &stats)
        let visited = context.visited  // after begin: a grown index reallocates the visited list there
        var bound = initialBound

        @inline(__always) func consider(_ node: UInt32, admit: Bool) {
            let d = kernel(query, storage.vector(node), dim)
            stats.distanceComputations &+= 1
            guard d < bound else { return }
            context.candidates.push(Neighbor(distance: d, node: node))
            if admit && hs_load_acquire_u8(states + Int(node)) == 0 {
                context.results.push(Neighbor(distance: d, node: node))
                if context.results.count > ef { context.results.pop() }
                if context.results.count >= ef { bound = context.results.top.distance }
            }
        }

        while !context.candidates.isEmpty {
            let current = context.candidates.top
            if current.distance > bound { break }
            context.candidates.pop()
            let list = storage.linkList(current.node, level: 0)
            let n = Int(hs_load_acquire_u32(list))
            var matching = 0
            var fresh = 0
            context.scratchIDs.removeAll(keepingCapacity: true)
            // First hop: matching neighbours are candidates; the others are kept for the second hop.
            var j = 1
            while j <= n {
                let neighbour = hs_load_acquire_u32(list + j)
                j &+= 1
                if predicate.matches(neighbour) {
                    matching &+= 1
                    if visited[Int(neighbour)] == tag { continue }
                    visited[Int(neighbour)] = tag
                    stats.visitedNodes &+= 1
                    fresh &+= 1
                    consider(neighbour, admit: true)
                } else if visited[Int(neighbour)] != tag {
                    context.scratchIDs.append(neighbour)
                    hs_prefetch(storage.linkList(neighbour, level: 0))
                }
            }
            // Second hop through non-matching neighbours, until the node has as many matching neighbours as a
            // full level-0 list (ACORN truncates the expanded list the same way).
            for neighbour in context.scratchIDs where matching < maxMatching {
                let second = storage.linkList(neighbour, level: 0)
                let m = Int(hs_load_acquire_u32(second))
                var i = 1
                while i <= m && matching < maxMatching {
                    let next = hs_load_acquire_u32(second + i)
                    i &+= 1
                    if !predicate.matches(next) { continue }
                    matching &+= 1
                    if visited[Int(next)] == tag { continue }
                    visited[Int(next)] = tag
                    stats.visitedNodes &+= 1
                    fresh &+= 1
                    consider(next, admit: true)
                }
            }
            if fresh < sparse {
                for neighbour in context.scratchIDs where visited[Int(neighbour)] != tag {
                    visited[Int(neighbour)] = tag
                    stats.visitedNodes &+= 1
                    consider(neighbour, admit: false)
                }
            }
        }
    }
}
