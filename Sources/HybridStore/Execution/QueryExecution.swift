// One query, step by step: the planner's plan, the hot step, its fallback, the rows a writer changed under the
// read, the cold step, hydration. Each step is one method; the planner (`Planner.plan`) makes every decision
// these steps follow, so `explain` shows the whole plan as one value (`QueryPlan`) and what each step did.

import Foundation
import HNSW
import QueryPlanner

/// What a caller asked: the collection, the vector, k, the filter and options, the returned columns, and
/// whether to explain, optionally scoped to a tenant.
struct QueryRequest {
    var collection: CollectionRef
    var vector: [Float]
    var k: Int
    var filter: Filter?
    var options: QueryOptions
    var columns: [String]
    var explain: Bool
    var tenant: String?
}

/// One run of a query. `run()` returns nil when it ran without a snapshot and a writer committed or published
/// meanwhile (the caller runs it again against one).
struct QueryExecution {
    typealias Found = (row: Int64, id: RowID?, distance: Float)

    let store: HybridStore
    let s: CollectionState
    let request: QueryRequest
    /// The snapshot this run reads, if pinned; `admit` counts the query against its tenant's quota.
    let view: ReadView?
    let admit: Bool
    let started = nowNanos()
    let quietAtStart: Int64?
    /// Request's k clamped to the collection's rows; the hot step's k adds the rows changed under the read.
    var k: Int
    var kHot = 0
    let positions: [Int]
    /// The validated filter, ANDed with the tenant's restriction when scoped.
    var filter: Filter? = nil
    var scope: Filter? = nil
    /// Hot nodes matching a filter SQLite evaluated (columns not held in memory).
    var listed: [UInt32]? = nil
    /// The hot nodes matching the filter, collected once when a step needs them.
    var matches: [UInt32]? = nil
    var predicate: ((UInt32) -> Bool)? = nil
    var tenantRows: Int? = nil
    /// Under a filter held in memory for both tiers: how its cold rows spread over the blocks, and its own cold
    /// curve where it follows the data (`prepareColdCurve`).
    var coldFilter: (spread: Double?, curve: ColdFilterCurve?)? = nil
    /// The efforts the planner asked the filter's own curve at (`FilterCurve`), where none was remembered: the hot
    /// step stops after planning, the curve is measured outside the collection's lock, and the step runs again.
    var curveWanted: [Int]? = nil
    /// Whether it was measured once already in this run (not remembered where the index was replaced meanwhile: the
    /// plan then goes without it).
    var curveMeasured = false
    let calibration: RecallCalibration
    var explanation: Explanation
    var timings: [String: Double] = [:]
    /// Rows a writer changed between memory's states and the snapshot: set aside and evaluated in the snapshot.
    var changed = Set<Int64>()
    var found: [Found] = []

    init(_ request: QueryRequest, store: HybridStore, admit: Bool, view: ReadView?) throws(HybridStoreError) {
        self.store = store
        self.request = request
        self.admit = admit
        self.view = view
        quietAtStart = store.epochs.quiet
        s = try store.state(request.collection)
        positions = try store.columnPositions(request.columns, s)
        let options = request.options
        guard request.k >= 1 else {
            throw HybridStoreError(
                .invalidArgument, "k must be at least 1, got \(request.k)", context: ["k": "\(request.k)"])
        }
        // No query returns more rows than the collection holds: clamping here keeps every size computed from
        // k (candidate lists, over-fetch, heaps) within the collection's size, whatever k a caller passes.
        let s = s
        k = min(request.k, max(1, s.lock.read { s.index.count + s.cold.liveRows }))
        guard options.recallTarget > 0 && options.recallTarget <= 1 else {
            throw HybridStoreError(.invalidArgument, "recall target must be in (0, 1], got \(options.recallTarget)")
        }
        guard options.coldEffort > 0 && options.coldEffort.isFinite, (options.coldProbes ?? 1) >= 1 else {
            throw HybridStoreError(
                .invalidArgument,
                "cold effort must be a positive number and cold probes at least 1, got "
                    + "\(options.coldEffort) and \(options.coldProbes.map(String.init) ?? "nil")")
        }
        try store.checkQueryVector(request.vector, s)
        calibration = s.calibration.withLock { $0 }
        explanation = Explanation(
            collection: s.name, filter: nil, k: k, recallTarget: options.recallTarget, plan: .unplanned,
            actualMatches: nil, fallback: nil, distanceComputations: 0, visitedNodes: 0, results: 0,
            timingsMs: [:])
    }

