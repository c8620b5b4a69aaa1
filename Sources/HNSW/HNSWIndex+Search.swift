import CKernels

/// In mode b, a node whose two-hop neighbourhood yields fewer new matching nodes than this also expands its
/// non-matching neighbours as navigation candidates. Counting all matches instead of new ones stalls; with new
/// ones, 2 is where recall stops rising for its cost (Benchmarks/README.md, "Measurements behind constants").
let sparseNeighbourhood = 2

/// What a graph walk scores nodes with: float32 vectors, or int8 codes. A value lives inside one search and
/// holds raw storage pointers, so it must not outlive the read lock it was made under.
protocol GraphDistance {
    /// Requests the first cache line of what `callAsFunction(node)` reads.
    func prefetchHead(_ node: UInt32)
    /// Requests the remaining cache lines of what `callAsFunction(node)` reads.
    func prefetchTail(_ node: UInt32)
    /// The (internal) distance from the query to `node`.
    func callAsFunction(_ node: UInt32) -> Float
}

/// Requests the cache lines that cover bytes [from, to) of `base`. Never faults.
@inline(__always) func prefetchBytes(_ base: UnsafeRawPointer, from: Int, to: Int) {
    var offset = from
    while offset < to {
        unsafe hs_prefetch(base + offset)
        offset &+= 64
    }
}

/// Exact float32 distances.
@unsafe struct FloatDistance: GraphDistance {
    let query: UnsafePointer<Float>
    let vectors: UnsafeMutablePointer<Float>
    let dimensions: Int
    let kernel: hs_distance_fn
    /// Bytes of each vector requested for a whole batch of neighbours at once: up to 512 (faster than the first
    /// line only at 128-d; no change at 384-d, where the rest streams one node ahead. Benchmarks/README.md,
    /// "Measurements behind constants").
    let headBytes: Int
    /// Bytes worth prefetching at all (up to 2 KiB).
    let prefetchedBytes: Int

    @inline(__always) init(query: UnsafePointer<Float>, storage: NodeStorage, kernel: hs_distance_fn) {
        unsafe self.query = unsafe query
        unsafe self.vectors = unsafe storage.vectorBlock
        unsafe self.dimensions = storage.dimensions
        unsafe self.kernel = unsafe kernel
        unsafe self.prefetchedBytes = min(storage.dimensions, 512) * 4
        unsafe self.headBytes = unsafe min(prefetchedBytes, 512)
    }

    @inline(__always) func prefetchHead(_ node: UInt32) {
        unsafe prefetchBytes(vectors + Int(node) &* dimensions, from: 0, to: headBytes)
    }

    @inline(__always) func prefetchTail(_ node: UInt32) {
        unsafe prefetchBytes(vectors + Int(node) &* dimensions, from: headBytes, to: prefetchedBytes)
    }

    @inline(__always) func callAsFunction(_ node: UInt32) -> Float {
        unsafe kernel(query, vectors + Int(node) &* dimensions, dimensions)
    }
}

/// Distances on int8 codes decoded as `scale · code`: the squared L2 distance to the decoded vector,
/// computed directly (its error grows with the distance, not with the vectors' norms), or the negated dot
/// product `−scale · (q · codes)` for cosine and inner product.
@unsafe struct CodeDistance: GraphDistance {
    let query: UnsafePointer<Float>
    let codes: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let stride: Int
    let dimensions: Int
    let l2: Bool
    let kernels: CodeKernel
    /// Code bytes requested together for a whole batch of neighbours: all of a code up to 512 bytes (faster
    /// than the first line only: codes are short enough that a batch of them fits the miss queue), the rest
    /// one node ahead.
    let headBytes: Int

    @inline(__always) init(query: UnsafePointer<Float>, storage: NodeStorage, metric: Metric, kernels: CodeKernel) {
        unsafe self.query = unsafe query
        unsafe self.codes = unsafe storage.codeBlock
        unsafe self.scales = unsafe storage.codeScaleBlock
        unsafe self.stride = storage.codeStride
        unsafe self.dimensions = storage.dimensions
        unsafe self.l2 = metric == .l2
        unsafe self.kernels = kernels
        unsafe self.headBytes = min(storage.codeStride, 512)
    }

    @inline(__always) func prefetchHead(_ node: UInt32) {
        unsafe prefetchBytes(codes + Int(node) &* stride, from: 0, to: headBytes)
        unsafe hs_prefetch(scales + Int(node))
    }

    @inline(__always) func prefetchTail(_ node: UInt32) {
        unsafe prefetchBytes(codes + Int(node) &* stride, from: headBytes, to: stride)
    }

