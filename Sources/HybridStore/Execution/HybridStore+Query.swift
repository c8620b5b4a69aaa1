import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// The `k` rows nearest to `vector` among those matching `filter`, nearest first, with the `returning`
    /// columns hydrated from SQLite in one statement (none requested: no SQLite access).
    ///
    /// The planner estimates how many rows match and picks exact scan, filtered graph or post-filter, with
    /// a fallback to exact when a plan finds fewer than k rows although more match.
    /// - Throws: `dimensionMismatch`, `nonFiniteVector`, `invalidArgument` (k < 1, recall target outside
    ///   (0, 1]), `invalidFilter` (unknown column, type mismatch), `unknownColumn`, `unknownCollection`, `sqlite`.
    public func search(_ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
                       searchEffort: Int? = nil, recallTarget: Double = 0.95,
                       returning columns: [String] = []) throws(HybridStoreError) -> [SearchHit] {
        try query(collection, near: vector, k: k, filter: filter,
                  options: QueryOptions(recallTarget: recallTarget, searchEffort: searchEffort),
                  returning: columns, explain: false).hits
    }

    /// As `search`, with every option of a query (`QueryOptions`: tiers, cold effort, a forced strategy…).
    public func search(_ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
                       options: QueryOptions, returning columns: [String] = []) throws(HybridStoreError) -> [SearchHit] {
        try query(collection, near: vector, k: k, filter: filter, options: options, returning: columns, explain: false).hits
    }

    /// As `search`, with a filter in the string syntax (`"tenant = 'acme' AND year >= 2020"`).
    /// - Throws: also `invalidFilter` with the offset of a parse error.
    public func search(_ collection: CollectionRef, near vector: [Float], k: Int, where filterText: String,
                       searchEffort: Int? = nil, recallTarget: Double = 0.95,
                       returning columns: [String] = []) throws(HybridStoreError) -> [SearchHit] {
        try search(collection, near: vector, k: k, where: try parseFilter(filterText), searchEffort: searchEffort,
                   recallTarget: recallTarget, returning: columns)
    }

    /// Runs the query and reports the plan, the estimated and actual matches, the work and time per phase.
    public func explain(_ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
                        options: QueryOptions = QueryOptions(), returning columns: [String] = [])
        throws(HybridStoreError) -> Explanation
    {
        try query(collection, near: vector, k: k, filter: filter, options: options, returning: columns, explain: true).explanation
    }

    /// The full query: hits and what it did. `explain` also counts the actual matches.
    public func query(_ collection: CollectionRef, near vector: [Float], k: Int, filter: Filter?, options: QueryOptions,
                      returning columns: [String] = [], explain: Bool = false)
        throws(HybridStoreError) -> (hits: [SearchHit], explanation: Explanation)
    {
        try query(collection, near: vector, k: k, filter: filter, options: options, returning: columns, explain: explain,
                  tenant: nil)
    }

    /// `query`, optionally restricted to one tenant's rows (its filter ANDed with `tenant column = name`),
    /// counted against its query quota and metered for its usage.
    ///
    /// The answer is that of one committed state: the read's pinned snapshot (`view`, or one pinned here when the
    /// query reads SQLite or a writer is publishing), with memory's view of rows changed meanwhile corrected to
    /// it (see `ChangeEpochs`); otherwise the state memory reflects, which no writer is changing.
    func query(_ collection: CollectionRef, near vector: [Float], k: Int, filter: Filter?, options: QueryOptions,
               returning columns: [String], explain: Bool, tenant: String?, view: ReadView? = nil)
        throws(HybridStoreError) -> (hits: [SearchHit], explanation: Explanation)
    {
        func run(_ view: ReadView?, admit: Bool) throws(HybridStoreError) -> (hits: [SearchHit], explanation: Explanation)? {
            try runQuery(collection, near: vector, k: k, filter: filter, options: options, returning: columns,
                         explain: explain, tenant: tenant, admit: admit, view: view)
        }
        if let view, let answer = try run(view, admit: true) { return answer }
        // Optimistic: a query that reads memory alone reruns only if memory was being published while it searched;
        // one that also reads SQLite (columns, cold blocks, a filter SQLite evaluates) runs so while no transaction
        // is committing or publishing, and reruns if one began.
        let s = try state(collection)
        let readsSQLite = !columns.isEmpty || !s.lock.read({ s.cold.isEmpty })
            || filter.map { f in !s.lock.read { s.columns.covers(f) } } ?? false
        let optimistic = !readsSQLite || epochs.quiet != nil
        if optimistic, let answer = try run(nil, admit: true) { return answer }
        // Against a pinned snapshot, with memory's view of rows changed meanwhile corrected to it.
        return try withPinnedRead { (view) throws(HybridStoreError) in
            guard let answer = try run(view, admit: !optimistic) else {
                throw HybridStoreError(.sqlite, "a pinned read was asked to restart")
            }
            return answer
        }
    }

    /// One run of a query; nil when it ran without a snapshot and a writer committed or published meanwhile (run
    /// it again with one).
    private func runQuery(_ collection: CollectionRef, near vector: [Float], k: Int, filter: Filter?, options: QueryOptions,
                          returning columns: [String], explain: Bool, tenant: String?, admit: Bool, view: ReadView?)
        throws(HybridStoreError) -> (hits: [SearchHit], explanation: Explanation)?
    {
        let started = nowNanos()
        let quietAtStart = epochs.quiet
        let s = try state(collection)
        let positions = try columnPositions(columns, s)
        guard k >= 1 else { throw HybridStoreError(.invalidArgument, "k must be at least 1, got \(k)", context: ["k": "\(k)"]) }
        // No query returns more rows than the collection holds: clamping here keeps every size computed from
        // k (candidate lists, over-fetch, heaps) within the collection's size, whatever k a caller passes.
        let k = min(k, max(1, s.lock.read { s.index.count + s.cold.liveRows }))
        guard options.recallTarget > 0 && options.recallTarget <= 1 else {
            throw HybridStoreError(.invalidArgument, "recall target must be in (0, 1], got \(options.recallTarget)")
        }
        guard options.coldEffort > 0 && options.coldEffort.isFinite, (options.coldProbes ?? 1) >= 1 else {
            throw HybridStoreError(.invalidArgument, "cold effort must be a positive number and cold probes at least 1, got "
                                   + "\(options.coldEffort) and \(options.coldProbes.map(String.init) ?? "nil")")
        }
        try checkQueryVector(vector, s)
        try options.checkCancelled()
        var filter = try filter.map { f throws(HybridStoreError) in try validated(f.normalized, s) }
        var scope: Filter? = nil
        if let tenant {
            scope = try tenantFilter(tenant, s)
            if admit { try admitQuery(tenant) }
            filter = filter.map { Filter.and([scope!, $0]).normalized } ?? scope
        }
        // Under a tenant scope, estimates come from the tenant's own rows (see `explanation.scopedToTenant`).
        var tenantRows: Int? = nil
        var timings: [String: Double] = [:]
        // Filters on columns not held in memory are evaluated by SQLite into a set of rows first.
        var sqlNodes: [UInt32]? = nil
        if let filter, !s.lock.read({ s.columns.covers(filter) }) {
            let t = nowNanos()
            let rows = try rowsMatching(filter, s, on: view?.connection)
            sqlNodes = s.read { index, _ in rows.compactMap { index.node(forLabel: UInt64($0)) } }
            timings["collect"] = ms(since: t)
        }
        var explanation = Explanation(collection: s.name, filter: filter.map { explain ? $0.description : "(not rendered: explain off)" }, k: k,
                                      recallTarget: options.recallTarget,
                                      plan: .unplanned,
                                      actualMatches: nil, fallback: nil, distanceComputations: 0, visitedNodes: 0,
                                      results: 0, timingsMs: [:])
        var found: [(row: Int64, id: RowID, distance: Float)]
        var changed = Set<Int64>()
        var restart = false
        let calibration = s.calibration.withLock { $0 }
        do throws(HNSWError) {
            found = !options.tiers.contains(.hot) ? [] : try s.query { (index, columns, idOf) throws(HNSWError) in
                // The states memory may be in; rows changed between them and the snapshot are searched for k more,
                // dropped, and evaluated in the snapshot below.
                let memory = epochs.memoryRange
                if view == nil && memory.low != memory.high {
                    restart = true
                    return []
                }
                changed = view.map { rowsChangedUnder($0, s, memory: memory) } ?? []
                let kHot = k + changed.count
                let rows = index.count
                var estimate = sqlNodes.map { Double($0.count) } ?? filter.map { columns.estimate($0) } ?? Double(rows)
                if sqlNodes == nil, let scope, let filter, let within = columns.estimate(filter, within: scope) {
                    estimate = within.matches
                    tenantRows = within.rows
                }
                let scale = calibration.scale(selectivity: estimate / Double(max(rows, 1)), filtered: filter != nil)
                var plan = Planner.choose(PlanInput(rows: rows, estimatedMatches: estimate, hasFilter: filter != nil, k: kHot,
                                                    dimensions: s.schema.vector.dimensions,
                                                    recallTarget: options.recallTarget, searchEffort: options.searchEffort,
                                                    inMemoryPredicate: sqlNodes == nil, effortScale: scale))
                if options.searchEffort == nil { explanation.effortScale = scale }
                var exactForRecall = false
                // What the expected recall rests on: the build-time curve of this bucket, online checks, or
                // nothing but the static model (the words only when explaining: no formatting per search).
                let selectivity = estimate / Double(max(rows, 1))
                if plan.strategy != .exact, options.searchEffort == nil, let built = calibration.built,
                   built.target == options.recallTarget,
                   let expected = calibration.expected(selectivity: selectivity, filtered: filter != nil) {
                    plan.expectedRecall = expected.recall
                    explanation.expectedRecallError = expected.interval
                    if explain {
                        let hours = max(0, Date().timeIntervalSince1970 - built.measuredAt) / 3600
                        explanation.recallSource = "\(built.queries) build-time queries, "
                            + (hours < 1 ? "\(Int(hours * 60)) min old" : String(format: "%.1f h old", hours))
                    }
                    // Never a silent shortfall: where the measured curve does not reach the target even at the
                    // largest effort, an exact plan answers when it costs at most `exactFallbackCostRatio` times
                    // the graph's; otherwise the explanation states the expected shortfall.
                    if expected.recall + 2 * expected.error < options.recallTarget, options.strategy == nil {
                        let exactCost = plan.estimatedMatches
                            * (Planner.exactDistanceCost(dimensions: s.schema.vector.dimensions) + Planner.collectCost)
                        if sqlNodes == nil, exactCost <= Self.exactFallbackCostRatio * max(plan.estimatedCost, 1) {
                            if explain {
                                explanation.recallSource = String(format: "exact: the graph's calibrated recall %.3f ± %.3f falls short of the target",
                                                                  expected.recall, expected.interval)
                            }
                            explanation.expectedRecallError = nil
                            plan.strategy = .exact
                            plan.effort = nil
                            plan.overFetch = nil
                            plan.expectedRecall = 1
                            exactForRecall = true
                        } else if explain {
                            explanation.recallSource += String(format: "; short of the target by %.3f, and an exact scan would cost %.0f× more",
                                                               options.recallTarget - expected.recall, exactCost / max(plan.estimatedCost, 1))
                        }
                    }
                } else if explain {
                    explanation.recallSource = plan.strategy == .exact ? "exact"
                        : options.searchEffort != nil ? "fixed effort: static model"
                        : calibration.isMeasured(selectivity: selectivity, filtered: filter != nil) ? "online checks"
                        : "uncalibrated: static model"
                }
                if let forced = options.strategy, forced != plan.strategy, filter != nil || forced == .graph || forced == .exact {
                    plan.strategy = forced
                    plan.effort = plan.effort ?? max(options.searchEffort ?? Planner.effort(forRecall: options.recallTarget, k: kHot), kHot)
                    if forced == .postFilter && plan.overFetch == nil {
                        plan.overFetch = Int((Double(kHot) / max(plan.estimatedSelectivity, 1e-6) * 1.5).rounded(.up))
                        plan.effort = max(plan.effort!, plan.overFetch!)
                    }
                }
                timings["plan"] = ms(since: started)
                let predicate: ((UInt32) -> Bool)? = filter.flatMap { f in sqlNodes == nil ? columns.predicate(f) : nil }
                var matches: [UInt32]? = sqlNodes
                func collect() -> [UInt32] {
                    if let matches { return matches }
                    let t = nowNanos()
                    let nodes = columns.collect(filter!, predicate: predicate!)
                    timings["collect"] = (timings["collect"] ?? 0) + ms(since: t)
                    matches = nodes
                    return nodes
                }
                if explain, filter != nil { explanation.actualMatches = collect().count }
                let t = nowNanos()
                var result: IndexSearchResult
                var probeStats: SearchStats? = nil
                switch plan.strategy {
                case .graph:
                    result = try index.search(vector, k: kHot, searchEffort: plan.effort)
                case .exact:
                    // A filter correlated with the query lets a filtered graph search finish in fewer distance
                    // computations than the exact scan; the cost model cannot see correlation, so try the graph
                    // first with the exact scan's cost as its budget, where this filter shape has paid off.
                    if let filter, let predicate, options.strategy == nil, options.searchEffort == nil, !exactForRecall,
                       plan.estimatedMatches >= Double(Self.probeMinimumMatches) {
                        let key = filter.columns.sorted().joined(separator: ",") + "|"
                            + String(RecallCalibration.bucket(selectivity: plan.estimatedSelectivity, filtered: true))
                        // Only where recall checks have measured the graph's recall at this selectivity (shadow
                        // probes of exact plans, below): an unmeasured graph could miss the target.
                        if calibration.isMeasured(selectivity: plan.estimatedSelectivity, filtered: true),
                           s.probes.withLock({ $0[key, default: ProbeRecord()].shouldProbe() }) {
                            let ef = Planner.filteredEffort(forRecall: options.recallTarget, k: kHot, scale: scale,
                                                            selectivity: plan.estimatedSelectivity)
                            let budget = Int(plan.estimatedMatches * Planner.exactDistanceCost(dimensions: s.schema.vector.dimensions))
                            let probe = try index.search(vector, k: kHot, searchEffort: ef,
                                                         filter: .predicate(unsafeSendable(predicate)), mode: .admitMatching,
                                                         budget: budget)
                            let complete = !probe.stats.exhausted && probe.hits.count >= min(kHot, Int(plan.estimatedMatches))
                            s.probes.withLock { $0[key, default: ProbeRecord()].record(success: complete) }
                            if complete {
                                explanation.probe = "filtered graph at ef \(ef) finished in \(probe.stats.distanceComputations) of \(budget) distance computations: used"
                                plan.strategy = .filteredGraph
                                plan.effort = ef
                                plan.expectedRecall = Planner.expectedRecall(effort: ef, k: kHot)
                                result = probe
                                break
                            }
                            explanation.probe = "filtered graph at ef \(ef) stopped at its budget of \(budget) distance computations: exact instead"
                            probeStats = probe.stats
                        }
                    }
                    let candidates = filter == nil ? Array(0..<UInt32(index.nodeCapacity)) : collect()
                    result = try index.exactSearch(vector, k: kHot, candidates: candidates,
                                                   threads: candidates.count < 40_000 ? 1 : configuration.buildThreads ?? cores)
                    if let probeStats {
                        result.stats.distanceComputations += probeStats.distanceComputations
                        result.stats.visitedNodes += probeStats.visitedNodes
                    }
                case .filteredGraph, .filteredGraphMatchingOnly:
                    let filterForIndex: SearchFilter
                    if let predicate {
                        filterForIndex = .predicate(unsafeSendable(predicate))
                    } else {
                        var set = NodeBitset(capacity: index.nodeCapacity)
                        for node in collect() where Int(node) < set.capacity { set.insert(node) }
                        filterForIndex = .bitset(set)
                    }
                    result = try index.search(vector, k: kHot, searchEffort: plan.effort, filter: filterForIndex,
                                              mode: plan.strategy == .filteredGraph ? .admitMatching : .matchingOnly)
                case .postFilter:
                    let wide = try index.search(vector, k: plan.overFetch ?? kHot, searchEffort: plan.effort)
                    let kept: [IndexHit]
                    if let predicate {
                        kept = wide.hits.filter { predicate($0.node) }
                    } else {
                        let allowed = Set(collect())
                        kept = wide.hits.filter { allowed.contains($0.node) }
                    }
                    result = IndexSearchResult(hits: Array(kept.prefix(kHot)), stats: wide.stats)
                }
                result.hits = result.hits.filter { idOf($0.node) != nil }
                timings["search"] = ms(since: t)
                // Fallback: fewer than k found while more rows match. Few matches: exact over them; many (a
                // post-filter that over-fetched too little): the filtered graph, which admits only matches.
                if result.hits.count < kHot, filter != nil, plan.strategy != .exact {
                    let t2 = nowNanos()
                    let expected = sqlNodes?.count ?? Int(plan.estimatedMatches)
                    var extra: IndexSearchResult? = nil
                    if plan.strategy == .postFilter, expected > 20_000, let predicate {
                        extra = try index.search(vector, k: kHot, searchEffort: plan.effort,
                                                 filter: .predicate(unsafeSendable(predicate)), mode: .admitMatching)
                        explanation.fallback = .filteredGraph
                    } else {
                        let nodes = collect()
                        if nodes.count > result.hits.count {
                            extra = try index.exactSearch(vector, k: kHot, candidates: nodes)
                            explanation.fallback = .exact
                        }
                    }
                    if let extra {
                        result.hits = extra.hits.filter { idOf($0.node) != nil }
                        result.stats.distanceComputations += extra.stats.distanceComputations
                        result.stats.visitedNodes += extra.stats.visitedNodes
                        timings["fallback"] = ms(since: t2)
                    }
                }
                explanation.plan = plan
                explanation.distanceComputations = result.stats.distanceComputations
                explanation.visitedNodes = result.stats.visitedNodes
                // A writer may have begun publishing while the graph was searched (its removals do not wait for the
                // collection's lock): unpinned, run again; pinned, set aside its rows too.
                let after = epochs.memoryRange
                if after != memory {
                    guard let view else {
                        restart = true
                        return []
                    }
                    changed = rowsChangedUnder(view, s, memory: (memory.low, after.high))
                }
                return result.hits.compactMap { hit in idOf(hit.node).map { (Int64(hit.label), $0, hit.distance) } }
            }
        } catch {
            throw HybridStoreError(error, collection: s.name)
        }
        if restart { return nil }
        try options.checkCancelled()
        if let view, !changed.isEmpty {
            // Rows changed under this read: memory's view of them is dropped, their snapshot state evaluated.
            let condition = try filter.map { f throws(HybridStoreError) in try compiled(f, s) }
            let fresh = try evaluateInSnapshot(changed, s, query: vector, condition: condition, view)
                .filter { options.tiers.contains($0.cold ? .cold : .hot) }
            found = found.filter { !changed.contains($0.row) } + fresh.map { ($0.row, $0.id, $0.distance) }
            found.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
            if found.count > k { found.removeLast(found.count - k) }
            explanation.rowsChangedUnderRead = changed.count
        }
        if options.searchEffort == nil, options.strategy == nil, explanation.fallback == nil, sqlNodes == nil, !found.isEmpty {
            if explanation.plan.strategy != .exact {
                checkRecallSometimes(s, query: vector, k: k, filter: filter, found: found.map(\.row),
                                     strategy: explanation.plan.strategy, scale: explanation.effortScale,
                                     selectivity: explanation.plan.estimatedSelectivity, target: options.recallTarget)
            } else if let filter, explanation.plan.estimatedMatches >= Double(Self.probeMinimumMatches) {
                // The exact result is the truth: measure, off the query path, what the probe's graph search
                // would have returned, so the bucket's calibration (and the probe's effort) has evidence.
                shadowProbeSometimes(s, query: vector, k: k, filter: filter, truth: found.map(\.row),
                                     selectivity: explanation.plan.estimatedSelectivity, target: options.recallTarget)
            }
        }
        // Cold step: the nearest cold rows that match, merged with the hot ones (ids come with hydration). It
        // and the hydration read one snapshot, through one reader connection and one read transaction.
        var merged: [(row: Int64, id: RowID?, distance: Float)] = found.map { ($0.row, $0.id, $0.distance) }
        let overCold = options.tiers.contains(.cold) && !s.lock.read({ s.cold.isEmpty })
        func finish(_ reader: Connection?) throws(HybridStoreError) -> [SearchHit] {
            if overCold {
                try options.checkCancelled()
                let t = nowNanos()
                let condition = try filter.map { f throws(HybridStoreError) in try compiled(f, s) }
                var report = ColdStepReport()
                // The store's probe rule at the effort the build-time curve over both tiers calls for (measured
                // unfiltered; a filter's rule widens from there), times the caller's `coldEffort`.
                let coldEffort = options.coldEffort * (options.coldProbes == nil ? calibration.coldScale ?? 1 : 1)
                let cold = try coldStep(s, query: vector, k: k, filter: filter, condition: condition,
                                        bound: merged.count >= k ? merged[k - 1].distance : nil, probes: options.coldProbes,
                                        effort: coldEffort, reader: reader, report: &report)
                explanation.coldEffort = coldEffort
                if explain {
                    explanation.coldEffortSource = options.coldProbes != nil ? "fixed probes"
                        : calibration.coldScale == nil ? "uncalibrated: the store's probe rule"
                        : "calibrated over both tiers"
                }
                // Unfiltered, the curve over both tiers says what the whole query expects (the hot tier's own
                // curve speaks of the hot rows alone).
                if filter == nil, options.coldProbes == nil, options.coldEffort == 1, options.searchEffort == nil,
                   explanation.plan.strategy == .graph, let built = calibration.built, built.target == options.recallTarget,
                   let both = calibration.expectedOverBothTiers() {
                    explanation.plan.expectedRecall = both.recall
                    explanation.expectedRecallError = both.interval
                    if explain { explanation.recallSource = "over both tiers, \(built.coldQueries ?? built.queries) build-time queries" }
                }
                merged += cold.filter { !changed.contains($0.row) }.map { ($0.row, nil, $0.distance) }
                merged.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
                // A row moving between tiers is in both for a moment (see `WriteTransaction.beforePublish`): once.
                var seen = Set<Int64>()
                merged = merged.filter { seen.insert($0.row).inserted }
                if merged.count > k { merged.removeLast(merged.count - k) }
                explanation.coldBlocksProbed = report.blocksProbed
                explanation.coldBytesDecompressed = report.bytesDecompressed
                explanation.coldRowsRanked = report.rowsRanked
                explanation.distanceComputations += report.candidates
                timings["cold"] = ms(since: t)
                timings["cold plan"] = report.planMs
            }
            if positions.isEmpty && merged.allSatisfy({ $0.id != nil }) {
                return merged.map { SearchHit(id: $0.id!, distance: $0.distance, values: [:]) }
            }
            try options.checkCancelled()
            let t = nowNanos()
            let rows = try hydrate(merged.map(\.row), positions: positions, s, on: reader)
            timings["hydrate"] = ms(since: t)
            return merged.compactMap { hit in rows[hit.row].map { SearchHit(id: $0.id, distance: hit.distance, values: $0.values) } }
        }
        let hits = if let view { try finish(view.connection) }
            else if overCold { try withReader { c in try c.transaction(immediate: false) { try finish(c) } } }
            else { try finish(nil) }
        // Unpinned, SQLite (filter, cold blocks, hydration) and memory agree only if no transaction was registered,
        // committed or published since the start.
        if view == nil, !(positions.isEmpty && sqlNodes == nil && !overCold), quietAtStart == nil || epochs.quiet != quietAtStart {
            return nil
        }
        explanation.results = hits.count
        explanation.timingsMs = timings
        if let tenant {
            meterQuery(tenant, scored: explanation.distanceComputations)
            explanation.scope(to: tenant, rows: tenantRows)
        }
        if let observer {
            observer.query(collection: s.name, plan: explanation.plan.strategy.rawValue, nanos: nowNanos() - started,
                           details: "filter \(filter?.description ?? "none"), k \(k), " + explanation.timingsMs
                               .sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.2f", $0.value)) ms" }.joined(separator: ", "))
        }
        return (hits, explanation)
    }

    /// How much more than the graph plan an exact scan may cost where the graph cannot reach the recall target.
    static let exactFallbackCostRatio = 32.0

    /// Rows matching `filter` in SQLite (parameterised; used for columns not held in memory).
    func rowsMatching(_ filter: Filter, _ s: CollectionState, on reader: Connection? = nil) throws(HybridStoreError) -> [Int64] {
        let condition = try compiled(filter, s)
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        return try withReader { c in
            let statement = try c.prepareOnce(s.table.rowsWhere(condition.text))
            try statement.bind(condition.arguments)
            var rows: [Int64] = []
            while try statement.step() { rows.append(statement.int64(0)) }
            return rows
        }
    }

    /// The filter that restricts a collection to one tenant's rows.
    /// - Throws: `wrongTenant` when the collection has no tenant column.
    func tenantFilter(_ tenant: String, _ s: CollectionState) throws(HybridStoreError) -> Filter {
        guard let column = s.schema.tenantColumn else {
            throw HybridStoreError(.wrongTenant, "collection `\(s.name)` has no tenant column, so it cannot be read as tenant `\(tenant)`",
                                   context: ["collection": s.name, "tenant": tenant])
        }
        return .compare(column: column, .equal, .text(tenant))
    }

    /// A validated filter, ANDed with the tenant's restriction when scoped; nil = every row.
    func scopedFilter(_ filter: Filter?, tenant: String?, _ s: CollectionState) throws(HybridStoreError) -> Filter? {
        let user = try filter.map { f throws(HybridStoreError) in try validated(f.normalized, s) }
        guard let tenant else { return user }
        let scope = try tenantFilter(tenant, s)
        return user.map { Filter.and([scope, $0]).normalized } ?? scope
    }

    /// The ids of the rows matching a filter, found by SQLite (in row order).
    /// - Throws: `invalidFilter`, `unknownCollection`, `sqlite`.
    public func ids(in collection: CollectionRef, where filter: Filter) throws(HybridStoreError) -> [RowID] {
        try ids(in: collection, where: filter, tenant: nil)
    }

    func ids(in collection: CollectionRef, where filter: Filter?, tenant: String?) throws(HybridStoreError) -> [RowID] {
        let s = try state(collection)
        let condition = try scopedFilter(filter, tenant: tenant, s).map { f throws(HybridStoreError) in try compiled(f, s) }
            ?? SQLCondition(text: "1", arguments: [])
        return try withReader { c in
            let statement = try c.prepareOnce(s.table.rowsAndIDs(where: condition.text))
            try statement.bind(condition.arguments)
            var ids: [RowID] = []
            while try statement.step() {
                switch statement.column(1) {
                case .integer(let v): ids.append(.int(v))
                case .text(let t): ids.append(.string(t))
                default: break
                }
            }
            return ids
        }
    }

    /// The number of rows matching a filter, counted by SQLite.
    /// - Throws: `invalidFilter`, `unknownCollection`, `sqlite`.
    public func count(_ collection: CollectionRef, where filter: Filter) throws(HybridStoreError) -> Int {
        try count(collection, where: filter, tenant: nil)
    }

    func count(_ collection: CollectionRef, where filter: Filter?, tenant: String?, on reader: Connection? = nil)
        throws(HybridStoreError) -> Int
    {
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        let s = try state(collection)
        let condition = try scopedFilter(filter, tenant: tenant, s).map { f throws(HybridStoreError) in try compiled(f, s) }
            ?? SQLCondition(text: "1", arguments: [])
        return try withReader { c in
            let statement = try c.prepareOnce(s.table.countWhere(condition.text))
            try statement.bind(condition.arguments)
            guard try statement.step(), case .integer(let n) = statement.column(0) else { return 0 }
            return Int(n)
        }
    }

    /// Parses the string syntax into a filter, as an `invalidFilter` error on failure.
    public func parseFilter(_ text: String) throws(HybridStoreError) -> Filter {
        do {
            return try Filter(parsing: text)
        } catch {
            var context = ["filter": text]
            if let offset = error.offset { context["offset"] = "\(offset)" }
            throw HybridStoreError(.invalidFilter, "invalid filter: \(error.description)", context: context)
        }
    }

    func validated(_ filter: Filter, _ s: CollectionState) throws(HybridStoreError) -> Filter {
        do {
            try filter.validate { name in
                s.schema.column(name).map { FilterColumnType(rawValue: $0.spec.type.rawValue) ?? .blob }
            }
        } catch {
            throw HybridStoreError(.invalidFilter, "collection `\(s.name)`: \(error.message)",
                                   context: ["collection": s.name, "filter": filter.description])
        }
        return filter
    }

    func compiled(_ filter: Filter, _ s: CollectionState) throws(HybridStoreError) -> SQLCondition {
        do {
            return try filter.sql(identifier: { name in s.schema.column(name).map { s.table.columnName($0.index) } },
                                  isBoolean: { name in s.schema.column(name)?.spec.type == .boolean })
        } catch {
            throw HybridStoreError(.invalidFilter, "collection `\(s.name)`: \(error.message)", context: ["collection": s.name])
        }
    }

    func checkQueryVector(_ vector: [Float], _ s: CollectionState) throws(HybridStoreError) {
        let dim = s.schema.vector.dimensions
        guard vector.count == dim else {
            throw HybridStoreError(.dimensionMismatch, "collection `\(s.name)`: query vector expects \(dim) dimensions, got \(vector.count)",
                                   context: ["collection": s.name, "expected": "\(dim)", "actual": "\(vector.count)"])
        }
        if let problem = vectorProblem(vector, metric: s.schema.vector.metric) {
            throw HybridStoreError(.nonFiniteVector, "collection `\(s.name)`: query vector rejected: \(problem.message)",
                                   context: ["collection": s.name])
        }
    }
}

/// A predicate that reads the collection's columns, which the collection's read lock guards for the whole
/// search; the search runs on the calling thread only.
func unsafeSendable(_ body: @escaping (UInt32) -> Bool) -> @Sendable (UInt32) -> Bool {
    // SAFETY: the closure is called only by the synchronous search it is passed to, under the lock.
    nonisolated(unsafe) let body = body
    return { body($0) }
}

func nowNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Cores available, read once (Foundation reads cgroup files on every `activeProcessorCount`).
let cores = ProcessInfo.processInfo.activeProcessorCount
func ms(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