    /// The steps in order; nil: run again against a snapshot.
    mutating func run() throws(HybridStoreError) -> SearchResult? {
        try request.options.checkCancelled()
        try resolveFilter()
        prepareColdCurve()
        guard try hotStep() else { return nil }
        if let efforts = curveWanted {
            measureFilterCurve(at: efforts)
            curveMeasured = true
            curveWanted = nil
            guard try hotStep() else { return nil }
        }
        try request.options.checkCancelled()
        try reconcileChangedRows()
        observe()
        let plan = explanation.plan
        let hits =
            if let view { try coldStepAndHydrate(view.connection) } else if plan.cold != nil {
                try store.withReader { c in try c.transaction(immediate: false) { try self.coldStepAndHydrate(c) } }
            } else { try coldStepAndHydrate(nil) }
        // Unpinned, SQLite (filter, cold blocks, hydration) and memory agree only if no transaction was registered,
        // committed or published since the start.
        let readSQLite = !positions.isEmpty || listed != nil || plan.cold != nil
        if view == nil, readSQLite, quietAtStart == nil || store.epochs.quiet != quietAtStart { return nil }
        finish(results: hits.count)
        return SearchResult(hits: hits, explanation: explanation)
    }

    // MARK: Steps

    /// The filter validated and scoped to the tenant; one SQLite evaluates when memory does not hold its columns.
    private mutating func resolveFilter() throws(HybridStoreError) {
        let s = s, store = store
        filter = try request.filter.map { f throws(HybridStoreError) in try store.validated(f.normalized, s) }
        if let tenant = request.tenant {
            let scope = try store.tenantFilter(tenant, s)
            if admit { try store.admitQuery(tenant) }
            filter = filter.map { Filter.and([scope, $0]).normalized } ?? scope
            self.scope = scope
        }
        let explain = request.explain
        explanation.filter = filter.map { explain ? $0.description : "(not rendered: explain off)" }
        if let filter, !s.lock.read({ s.columns.covers(filter) }) {
            let t = nowNanos()
            let rows = try store.rowsMatching(filter, s, on: view?.connection)
            listed = s.read { index, _ in rows.compactMap { index.node(forLabel: UInt64($0)) } }
            timings["collect"] = ms(since: t)
        }
    }

    /// Where the filter follows the data over the cold tier (its cold rows gather in few blocks: `ColdTier.spread`
    /// under 1) and the planner chooses the cold step's effort: the filter's own cold curve (`ColdFilterCurve`), as
    /// remembered for it or measured now, before the hot step (the measurement takes the collection's lock for its
    /// hot answers and reads the cold tier outside it). Measured up to a quarter of the way from the target to 1,
    /// so that a cold step asked for more (an approximate hot step's misses, `Planner.planCold`) finds it.
    private mutating func prepareColdCurve() {
        let options = request.options
        guard let filter, listed == nil, options.tiers.contains(.cold), options.tiers.contains(.hot),
            options.coldProbes == nil, options.coldEffort == 1, options.searchEffort == nil,
            calibration.built != nil
        else { return }
        let s = s
        let told = s.lock.read {
            () -> (spread: Double?, selectivity: Double, ranksByCode: Bool, rows: Int, blocksChanged: Int)? in
            let tier = s.cold
            guard !tier.isEmpty, tier.columns.covers(filter), s.columns.covers(filter) else { return nil }
            let selectivity = tier.columns.estimate(filter) / Double(max(tier.liveRows, 1))
            let spread = tier.spread(of: filter, selectivity: selectivity)
            let ranksByCode = Planner.coldRanksByCode(
                blocks: tier.blocks.count, liveRows: tier.liveRows, selectivity: selectivity)
            return (spread, selectivity, ranksByCode, s.index.count + tier.liveRows, tier.blocksChanged)
        }
        guard let told else { return }
        coldFilter = (told.spread, nil)
        // Not where a build-time curve under a filter following the data speaks for it (narrower than
        // `followingTheDataBelow`): a collection queried under many such filters (a category each) would measure a
        // curve for nearly every query (synth-20k, 80 % cold, `category_corr`: 10,358 queries a second to 1,276).
        guard let spread = told.spread, spread < 1,
            calibration.coldFiltered(
                selectivity: told.selectivity, ranksByCode: told.ranksByCode, spread: spread)?.followed != true
        else { return }
        let (store, scope, k, target) = (store, scope, k, options.recallTarget)
        var measuredIn: Double? = nil
        coldFilter?.curve = s.coldFilterCurve(
            of: filter, k: k, target: target, blocksChanged: told.blocksChanged, rows: told.rows
        ) {
            let t = nowNanos()
            defer { measuredIn = ms(since: t) }
            return store.measureColdFilterCurve(
                s, filter, within: scope, k: k, target: min(1, target + (1 - target) / 4))
        }
        if let measuredIn { timings["cold curve"] = measuredIn }
    }

