import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// Every `recallSampleEvery`-th graph query (at most `recallChecksPerSecond`, one at a time) is run again
    /// as an exact scan on the background queue; the recall the planned search reached calibrates the
    /// collection's effort for its selectivity bucket (`RecallCalibration`). Costs the caller one atomic
    /// increment; a check costs one exact scan of the matches (all rows when unfiltered) off the query path.
    ///
    /// For plain and filtered graph plans the check also re-searches the query at the efforts of
    /// `RecallCalibration.curveMultipliers` (graph searches: a fraction of the exact scan's cost), so one
    /// window of checks shows where the target is met.
    func checkRecallSometimes(
        _ s: CollectionState, query: [Float], k: Int, filter: Filter?, found: [Int64],
        strategy: Strategy, scale: Double, selectivity: Double, target: Double
    ) {
        calibrateSometimes(s, selectivity: selectivity, filtered: filter != nil, target: target) {
            (index, columns) throws(HNSWError) in
            let predicate = filter.map { columns.predicate($0) }
            let candidates =
                filter.map { columns.collect($0, predicate: predicate!) } ?? Array(0..<UInt32(index.nodeCapacity))
            let truth = try index.exactSearch(query, k: k, candidates: candidates).hits.map { Int64($0.label) }
            guard strategy == .graph || (strategy == .filteredGraph && predicate != nil) else {
                return (found, truth, nil)
            }
            var curve: [[Int64]] = []
            for m in RecallCalibration.curveMultipliers {
                if m == 1 {
                    curve.append(found)
                } else if let predicate {
                    let ef = Planner.filteredEffort(forRecall: target, k: k, scale: scale * m, selectivity: selectivity)
                    curve.append(
                        try index.search(
                            query, k: k, searchEffort: ef, filter: .predicate(unsafeSendable(predicate)),
                            mode: .admitMatching
                        ).hits.map { Int64($0.label) })
                } else {
                    let ef = max(k, Int((Double(Planner.effort(forRecall: target, k: k)) * scale * m).rounded(.up)))
                    curve.append(try index.search(query, k: k, searchEffort: ef).hits.map { Int64($0.label) })
                }
            }
            return (found, truth, curve)
        }
    }

    /// For exact plans that a probe could serve: every `recallSampleEvery`-th one (under the same limits as
    /// recall checks) runs the probe's filtered graph search on the background queue and records its recall
    /// against the exact result. The foreground probes a selectivity bucket only once it is measured.
    func shadowProbeSometimes(
        _ s: CollectionState, query: [Float], k: Int, filter: Filter, truth: [Int64],
        selectivity: Double, target: Double
    ) {
        calibrateSometimes(s, selectivity: selectivity, filtered: true, target: target) {
            (index, columns) throws(HNSWError) in
            let scale = s.calibration.withLock { $0.scale(selectivity: selectivity, filtered: true) }
            let ef = Planner.filteredEffort(forRecall: target, k: k, scale: scale, selectivity: selectivity)
            let predicate = columns.predicate(filter)
            let found = try index.search(
                query, k: k, searchEffort: ef, filter: .predicate(unsafeSendable(predicate)),
                mode: .admitMatching
            ).hits.map { Int64($0.label) }
            return (found, truth, nil)
        }
    }

    /// Claims the background check slot and, on the background queue under the collection's read lock,
    /// runs `measure` (what a search returned, and the true nearest) and records the recall.
    private func calibrateSometimes(
        _ s: CollectionState, selectivity: Double, filtered: Bool, target: Double,
        measure:
            @escaping (HNSWIndex, FilterColumns) throws(HNSWError) -> (
                found: [Int64], truth: [Int64], curve: [[Int64]]?
            )
    ) {
        guard takeRecallCheckSlot(s) else { return }
        // SAFETY: `measure` runs only on the background queue, once, under the collection's read lock.
        nonisolated(unsafe) let measure = measure
        backgroundQueue.async { [weak self] in
            guard let self else { return }
            let started = nowNanos()
            var measured = false
            defer {
                let share = configuration.recallCheckCPUShare
                recallCheck.withLock {
                    $0.finish(started: started, ended: nowNanos(), share: share, measured: measured)
                }
            }
            guard !closed.load(ordering: .acquiring) else { return }
            guard
                let (found, truth, curve) = try? s.query({ (index, columns, _) throws(HNSWError) in
                    unsafe try measure(index, columns)
                }),
                !truth.isEmpty
            else { return }
            measured = true
            func recall(_ found: [Int64]) -> Double {
                let returned = Set(found)
                return Double(truth.filter { returned.contains($0) }.count) / Double(truth.count)
            }
            s.calibration.withLock {
                if let curve {
                    _ = $0.record(
                        curve: curve.map(recall), selectivity: selectivity, filtered: filtered, target: target)
                } else {
                    _ = $0.record(recall: recall(found), selectivity: selectivity, filtered: filtered, target: target)
                }
            }
        }
    }

    /// Claims the one background recall-check slot for every `recallSampleEvery`-th call, within
    /// `recallChecksPerSecond` and `recallCheckCPUShare`.
    private func takeRecallCheckSlot(_ s: CollectionState) -> Bool {
        let every = configuration.recallSampleEvery
        guard every > 0 else { return false }
        // Every `every`-th query on average, chosen by a hash of the query's number rather than its remainder:
        // a benchmark replays the same queries in the same order, and a fixed stride (with one check in
        // flight at a time) kept landing on the same few queries, whose recall is not the stream's.
        let n = UInt64(truncatingIfNeeded: s.graphQueries.add(1, ordering: .relaxed).newValue)
        guard SplitMix64.mix(n &+ SplitMix64.increment) % UInt64(every) == 0 else { return false }
        let now = nowNanos()
        let interval = UInt64(1e9 / max(configuration.recallChecksPerSecond, 1e-3))
        return recallCheck.withLock { $0.claim(now: now, interval: interval) }
    }

    /// How many background recall checks measured a recall in this process and the wall time they took (for the
    /// benchmarks; a check skipped because the store was closing, or whose search failed, is not counted).
    package var recallCheckTotals: (checks: Int, seconds: Double) {
        recallCheck.withLock { ($0.checks, Double($0.nanos) / 1e9) }
    }

    /// Adopts recall curves as if measured at build time (tests of the planner's use of them).
    package func adopt(_ calibration: BuildCalibration, for collection: CollectionRef) throws(HybridStoreError) {
        try state(collection).calibration.withLock { $0.adopt(calibration) }
    }

    /// The collection's effort calibration (for tests and `stats`).
    package func calibration(of collection: CollectionRef) throws(HybridStoreError) -> RecallCalibration {
        try state(collection).calibration.withLock { $0 }
    }
}

