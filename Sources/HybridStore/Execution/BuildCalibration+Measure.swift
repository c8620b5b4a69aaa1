import Dispatch
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// Queries per bucket a build-time calibration measures.
    static let calibrationQueries = 100
    /// Effort scales (× the planner's table effort for the target) at which each query is searched.
    /// Quarter octaves from ¼ to 8: neighbouring efforts differ by 19 %, so the one chosen over-serves the
    /// target by little.
    static let calibrationScales: [Double] = (-8...12).map { exp2(Double($0) / 4) }
    /// A selectivity standing for each filtered bucket of `RecallCalibration` (bucket 5, under 1 %, is left
    /// to exact plans and the online checks).
    /// The upper bound of each bucket decides whether the planner answers any of it with a graph search.
    static let calibrationSelectivities: [(bucket: Int, selectivity: Double, upper: Double)] = [
        (1, 0.6, 1), (2, 0.35, 0.5), (3, 0.1, 0.2), (4, 0.025, 0.05),
    ]

    /// Whether a collection's build-time curves are missing, or its rows changed by 20 % or more since.
    func calibrationDue(_ s: CollectionState) -> Bool {
        let rows = s.lock.read { s.index.count }
        guard rows >= Self.calibrationMinimumRows else { return false }
        guard let built = s.calibration.withLock({ $0.built }) else { return true }
        return Double(abs(rows - built.rows)) >= 0.2 * Double(max(built.rows, 1))
    }

    static let calibrationMinimumRows = 500
    /// A query is a row moved by this fraction of the difference between two of its nearest rows.
    static let calibrationNoise: Float = 0.7

    /// Measures the collection's recall curves on its own data and adopts them (`RecallCalibration.adopt`):
    /// queries are rows moved off themselves by about the distance to their nearest other row (so a query
    /// sits among the rows as an unseen one would, not on a node of the graph); exact answers come from a
    /// scan; per bucket, each query is searched at every scale of `calibrationScales` with the plan the
    /// planner runs there (plain graph, or a filtered graph under a filter of the bucket's selectivity that
    /// matches rows at random). Buckets the planner answers exactly at the default effort are left out.
    /// - Returns: the curves adopted, or nil for a collection too small to need them.
    /// - Complexity: `calibrationQueries` × (2 scans + selectivity-weighted scans + 11 searches per bucket).
    @discardableResult
    func calibrateAtBuild(_ s: CollectionState, target: Double = 0.95, k: Int = 10) -> BuildCalibration? {
        let started = nowNanos()
        let dimensions = s.schema.vector.dimensions
        let measured: [Int: [BuildCalibration.Point]]? = s.query { index, _, _ in
            let rows = index.count
            guard rows >= Self.calibrationMinimumRows else { return nil }
            let capacity = index.nodeCapacity
            let all = Array(0..<UInt32(capacity))
            var rng = SplitMix64(seed: 0x5EED_CA11 ^ UInt64(rows))
            // Query vectors: rows, each moved off itself by the difference of two of its 10 nearest rows, times
            // `calibrationNoise`. The difference lies along the data's local manifold and carries the rows' own
            // noise, so the query sits among the rows as an unseen draw from the data would: isotropic noise
            // would leave a low-dimensional manifold (barely changing the ranking), and a move within the
            // manifold alone would keep the row's own noise, which makes it its query's easy nearest.
            var queries: [[Float]] = []
            var attempts = 0
            while queries.count < Self.calibrationQueries && attempts < Self.calibrationQueries * 50 {
                attempts += 1
                guard let label = index.label(ofNode: UInt32.random(in: 0..<UInt32(capacity), using: &rng)),
                      let v = index.vector(forLabel: label),
                      let near = try? index.exactSearch(v, k: 11, candidates: all).hits.filter({ $0.label != label }),
                      near.count >= 2 else { continue }
                let a = Int.random(in: 0..<near.count, using: &rng)
                var b = Int.random(in: 0..<near.count - 1, using: &rng)
                if b >= a { b += 1 }
                guard let wa = index.vector(forLabel: near[a].label), let wb = index.vector(forLabel: near[b].label) else { continue }
                let q = (0..<dimensions).map { v[$0] + Self.calibrationNoise * (wa[$0] - wb[$0]) }
                guard vectorProblem(q, metric: index.parameters.metric) == nil else { continue }
                queries.append(q)
            }
            guard queries.count >= 20 else { return nil }
            let fixedQueries = queries
            let table = Planner.effort(forRecall: target, k: k)
            var curves: [Int: [BuildCalibration.Point]] = [:]
            // The unfiltered bucket, then the filtered ones the planner would answer with a graph search.
            var buckets: [(bucket: Int, selectivity: Double)] = [(0, 1)]
            for (bucket, selectivity, upper) in Self.calibrationSelectivities {
                let plan = Planner.choose(PlanInput(rows: rows, estimatedMatches: upper * Double(rows), hasFilter: true,
                                                    k: k, dimensions: dimensions, recallTarget: target))
                if plan.strategy != .exact { buckets.append((bucket, selectivity)) }
            }
            for (bucket, selectivity) in buckets {
                let salt = UInt64(bucket) &* 0x9E37_79B9_7F4A_7C15
                let threshold = selectivity >= 1 ? UInt64.max : UInt64(Double(UInt64.max) * selectivity)
                let matches: @Sendable (UInt32) -> Bool = { node in
                    selectivity >= 1 || SplitMix64.mix(UInt64(node) ^ salt) < threshold
                }
                let candidates = selectivity >= 1 ? all : all.filter(matches)
                // recalls[q][i]: query q's recall at scale i. Queries run on every core.
                let recalls = Locked([[Double]](repeating: [], count: fixedQueries.count))
                DispatchQueue.concurrentPerform(iterations: fixedQueries.count) { qi in
                    let q = fixedQueries[qi]
                    guard let truth = try? index.exactSearch(q, k: k, candidates: candidates).hits.map(\.label),
                          !truth.isEmpty else { return }
                    let wanted = Set(truth)
                    var row: [Double] = []
                    for scale in Self.calibrationScales {
                        // Recall 1 at a smaller effort: a larger one finds the same (the search only widens).
                        if row.last == 1 {
                            row.append(1)
                            continue
                        }
                        let ef = max(k, Int((Double(table) * scale).rounded(.up)))
                        let hits = selectivity >= 1
                            ? try? index.search(q, k: k, searchEffort: ef).hits
                            : try? index.search(q, k: k, searchEffort: Planner.filteredEffort(ef, selectivity: selectivity, k: k),
                                                filter: .predicate(matches), mode: .admitMatching).hits
                        let found = (hits ?? []).filter { wanted.contains($0.label) }.count
                        row.append(Double(found) / Double(truth.count))
                    }
                    recalls.withLock { $0[qi] = row }
                }
                let table = recalls.withLock { $0 }.filter { !$0.isEmpty }
                guard table.count >= 20 else { continue }
                curves[bucket] = Self.calibrationScales.indices.map { i in
                    let (mean, error) = RecallCalibration.meanAndError(table.map { $0[i] })
                    return BuildCalibration.Point(scale: Self.calibrationScales[i], recall: mean, error: error)
                }
            }
            return curves
        }
        guard let measured, !measured.isEmpty else { return nil }
        let calibration = BuildCalibration(curves: measured, queries: Self.calibrationQueries,
                                           rows: s.lock.read { s.index.count }, measuredAt: Date().timeIntervalSince1970,
                                           target: target, k: k, seconds: Double(nowNanos() - started) / 1e9)
        s.calibration.withLock { $0.adopt(calibration) }
        return calibration
    }
}

/// A standard normal deviate (Box–Muller).
private func gaussian(_ rng: inout SplitMix64) -> Double {
    let u = Double.random(in: Double.ulpOfOne..<1, using: &rng), v = Double.random(in: 0..<1, using: &rng)
    return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
}