    /// Plans the query and runs its hot side under the publish gate (no writer's publishing window meanwhile) and
    /// the collection's read lock: the planned search (or the probe then the exact scan), then the fallback.
    /// False: memory was being published meanwhile (run again) — which the gate rules out for writes; the check
    /// stays for anything that changes memory without it.
    private mutating func hotStep() throws(HybridStoreError) -> Bool {
        let searchesHot = request.options.tiers.contains(.hot)
        var restart = false
        do throws(HNSWError) {
            try store.publishGate.read { () throws(HNSWError) in
                try s.query { (index, columns, idOf) throws(HNSWError) in
                    // The states memory may be in; rows changed between them and the snapshot are searched for k more,
                    // dropped, and evaluated in the snapshot afterwards.
                    let memory = store.epochs.memoryRange
                    if searchesHot {
                        if view == nil && memory.low != memory.high {
                            restart = true
                            return
                        }
                        changed = view.map { store.rowsChangedUnder($0, s, memory: memory) } ?? []
                    }
                    kHot = k + changed.count
                    plan(index: index, columns: columns)
                    guard searchesHot, curveWanted == nil else { return }
                    predicate = filter.flatMap { f in listed == nil ? columns.predicate(f) : nil }
                    matches = listed
                    if request.explain, filter != nil { explanation.actualMatches = collect(columns).count }
                    let t = nowNanos()
                    var result = try search(index, columns)
                    result.hits = result.hits.filter { idOf($0.node) != nil }
                    timings["search"] = ms(since: t)
                    try fallback(&result, index: index, columns: columns, idOf: idOf)
                    explanation.distanceComputations = result.stats.distanceComputations
                    explanation.visitedNodes = result.stats.visitedNodes
                    // A writer may have begun publishing while the graph was searched (its removals do not wait for the
                    // collection's lock): unpinned, run again; pinned, set aside its rows too.
                    let after = store.epochs.memoryRange
                    if after != memory {
                        guard let view else {
                            restart = true
                            return
                        }
                        changed = store.rowsChangedUnder(view, s, memory: (memory.low, after.high))
                    }
                    found = result.hits.compactMap { hit in idOf(hit.node).map { (Int64(hit.label), $0, hit.distance) }
                    }
                }
            }
        } catch {
            throw HybridStoreError(error, collection: s.name)
        }
        return !restart
    }