    @inline(__always) func callAsFunction(_ node: UInt32) -> Float {
        let scale = unsafe scales[Int(node)]
        let code = unsafe codes + Int(node) &* stride
        if unsafe l2 { return unsafe kernels.l2Squared(query, code, dimensions, scale) }
        return unsafe -scale * kernels.dot(query, code, dimensions)
    }
}

/// A distance under which one node is infinitely far: a walk never moves to it, never expands it and never
/// returns it, as if it were not in the graph (only the link slots other nodes spend on it remain).
struct HidingDistance<D: GraphDistance>: GraphDistance {
    let base: D
    let hidden: UInt32
    @inline(__always) func prefetchHead(_ node: UInt32) { base.prefetchHead(node) }
    @inline(__always) func prefetchTail(_ node: UInt32) { base.prefetchTail(node) }
    @inline(__always) func callAsFunction(_ node: UInt32) -> Float { node == hidden ? .infinity : base(node) }
}

extension HNSWIndex {
    /// Float32 distances from `query` (build, repair, exact re-scoring). Caller holds the read lock.
    @inline(__always) func floatDistance(_ query: UnsafePointer<Float>) -> FloatDistance {
        unsafe FloatDistance(query: query, storage: storage, kernel: kernel.function)
    }

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
    public func search(
        _ query: [Float], k: Int, searchEffort: Int? = nil, filter: SearchFilter? = nil,
        mode: FilteredSearchMode = .admitMatching, budget: Int? = nil
    ) throws(HNSWError) -> IndexSearchResult {
        unsafe try query.withUnsafeBufferPointer { (buffer) throws(HNSWError) -> IndexSearchResult in
            unsafe try search(buffer, k: k, searchEffort: searchEffort, filter: filter, mode: mode, budget: budget)
        }
    }

    /// As `search(_:k:searchEffort:filter:mode:)`, over a borrowed buffer (no copy of the query).
    public func search(
        _ query: UnsafeBufferPointer<Float>, k: Int, searchEffort: Int? = nil,
        filter: SearchFilter? = nil, mode: FilteredSearchMode = .admitMatching, budget: Int? = nil
    )
        throws(HNSWError) -> IndexSearchResult
    {
        let budget = budget ?? Int.max
        unsafe try validate(query, label: nil)
        guard k >= 1 else { throw HNSWError(.invalidParameter, "k must be ≥ 1, got \(k)") }
        // Never more hits than nodes: sizes computed from k (the candidate list, heaps) stay bounded.
        let k = min(k, max(1, nodeCapacity))
        let ef = max(min(searchEffort ?? max(k, 64), max(nodeCapacity, 64)), k)
        if parameters.metric == .cosine {
            var normalised = unsafe Array(query)
            unsafe normalised.withUnsafeMutableBufferPointer { unsafe normalize($0) }
            return unsafe normalised.withUnsafeBufferPointer { q in
                unsafe searchValidated(q.baseAddress!, k: k, ef: ef, filter: filter, mode: mode, budget: budget)
            }
        }
        return unsafe searchValidated(query.baseAddress!, k: k, ef: ef, filter: filter, mode: mode, budget: budget)
    }

    /// As `search(_:k:searchEffort:filter:mode:budget:)`, in the graph as it would be without node `hidden`
    /// (it is never visited nor returned): a row of the index searched for as a query the graph has never
    /// seen, which is how build-time calibration measures recall with queries drawn from the data.
    package func search(
        _ query: [Float], k: Int, searchEffort: Int, filter: SearchFilter? = nil,
        mode: FilteredSearchMode = .admitMatching, hiding hidden: UInt32
    ) throws(HNSWError)
        -> IndexSearchResult
    {
        unsafe try query.withUnsafeBufferPointer { (buffer) throws(HNSWError) in unsafe try validate(buffer, label: nil)
        }
        guard k >= 1 else { throw HNSWError(.invalidParameter, "k must be ≥ 1, got \(k)") }
        let k = min(k, max(1, nodeCapacity))
        let ef = max(min(searchEffort, max(nodeCapacity, 64)), k)
        var q = query
        if parameters.metric == .cosine { unsafe q.withUnsafeMutableBufferPointer { unsafe normalize($0) } }
        return unsafe q.withUnsafeBufferPointer { q in
            unsafe searchValidated(
                q.baseAddress!, k: k, ef: ef, filter: filter, mode: mode, budget: .max, hidden: hidden)
        }
    }