extension HybridStore {
    /// Waits until the background queue has run everything queued so far (recall checks, flushes).
    package func waitForBackgroundWork() { backgroundQueue.sync {} }
}

extension HybridStore {
    /// Loads each collection's saved effort calibration (on open; a missing or unreadable one starts afresh).
    func loadCalibrations(_ c: Connection) throws(HybridStoreError) {
        for s in catalog.withLock({ Array($0.values) }) {
            let saved = try sqliteWork("reading the calibration of `\(s.name)`") {
                try c.statement(SQL.readMeta).scalar([.text("calibration:\(s.number)")])
            }
            guard case .text(let json)? = saved,
                let calibration = try? JSONDecoder().decode(RecallCalibration.self, from: Data(json.utf8))
            else { continue }
            s.calibration.withLock { $0 = calibration }
        }
    }
}

/// The one background recall check slot: taken by one check at a time, at most once per the configured interval,
/// and after a check that took t, not again before t × (1 / share − 1) has passed, so the checks use at most
/// `share` of one core however long an exact scan of the collection takes.
package struct RecallCheckSlot {
    package private(set) var inFlight = false
    private var lastStart: UInt64 = 0
    package private(set) var notBefore: UInt64 = 0
    package private(set) var checks = 0
    package private(set) var nanos: UInt64 = 0

    package init() {}

    package mutating func claim(now: UInt64, interval: UInt64) -> Bool {
        guard !inFlight, lastStart == 0 || now &- lastStart >= interval, now >= notBefore else { return false }
        inFlight = true
        lastStart = now
        return true
    }

    /// Frees the slot after a check that ran from `started` to `ended`; `measured`: whether it recorded a recall
    /// (only those count in `checks` and `nanos`; any check's time spaces the next).
    package mutating func finish(started: UInt64, ended: UInt64, share: Double, measured: Bool = true) {
        let took = ended &- started
        inFlight = false
        if measured {
            checks += 1
            nanos &+= took
        }
        let rest = Double(took) * (1 / min(max(share, 1e-6), 1) - 1)
        notBefore = ended &+ UInt64(min(rest, 3.6e12))
    }
}

/// How often the filtered-graph probe has paid off for one filter shape: an exponential average of
/// successes. Below 30 % the probe is skipped, except one query in 64, so a shape whose data changes can
/// win its probe back (a failed probe costs at most the exact scan's cost again).
struct ProbeRecord {
    var rate = 0.5
    var skipped = 0

    mutating func shouldProbe() -> Bool {
        if rate >= 0.3 { return true }
        skipped += 1
        return skipped % 64 == 0
    }

    mutating func record(success: Bool) { rate = rate * 0.8 + (success ? 0.2 : 0) }
}