    /// The estimates (under a tenant scope, of the tenant's own rows) and the planner's plan.
    private mutating func plan(index: HNSWIndex, columns: FilterColumns) {
        let rows = index.count
        var estimate = listed.map { Double($0.count) } ?? filter.map { columns.estimate($0) } ?? Double(rows)
        if listed == nil, let scope, let filter, let within = columns.estimate(filter, within: scope) {
            estimate = within.matches
            tenantRows = within.rows
        }
        let options = request.options
        var cold: QueryPlanInput.Cold? = nil
        if options.tiers.contains(.cold), !s.cold.isEmpty {
            let tier = s.cold
            let matches = filter.flatMap { f in tier.columns.covers(f) ? tier.columns.estimate(f) : nil }
            cold = .init(
                blocks: tier.blocks.count, liveRows: tier.liveRows,
                estimatedMatches: matches ?? Double(tier.liveRows), fixedProbes: options.coldProbes,
                effort: options.coldEffort)
            cold?.filterInMemory = filter == nil || matches != nil
            // Where the calibration measured a filter following the data: whether this one does (its cold rows
            // gathered in few blocks), for the planner to take that curve; and the filter's own curve, where it has one.
            if let coldFilter {
                cold?.spread = coldFilter.spread
                cold?.ownCurve = coldFilter.curve
            } else if let filter, let matches,
                calibration.built?.coldFiltered?.contains(where: { $0.spread != nil }) == true
            {
                cold?.spread = tier.spread(of: filter, selectivity: matches / Double(max(tier.liveRows, 1)))
            }
        }
        let input = QueryPlanInput(
            rows: rows, estimatedMatches: estimate, hasFilter: filter != nil, k: kHot,
            dimensions: s.schema.vector.dimensions, recallTarget: options.recallTarget,
            searchEffort: options.searchEffort, forcedStrategy: options.strategy,
            inMemoryPredicate: listed == nil, listedMatches: listed?.count,
            searchesHot: options.tiers.contains(.hot), cold: cold, hydratedColumns: request.columns)
        let s = s, filter = filter, k = k, measured = curveMeasured
        var wanted: [Int]? = nil
        // The filter's link spread over the hot rows, as remembered for it or read from the graph.
        func linkSpread(_ f: Filter) -> Double? {
            s.linkSpread(of: f, rows: rows) {
                index.linkSpread(selectivity: estimate / Double(max(rows, 1)), matches: columns.predicate(f))
            }
        }
        explanation.plan = Planner.plan(
            input, calibration: calibration,
            // Asked only where a probe is possible (a filter held in memory, enough matches, a measured bucket).
            probeAdvised: { bucket in
                let key = Self.probeKey(filter!, bucket: bucket)
                return s.probes.withLock { $0[key, default: ProbeRecord()].shouldProbe() }
            },
            linkSpread: { filter.flatMap(linkSpread) },
            filterCurve: { efforts in
                // Recall@k of the query's own k (not k plus the rows changed under a snapshot, which varies). Not
                // known: measured outside the lock (`measureFilterCurve(at:)`), then planned again.
                guard let filter else { return nil }
                if let known = s.knownFilterCurve(of: filter, k: k, target: input.recallTarget, rows: rows) {
                    return known
                }
                if !measured { wanted = efforts }
                return nil
            })
        curveWanted = wanted
        // Effort is linear in k in the planner's model: planned for `effortK` (and the rows changed under a
        // snapshot), it is that share of the effort for all `kHot`; never under what a post-filter over-fetches.
        if let effortK = options.effortK, effortK < k, options.searchEffort == nil,
            let effort = explanation.plan.hot.effort
        {
            let share = Double(effortK + kHot - k) / Double(kHot)
            explanation.plan.hot.effort = max(
                kHot, explanation.plan.hot.overFetch ?? 0, Int((Double(effort) * share).rounded(.up)))
        }
        // Explained, where planning did not ask: whether a filtered graph planned from a curve measured under random
        // filters has a filter that follows the data, which such a curve does not speak for.
        let curve: Bool
        switch explanation.plan.recallBasis {
        case .buildCurve, .bothCurves: curve = true
        default: curve = false
        }
        if request.explain, curve, explanation.plan.hotSpread == nil, let filter, listed == nil,
            explanation.plan.strategy == .filteredGraph || explanation.plan.strategy == .filteredGraphMatchingOnly
        {
            explanation.plan.hotSpread = linkSpread(filter)
        }
        explanation.ran = explanation.plan.strategy
        timings["plan"] = ms(since: started)
    }