    private func searchValidated(
        _ query: UnsafePointer<Float>, k: Int, ef: Int, filter: SearchFilter?,
        mode: FilteredSearchMode, budget: Int, hidden: UInt32? = nil
    ) -> IndexSearchResult {
        withReadLock {
            if storage.hasCodes {
                let distance = unsafe CodeDistance(
                    query: query, storage: storage, metric: parameters.metric,
                    kernels: codeKernel)
                let finish = { (context: SearchContext, stats: inout SearchStats) in
                    unsafe self.rescore(context, query: query, k: k, stats: &stats)
                }
                if let hidden {
                    return unsafe searchWalk(
                        HidingDistance(base: distance, hidden: hidden), k: k, ef: ef, filter: filter,
                        mode: mode, budget: budget, finish: finish)
                }
                return unsafe searchWalk(
                    distance, k: k, ef: ef, filter: filter, mode: mode, budget: budget, finish: finish)
            }
            if let hidden {
                return unsafe searchWalk(
                    HidingDistance(base: floatDistance(query), hidden: hidden), k: k, ef: ef,
                    filter: filter, mode: mode, budget: budget
                ) { context, _ in takeHits(context, k: k) }
            }
            return unsafe searchWalk(floatDistance(query), k: k, ef: ef, filter: filter, mode: mode, budget: budget) {
                context, _ in takeHits(context, k: k)
            }
        }
    }

    /// Descends to level 0 and searches it with `distance`; `finish` turns the results heap into hits.
    /// Caller holds the read lock.
    @inline(__always)
    private func searchWalk<D: GraphDistance>(
        _ distance: D, k: Int, ef: Int, filter: SearchFilter?, mode: FilteredSearchMode, budget: Int,
        finish: (SearchContext, inout SearchStats) -> [IndexHit]
    ) -> IndexSearchResult {
        var stats = SearchStats()
        guard let (entryNode, topLevel) = loadEntry() else { return IndexSearchResult(hits: [], stats: stats) }
        let context = borrowContext()
        defer { returnContext(context) }
        let (start, startDistance) = greedyDescent(
            distance, from: entryNode, topLevel: topLevel, toLevel: 1,
            stats: &stats)
        switch filter {
        case nil:
            searchLayer(
                distance, entry: start, entryDistance: startDistance, ef: ef, level: 0, context: context,
                predicate: AllNodes(), stats: &stats, budget: budget)
        case .bitset(let set)?:
            unsafe set.words.withUnsafeBufferPointer { words in
                let predicate = unsafe BitsetPredicate(words: words.baseAddress!, capacity: set.capacity)
                unsafe searchFiltered(
                    distance, entry: start, entryDistance: startDistance, ef: ef, context: context,
                    predicate: predicate, mode: mode, stats: &stats, budget: budget)
            }
        case .predicate(let body)?:
            searchFiltered(
                distance, entry: start, entryDistance: startDistance, ef: ef, context: context,
                predicate: ClosurePredicate(body: body), mode: mode, stats: &stats, budget: budget)
        }
        return IndexSearchResult(hits: finish(context, &stats), stats: stats)
    }

    private func searchFiltered<P: NodePredicate, D: GraphDistance>(
        _ distance: D, entry: UInt32, entryDistance: Float, ef: Int, context: SearchContext,
        predicate: P, mode: FilteredSearchMode, stats: inout SearchStats, budget: Int
    ) {
        switch mode {
        case .admitMatching:
            searchLayer(
                distance, entry: entry, entryDistance: entryDistance, ef: ef, level: 0, context: context,
                predicate: predicate, stats: &stats, budget: budget)
        case .matchingOnly:
            searchMatchingOnly(
                distance, entry: entry, entryDistance: entryDistance, ef: ef, context: context,
                predicate: predicate, stats: &stats)
        }
    }