    /// The filter's own recall curve for the filtered graph at `efforts` (`curveWanted`), measured and remembered:
    /// its matches (and a tenant's rows, under its scope) read under the collection's lock, the searches outside it
    /// (the index is safe to search on its own; at 200,000 rows the curve takes about half a second, which writers
    /// and, behind a waiting writer, other readers would wait for). Not remembered where the index was replaced
    /// meanwhile.
    private mutating func measureFilterCurve(at efforts: [Int]) {
        guard let filter else { return }
        let t = nowNanos()
        let s = s, scope = scope, k = k, target = request.options.recallTarget
        let read = s.query { index, columns, _ in
            let matches = columns.collect(filter, predicate: columns.predicate(filter))
            let within = scope.map { scope in
                Self.bitset(columns.collect(scope, predicate: columns.predicate(scope)), capacity: index.nodeCapacity)
            }
            return (
                index: index, matches: matches, set: Self.bitset(matches, capacity: index.nodeCapacity), within: within
            )
        }
        let curve = Self.measureFilterCurve(
            index: read.index, matches: read.matches, set: read.set, within: read.within, efforts: efforts, k: k,
            target: target, threads: store.configuration.buildThreads ?? cores, started: t)
        s.recordFilterCurve(curve, of: filter, k: k, target: target, measuredOn: read.index)
        timings["filter curve"] = ms(since: t)
    }

    /// `nodes` as a set over `capacity` node slots.
    static func bitset(_ nodes: [UInt32], capacity: Int) -> NodeBitset {
        var set = NodeBitset(capacity: capacity)
        for node in nodes where Int(node) < set.capacity { set.insert(node) }
        return set
    }

    /// Rows of the collection a filter's own curve takes as queries: 64, fewer where their exact answers would take
    /// more than about 8 million distance computations (at least 24).
    static func filterCurveQueries(matches: Int) -> Int { min(64, max(24, 8_000_000 / max(matches, 1))) }

    /// A filter's own recall curve for the filtered graph (`HNSWIndex.filteredRecall`) at `efforts`, ascending, up to
    /// the first whose recall less its standard error passes `target` by a standard error more; nil where no query
    /// had an answer. `matches`: the filter's nodes (`set` the same); under a tenant's scope, the queries are the
    /// tenant's rows (`within`: its queries are about its own data). On `threads` threads (outside any lock).
    static func measureFilterCurve(
        index: HNSWIndex, matches: [UInt32], set: NodeBitset, within: NodeBitset?, efforts: [Int], k: Int,
        target: Double, threads: Int, started: UInt64
    ) -> FilterCurve? {
        let recalls = index.filteredRecall(
            efforts: efforts, k: k, queries: filterCurveQueries(matches: matches.count), filter: .bitset(set),
            candidates: matches, drawnFrom: within.map { within in { within.contains($0) } }, threads: threads
        ) { recalls in
            let (mean, error) = RecallCalibration.meanAndError(recalls)
            return mean - 2 * error >= target
        }
        guard let first = recalls.first, !first.isEmpty else { return nil }
        return FilterCurve(
            efforts: Array(efforts.prefix(recalls.count)), recalls: recalls, milliseconds: ms(since: started))
    }

    /// The planned hot search. An exact plan with a probe tries the filtered graph first within the exact scan's
    /// cost, and keeps its answer if it finished.
    private mutating func search(_ index: HNSWIndex, _ columns: FilterColumns) throws(HNSWError) -> IndexSearchResult {
        let plan = explanation.plan
        let vector = request.vector
        switch plan.strategy {
        case .graph:
            return try index.search(vector, k: kHot, searchEffort: plan.effort)
        case .exact:
            var probeStats: SearchStats? = nil
            if let probe = plan.probe, let predicate {
                let result = try index.search(
                    vector, k: kHot, searchEffort: probe.effort,
                    filter: .predicate(unsafeSendable(predicate)), mode: .admitMatching,
                    budget: probe.budget)
                let complete = !result.stats.exhausted && result.hits.count >= min(kHot, Int(plan.estimatedMatches))
                let key = Self.probeKey(
                    filter!, bucket: RecallCalibration.bucket(selectivity: plan.estimatedSelectivity, filtered: true))
                s.probes.withLock { $0[key, default: ProbeRecord()].record(success: complete) }
                if complete {
                    explanation.probe =
                        "filtered graph at ef \(probe.effort) finished in \(result.stats.distanceComputations) of \(probe.budget) distance computations: used"
                    explanation.ran = .filteredGraph
                    return result
                }
                explanation.probe =
                    "filtered graph at ef \(probe.effort) stopped at its budget of \(probe.budget) distance computations: exact instead"
                probeStats = result.stats
            }
            let candidates = filter == nil ? Array(0..<UInt32(index.nodeCapacity)) : collect(columns)
            var result = try index.exactSearch(
                vector, k: kHot, candidates: candidates,
                threads: candidates.count < 40_000 ? 1 : store.configuration.buildThreads ?? cores)
            if let probeStats {
                result.stats.distanceComputations += probeStats.distanceComputations
                result.stats.visitedNodes += probeStats.visitedNodes
            }
            return result
        case .filteredGraph, .filteredGraphMatchingOnly:
            let filterForIndex: SearchFilter
            if let predicate {
                filterForIndex = .predicate(unsafeSendable(predicate))
            } else {
                var set = NodeBitset(capacity: index.nodeCapacity)
                for node in collect(columns) where Int(node) < set.capacity { set.insert(node) }
                filterForIndex = .bitset(set)
            }
            return try index.search(
                vector, k: kHot, searchEffort: plan.effort, filter: filterForIndex,
                mode: plan.strategy == .filteredGraph ? .admitMatching : .matchingOnly)
        case .postFilter:
            let wide = try index.search(vector, k: plan.overFetch ?? kHot, searchEffort: plan.effort)
            let kept: [IndexHit]
            if let predicate {
                kept = wide.hits.filter { predicate($0.node) }
            } else {
                let allowed = Set(collect(columns))
                kept = wide.hits.filter { allowed.contains($0.node) }
            }
            return IndexSearchResult(hits: Array(kept.prefix(kHot)), stats: wide.stats)
        }
    }

    /// The plan's fallback, when a graph search found fewer than k rows although more match.
    private mutating func fallback(
        _ result: inout IndexSearchResult, index: HNSWIndex, columns: FilterColumns,
        idOf: (UInt32) -> RowID?
    ) throws(HNSWError) {
        guard let rule = explanation.plan.fallback, explanation.ran != .exact, result.hits.count < kHot else { return }
        let t = nowNanos()
        var extra: IndexSearchResult? = nil
        if rule == .filteredGraph, let predicate {
            extra = try index.search(
                request.vector, k: kHot, searchEffort: explanation.plan.effort,
                filter: .predicate(unsafeSendable(predicate)), mode: .admitMatching)
            explanation.fallback = .filteredGraph
        } else {
            let nodes = collect(columns)
            if nodes.count > result.hits.count {
                extra = try index.exactSearch(request.vector, k: kHot, candidates: nodes)
                explanation.fallback = .exact
            }
        }
        if let extra {
            result.hits = extra.hits.filter { idOf($0.node) != nil }
            result.stats.distanceComputations += extra.stats.distanceComputations
            result.stats.visitedNodes += extra.stats.visitedNodes
            timings["fallback"] = ms(since: t)
        }
    }

    /// Rows changed under a pinned read: memory's view of them is dropped, their snapshot state evaluated.
    private mutating func reconcileChangedRows() throws(HybridStoreError) {
        guard let view, !changed.isEmpty else { return }
        let condition = try filter.map { f throws(HybridStoreError) in try store.compiled(f, s) }
        let tiers = request.options.tiers
        let fresh = try store.evaluateInSnapshot(changed, s, query: request.vector, condition: condition, view)
            .filter { tiers.contains($0.cold ? .cold : .hot) }
        found = found.filter { !changed.contains($0.row) } + fresh.map { ($0.row, $0.id, $0.distance) }
        found.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
        if found.count > k { found.removeLast(found.count - k) }
        explanation.rowsChangedUnderRead = changed.count
    }

    /// Off the query path, sometimes: the recall a graph plan reached (calibrating its bucket's effort), or what
    /// an exact plan's probe would have returned.
    private func observe() {
        let options = request.options
        let plan = explanation.plan
        // A plan on the filter's own curve says nothing of its bucket's curve (measured under random filters).
        guard options.searchEffort == nil, options.strategy == nil, explanation.fallback == nil, listed == nil,
            !found.isEmpty, !plan.filterCurveUsed
        else { return }
        if explanation.ran != .exact {
            // A search at the effort for fewer than its k (a hybrid query's vector arm) would teach the bucket that
            // its effort falls short: not checked.
            guard options.effortK == nil else { return }
            store.checkRecallSometimes(
                s, query: request.vector, k: k, filter: filter, found: found.map(\.row),
                strategy: explanation.ran, scale: plan.effortScale,
                selectivity: plan.estimatedSelectivity, target: options.recallTarget)
        } else if let filter, plan.estimatedMatches >= Double(Planner.probeMinimumMatches) {
            // The exact result is the truth: measure what the probe's graph search would have returned, so the
            // bucket's calibration (and the probe's effort) has evidence.
            store.shadowProbeSometimes(
                s, query: request.vector, k: k, filter: filter, truth: found.map(\.row),
                selectivity: plan.estimatedSelectivity, target: options.recallTarget)
        }
    }