    /// Re-scores every node left in the results heap (approximate distances) with float32 and returns the `k`
    /// nearest by exact distance. All vectors are requested before the first is scored, so their misses
    /// overlap. Counted in `stats.distanceComputations`.
    private func rescore(
        _ context: SearchContext, query: UnsafePointer<Float>, k: Int,
        stats: inout SearchStats
    ) -> [IndexHit] {
        let exact = unsafe floatDistance(query)
        let results = unsafe context.results.base
        let n = context.results.count
        for i in 0..<n {
            unsafe exact.prefetchHead(results[i].node)
            unsafe exact.prefetchTail(results[i].node)
        }
        var scored = context.scratch
        scored.removeAll(keepingCapacity: true)
        for i in 0..<n { unsafe scored.append(Neighbor(distance: exact(results[i].node), node: results[i].node)) }
        stats.distanceComputations &+= n
        context.results.removeAll()
        scored.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.node < $1.node) }
        let m = min(k, scored.count)
        var hits = [IndexHit](repeating: IndexHit(label: 0, distance: 0, node: 0), count: m)
        for i in 0..<m {
            let r = scored[i]
            hits[i] = IndexHit(
                label: storage.label(r.node), distance: parameters.metric.reported(r.distance),
                node: r.node)
        }
        context.scratch = scored
        return hits
    }

    /// Pops the results heap into hits, nearest first, at most `k`.
    private func takeHits(_ context: SearchContext, k: Int) -> [IndexHit] {
        while context.results.count > k { context.results.pop() }
        let n = context.results.count
        var hits = [IndexHit](repeating: IndexHit(label: 0, distance: 0, node: 0), count: n)
        var i = n - 1
        while !context.results.isEmpty {
            let r = context.results.pop()
            hits[i] = IndexHit(
                label: storage.label(r.node), distance: parameters.metric.reported(r.distance),
                node: r.node)
            i -= 1
        }
        return hits
    }

    /// Greedy walk (ef = 1) from `topLevel` down to `toLevel`, returning the closest node found.
    /// Caller holds the read lock.
    @inline(__always)
    func greedyDescent<D: GraphDistance>(
        _ distance: D, from start: UInt32, topLevel: Int, toLevel: Int,
        stats: inout SearchStats
    ) -> (UInt32, Float) {
        var current = start
        var currentDistance = distance(start)
        stats.distanceComputations &+= 1
        var level = topLevel
        while level >= toLevel {
            var changed = true
            while changed {
                changed = false
                let list = unsafe storage.linkList(current, level: level)
                let n = unsafe Int(hs_load_acquire_u32(list))
                for j in 1...max(n, 1) where j <= n {
                    let neighbour = unsafe hs_load_acquire_u32(list + j)
                    let d = distance(neighbour)
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
    private func begin(
        _ context: SearchContext, entry: UInt32, entryDistance: Float, ef: Int, admitEntry: Bool,
        stats: inout SearchStats, admitPending: Bool = false
    ) -> (UInt16, Float) {
        let tag = context.nextTag(capacity: storage.capacity)
        context.candidates.removeAll()
        context.results.removeAll()
        unsafe context.visited[Int(entry)] = tag
        stats.visitedNodes &+= 1
        context.candidates.push(Neighbor(distance: entryDistance, node: entry))
        let state = storage.state(entry)
        if admitEntry && entryDistance < .infinity && (state == .live || (admitPending && state == .pending)) {
            context.results.push(Neighbor(distance: entryDistance, node: entry))
        }
        return (tag, context.results.count >= ef ? context.results.top.distance : Float.infinity)
    }

    /// Best-first search of one level. Leaves up to `ef` admitted nodes (predicate true and live, or pending
    /// too with `admitPending`, as linking asks) in `context.results`; non-admitted nodes are still traversed.
    /// Stops early, setting `stats.exhausted`, once `stats.distanceComputations` passes `budget`. Caller holds
    /// the read lock.
    @inline(__always)
    func searchLayer<P: NodePredicate, D: GraphDistance>(
        _ distance: D, entry: UInt32, entryDistance: Float, ef: Int, level: Int,
        context: SearchContext, predicate: P, stats: inout SearchStats, budget: Int = .max,
        admitPending: Bool = false
    ) {
        let storage = self.storage
        let states = unsafe storage.stateBlock  // hoisted: one load a search, not one a neighbour
        let admission = NodeStorage.admissionMask(pending: admitPending)
        let (tag, initialBound) = begin(
            context, entry: entry, entryDistance: entryDistance, ef: ef,
            admitEntry: predicate.matches(entry), stats: &stats, admitPending: admitPending)
        let visited = unsafe context.visited  // after begin: a grown index reallocates the visited list there
        var bound = initialBound
        let listWords = min(storage.maxLinks(level: level) + 1, 128)

        while !context.candidates.isEmpty {
            let current = context.candidates.top
            if current.distance > bound { break }
            if stats.distanceComputations > budget {
                stats.exhausted = true
                break
            }
            context.candidates.pop()
            // The next candidate's links are likely read next: request them (every line the list spans) while
            // this node's are walked.
            if !context.candidates.isEmpty {
                let next = unsafe storage.linkList(context.candidates.top.node, level: level)
                var word = 0
                while word < listWords {
                    unsafe hs_prefetch(next + word)
                    word &+= 16
                }
                unsafe hs_prefetch(next + listWords - 1)
            }
            let list = unsafe storage.linkList(current.node, level: level)
            let n = unsafe Int(hs_load_acquire_u32(list))
            // First the unvisited neighbours, the head of each one's vector (or code) requested at once (the loads
            // overlap instead of one miss per distance), and the filter asked about each (its loads, e.g. a
            // column value, overlap too: measured 19 % of a 50 %-filter query when asked one by one later);
            // then their distances.
            let batch = unsafe context.batch
            let admits = unsafe context.admits
            var m = 0
            var j = 1
            while j <= n {
                let neighbour = unsafe hs_load_acquire_u32(list + j)
                j &+= 1
                if unsafe visited[Int(neighbour)] == tag { continue }
                unsafe visited[Int(neighbour)] = tag
                distance.prefetchHead(neighbour)
                unsafe batch[m] = neighbour
                unsafe admits[m] = predicate.matches(neighbour)
                m &+= 1
            }
            stats.visitedNodes &+= m
            var b = 0
            while b < m {
                let neighbour = unsafe batch[b]
                b &+= 1
                // The rest of the next vector while this one is scored.
                if b < m { unsafe distance.prefetchTail(batch[b]) }
                let d = distance(neighbour)
                stats.distanceComputations &+= 1
                if d < bound {
                    context.candidates.push(Neighbor(distance: d, node: neighbour))
                    if unsafe admits[b &- 1] && hs_load_acquire_u8(states + Int(neighbour)) & admission == 0 {
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
    func searchMatchingOnly<P: NodePredicate, D: GraphDistance>(
        _ distance: D, entry: UInt32, entryDistance: Float, ef: Int,
        context: SearchContext, predicate: P, stats: inout SearchStats
    ) {
        let storage = self.storage
        let states = unsafe storage.stateBlock
        let sparse = sparseNeighbourhood
        let maxMatching = storage.maxLinks0
        context.scratchIDs.removeAll(keepingCapacity: true)
        let (tag, initialBound) = begin(
            context, entry: entry, entryDistance: entryDistance, ef: ef,
            admitEntry: predicate.matches(entry), stats: &stats)
        let visited = unsafe context.visited  // after begin: a grown index reallocates the visited list there
        var bound = initialBound

        @inline(__always) func consider(_ node: UInt32, admit: Bool) {
            let d = distance(node)
            stats.distanceComputations &+= 1
            guard d < bound else { return }
            context.candidates.push(Neighbor(distance: d, node: node))
            if unsafe admit && hs_load_acquire_u8(states + Int(node)) == 0 {
                context.results.push(Neighbor(distance: d, node: node))
                if context.results.count > ef { context.results.pop() }
                if context.results.count >= ef { bound = context.results.top.distance }
            }
        }

        while !context.candidates.isEmpty {
            let current = context.candidates.top
            if current.distance > bound { break }
            context.candidates.pop()
            let list = unsafe storage.linkList(current.node, level: 0)
            let n = unsafe Int(hs_load_acquire_u32(list))
            var matching = 0
            var fresh = 0
            context.scratchIDs.removeAll(keepingCapacity: true)
            // First hop: matching neighbours are candidates; the others are kept for the second hop.
            var j = 1
            while j <= n {
                let neighbour = unsafe hs_load_acquire_u32(list + j)
                j &+= 1
                if predicate.matches(neighbour) {
                    matching &+= 1
                    if unsafe visited[Int(neighbour)] == tag { continue }
                    unsafe visited[Int(neighbour)] = tag
                    stats.visitedNodes &+= 1
                    fresh &+= 1
                    consider(neighbour, admit: true)
                } else if unsafe visited[Int(neighbour)] != tag {
                    context.scratchIDs.append(neighbour)
                    unsafe hs_prefetch(storage.linkList(neighbour, level: 0))
                }
            }
            // Second hop through non-matching neighbours, until the node has as many matching neighbours as a
            // full level-0 list (ACORN truncates the expanded list the same way).
            for neighbour in context.scratchIDs where matching < maxMatching {
                let second = unsafe storage.linkList(neighbour, level: 0)
                let m = unsafe Int(hs_load_acquire_u32(second))
                var i = 1
                while i <= m && matching < maxMatching {
                    let next = unsafe hs_load_acquire_u32(second + i)
                    i &+= 1
                    if !predicate.matches(next) { continue }
                    matching &+= 1
                    if unsafe visited[Int(next)] == tag { continue }
                    unsafe visited[Int(next)] = tag
                    stats.visitedNodes &+= 1
                    fresh &+= 1
                    consider(next, admit: true)
                }
            }
            if fresh < sparse {
                for neighbour in context.scratchIDs where unsafe visited[Int(neighbour)] != tag {
                    unsafe visited[Int(neighbour)] = tag
                    stats.visitedNodes &+= 1
                    consider(neighbour, admit: false)
                }
            }
        }
    }
}