    /// The cold step (the nearest cold rows that match, merged with the hot ones) and hydration, both through
    /// `reader` (one snapshot).
    private mutating func coldStepAndHydrate(_ reader: Connection?) throws(HybridStoreError) -> [SearchHit] {
        var merged = found
        if let plan = explanation.plan.cold {
            try request.options.checkCancelled()
            let t = nowNanos()
            let condition = try filter.map { f throws(HybridStoreError) in try store.compiled(f, s) }
            var report = ColdStepReport()
            let cold = try store.coldStep(
                s, query: request.vector, k: k, filter: filter, condition: condition,
                bound: merged.count >= k ? merged[k - 1].distance : nil,
                probes: request.options.coldProbes
                    ?? (plan.source == .exactForRecall || plan.source == .exactAboveCalibration ? Int.max : nil),
                effort: plan.effort, reader: reader,
                report: &report)
            merged += cold.filter { !changed.contains($0.row) }.map { ($0.row, nil, $0.distance) }
            merged.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
            // A row moving between tiers is in both for a moment (see `WriteTransaction.beforePublish`): once.
            var seen = Set<Int64>()
            merged = merged.filter { seen.insert($0.row).inserted }
            if merged.count > k { merged.removeLast(merged.count - k) }
            explanation.coldBlocksProbed = report.blocksProbed
            explanation.coldBytesDecompressed = report.bytesDecompressed
            explanation.coldRowsRanked = report.rowsRanked
            explanation.coldRowsReranked = report.rowsReranked
            explanation.distanceComputations += report.candidates
            timings["cold"] = ms(since: t)
            timings["cold plan"] = report.planMs
        }
        return try hydrate(merged, reader)
    }

    /// Ids (of cold hits) and the returned columns, from SQLite in one statement; none needed, from memory.
    private mutating func hydrate(_ merged: [Found], _ reader: Connection?) throws(HybridStoreError) -> [SearchHit] {
        if positions.isEmpty && merged.allSatisfy({ $0.id != nil }) {
            return merged.map { SearchHit(id: $0.id!, distance: $0.distance, values: [:]) }
        }
        try request.options.checkCancelled()
        let t = nowNanos()
        let rows = try store.hydrate(merged.map(\.row), positions: positions, s, on: reader)
        timings["hydrate"] = ms(since: t)
        return merged.compactMap { hit in
            rows[hit.row].map { SearchHit(id: $0.id, distance: hit.distance, values: $0.values) }
        }
    }

    /// Results and timings recorded, the tenant metered, the observer told.
    private mutating func finish(results: Int) {
        explanation.results = results
        explanation.timingsMs = timings
        if let tenant = request.tenant {
            store.meterQuery(tenant, scored: explanation.distanceComputations)
            explanation.scope(to: tenant, rows: tenantRows)
        }
        if let observer = store.observer {
            let timings = timings
            observer.query(
                collection: s.name, plan: explanation.ran.rawValue, nanos: nowNanos() - started,
                details: "filter \(filter?.description ?? "none"), k \(k), "
                    + timings
                    .sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.2f", $0.value)) ms" }.joined(
                        separator: ", "))
        }
    }

    // MARK: Helpers

    /// The probe record of a filter shape (its columns) at a selectivity bucket.
    private static func probeKey(_ filter: Filter, bucket: Int) -> String {
        filter.columns.sorted().joined(separator: ",") + "|" + String(bucket)
    }

    /// The hot nodes matching the filter (collected once).
    private mutating func collect(_ columns: FilterColumns) -> [UInt32] {
        if let matches { return matches }
        let t = nowNanos()
        let nodes = columns.collect(filter!, predicate: predicate ?? columns.predicate(filter!))
        timings["collect"] = (timings["collect"] ?? 0) + ms(since: t)
        matches = nodes
        return nodes
    }
}
