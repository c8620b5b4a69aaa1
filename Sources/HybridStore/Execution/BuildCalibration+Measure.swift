import Dispatch
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    static let calibrationMinimumRows = 500
    /// Regions a calibration's filter following the data gathers its cold rows in (a few topics).
    static let calibrationRegions = 4
    /// Selectivities a curve under a filter following the data is measured at: the buckets below. The wider two
    /// cost 2–3 % more of import + tier at 20,000 rows, 80 % cold (to 11–12 % on the Gaussian sets), and did not
    /// bring a 57 % filter of whole clusters to the target (0.896, 0.962 expected; 0.868 without them).
    static let followingTheDataBelow = 0.2

    /// One cold curve under a filter to measure: the draw, its cold slots, its queries' exact hot answers, and its
    /// spread where it follows the data (nil: drawn at random).
    typealias ColdFilteredRequest = (
        curve: ColdFilteredDraw, slots: ColdSlotFilter, hot: [CalibrationRun.HotAnswer], spread: Double?
    )

    /// Whether a collection's build-time curves are due (`calibrationDue(rows:coldRows:coldCorrupt:built:)`).
    func calibrationDue(_ s: CollectionState) -> Bool {
        let (rows, coldRows, corrupt) = s.lock.read { (s.index.count, s.cold.liveRows, s.cold.corruptBlocks > 0) }
        return Self.calibrationDue(
            rows: rows, coldRows: coldRows, coldCorrupt: corrupt, built: s.calibration.withLock { $0.built })
    }

    /// Whether build-time curves are missing, or the hot or cold rows changed by 20 % or more since (a cold tier that
    /// appeared counts, one that went away does not need a curve), or a cold tier has no curve: one measured before
    /// cold curves under a filter were (it plans its filtered cold steps with the unfiltered curve until then), or
    /// none at all because the cold steps failed when it was measured. (A calibration that ran while `hybridctl
    /// tier` moved 160,000 rows cold recorded the cold rows without a curve, and no later checkpoint measured one.)
    /// Not the last while a cold block is corrupt (a pass over the tier fails until it is repaired or dropped).
    package static func calibrationDue(rows: Int, coldRows: Int, coldCorrupt: Bool, built: BuildCalibration?) -> Bool {
        guard rows >= calibrationMinimumRows else { return false }
        guard let built else { return true }
        func moved(_ now: Int, _ then: Int) -> Bool { Double(abs(now - then)) >= 0.2 * Double(max(then, 1)) }
        let cold = coldRows >= calibrationMinimumRows
        let coldDue = cold && moved(coldRows, built.coldRows ?? 0)
        let incomplete = cold && !coldCorrupt && (built.cold == nil || built.coldFiltered == nil)
        return moved(rows, built.rows) || coldDue || incomplete
    }

    /// Measures the collection's recall curves on its own data (`CalibrationRun`) and adopts them
    /// (`RecallCalibration.adopt`), so the planner's effort meets `target` from the next query on, in this
    /// process and, stored with the calibration, in a fresh one.
    /// - Returns: the curves adopted, or nil for a collection too small to need them.
    @discardableResult
    func calibrateAtBuild(_ s: CollectionState, target: Double = 0.95, k: Int = 10) -> BuildCalibration? {
        let started = nowNanos()
        let dimensions = s.schema.vector.dimensions
        // The cold tier's curve needs the hot answers of its queries; without a cold tier they are not searched.
        let coldRows = s.lock.read { s.cold.liveRows }
        let coldQueries = coldRows >= Self.calibrationMinimumRows ? Self.coldCalibrationQueries : 0
        let measured:
            (
                curves: [Int: [BuildCalibration.Point]], queries: Int, hot: [CalibrationRun.HotAnswer],
                filtered: [ColdFilteredRequest]
            )? =
                s.query {
                    index, _, _ in
                    guard index.count >= Self.calibrationMinimumRows,
                        let run = CalibrationRun(index: index, k: k, target: target, dimensions: dimensions)
                    else { return nil }
                    let curves = run.measureCurves()
                    let scale =
                        curves[0].map { RecallCalibration.scale(meeting: target, on: BuildCalibration.monotone($0)) }
                        ?? 1
                    var filtered: [ColdFilteredRequest] = []
                    if coldQueries > 0 {
                        let tier = s.cold
                        let rowOfSlot = tier.rowOfSlot
                        let draws = Self.coldFilteredDraws(blocks: tier.blocks.count, liveRows: tier.liveRows)
                        for (n, curve) in draws.enumerated() {
                            let selectivity = curve.selectivity
                            let draw = Self.randomFilter(selectivity: selectivity, salt: UInt64(16 + n))
                            let slots = ColdSlotFilter(
                                rowOfSlot: rowOfSlot, selectivity: selectivity,
                                matchesRow: { draw(UInt64(bitPattern: $0)) })
                            let hot = run.exactHotAnswers(
                                matches: { node in index.label(ofNode: node).map(draw) ?? false }, count: coldQueries)
                            filtered.append((curve, slots, hot, nil))
                        }
                        // Under a filter following the data, at each narrower bucket's representative selectivity:
                        // the cold rows of a few regions, none hot (the cold step alone, unbounded by a hot k-th: as
                        // hard as such a filter gets). Where its spread cannot be told, neither can a query's.
                        let none = run.exactHotAnswers(matches: { _ in false }, count: coldQueries)
                        for (n, curve) in draws.enumerated()
                        where curve.selectivity == BuildCalibration.coldSelectivity[curve.bucket]
                            && curve.selectivity < Self.followingTheDataBelow
                        {
                            guard
                                let slots = tier.regionFilter(
                                    selectivity: curve.selectivity, regions: Self.calibrationRegions,
                                    salt: UInt64(64 + n)),
                                let spread = tier.spread(
                                    selectivity: slots.selectivity, matches: slots.matches,
                                    matchingSlots: { slots.slots }),
                                spread < 1
                            else { continue }
                            filtered.append((curve, slots, none, spread))
                        }
                    }
                    return (curves, run.queries.count, run.hotAnswers(scale: scale, count: coldQueries), filtered)
                }
        guard let measured, !measured.curves.isEmpty else { return nil }
        var cold: ColdCurve? = nil
        var coldFiltered: [BuildCalibration.ColdFilteredCurve] = []
        if coldQueries > 0 {
            let curves = coldCurves(
                s,
                [ColdCurveRequest(answers: measured.hot, slots: nil, efforts: Self.coldCalibrationEfforts)]
                    + measured.filtered.map {
                        ColdCurveRequest(answers: $0.hot, slots: $0.slots, efforts: Self.coldFilteredEfforts)
                    },
                k: k, target: target)
            cold = curves[0]
            for (f, curve) in zip(measured.filtered, curves.dropFirst()) {
                guard let curve else { continue }
                coldFiltered.append(
                    BuildCalibration.ColdFilteredCurve(
                        bucket: f.curve.bucket, selectivity: f.slots.selectivity, ranksByCode: f.curve.ranksByCode,
                        points: curve.points, exact: curve.exact, spread: f.spread))
            }
        }
        let calibration = BuildCalibration(
            curves: measured.curves, queries: measured.queries,
            rows: s.lock.read { s.index.count }, measuredAt: Date().timeIntervalSince1970,
            target: target, k: k, seconds: Double(nowNanos() - started) / 1e9,
            cold: cold?.points, coldRows: coldRows,
            coldQueries: cold == nil ? nil : measured.hot.count,
            coldFiltered: coldFiltered.isEmpty ? nil : coldFiltered, coldExact: cold?.exact)
        s.calibration.withLock { $0.adopt(calibration) }
        return calibration
    }
}

/// A filter the cold tier's calibration draws: the bucket its curve serves, its selectivity, and the way a cold
/// step takes under it on this tier.
struct ColdFilteredDraw {
    let bucket: Int
    let selectivity: Double
    let ranksByCode: Bool
}

extension HybridStore {
    /// The filters the cold tier's curves under a filter are measured with: one at each filtered bucket's
    /// representative selectivity, and where part of the bucket's range takes the other way on this tier
    /// (`Planner.coldRanksByCode`, which turns on the tier's rows and blocks), one more in that part, at the
    /// selectivity nearest the representative (on a grid of 16 steps across the range).
    static func coldFilteredDraws(blocks: Int, liveRows: Int) -> [ColdFilteredDraw] {
        func byCode(_ s: Double) -> Bool { Planner.coldRanksByCode(blocks: blocks, liveRows: liveRows, selectivity: s) }
        var draws: [ColdFilteredDraw] = []
        for (bucket, representative) in BuildCalibration.coldSelectivity.sorted(by: { $0.key < $1.key }) {
            let way = byCode(representative)
            draws.append(ColdFilteredDraw(bucket: bucket, selectivity: representative, ranksByCode: way))
            guard let range = BuildCalibration.bucketRange[bucket] else { continue }
            let grid = (0...16).map { range.lowerBound * pow(range.upperBound / range.lowerBound, Double($0) / 16) }
            if let other = grid.filter({ byCode($0) != way }).min(by: {
                abs(log($0 / representative)) < abs(log($1 / representative))
            }) {
                draws.append(ColdFilteredDraw(bucket: bucket, selectivity: other, ranksByCode: !way))
            }
        }
        return draws
    }

    /// Whether a row (by id, or a node by label) falls in a filter matching `selectivity` of them at random; `salt`
    /// draws a different one.
    static func randomFilter(selectivity: Double, salt: UInt64) -> @Sendable (UInt64) -> Bool {
        let threshold = selectivity >= 1 ? UInt64.max : UInt64(Double(UInt64.max) * selectivity)
        let salt = salt &* 0x9E37_79B9_7F4A_7C15
        return { id in selectivity >= 1 || SplitMix64.mix(id ^ salt) < threshold }
    }
}

/// One build-time measurement of a collection's recall curves: per selectivity bucket, the mean recall@k the
/// plan the planner runs there (plain graph, or filtered graph under a filter of the bucket's selectivity
/// matching rows at random) reaches at effort scales around the target.
///
/// Queries are rows of the collection, each searched for in the graph as it would be without that row
/// (`HNSWIndex.search(…, hiding:)`: never visited, never returned) and compared with the exact answer among
/// the other rows: a row is a draw from the data's own distribution, and hidden it is one the graph has not
/// seen. Hiding leaves a hole in the graph at the query's place, though, which a fresh query does not meet:
/// the links its neighbours pruned for it are gone. Rows inserted after it link to it and prune for it too, so
/// the hole grows with the row's age. On 12,000 clustered anisotropic 48-d rows at ef 20, the rows of the first
/// tenth of the build found 0.969 of their neighbours, those of the last tenth 0.989, and fresh queries 0.993;
/// 200 rows inserted last found what they found held out of the graph, within 0.002 on that data and 0.002–0.025
/// on isotropic data. So the queries are drawn from the latest rows (`latestShare`). Drawn from all rows,
/// the curves erred safe by 0.001–0.009 on the Gaussian and uniform sets and by 0.017–0.03 on clustered
/// anisotropic ones (`hybrid-bench calibration --hard mixture-96`: recall 0.98–0.99 where 0.95 was asked).
/// Where rows were inserted in an order that follows the data (sorted by topic), the latest rows stand for the
/// latest region only. (Measuring the hole's cost with a second hole, the row's nearest neighbour, and
/// extrapolating to none was tried: with a few hundred queries its estimate was noisier than the bias it
/// removes. Giving the nodes around the hole the links they would have had without the row erred unsafe
/// under cosine and inner product: Benchmarks/README.md.)
/// (Rows moved off themselves, the proxy before this, were harder than fresh draws on isotropic 128-d data
/// and easier on 384-d clustered data, so their curves could only be trusted to raise the effort.)
///
/// Holds the collection's read lock throughout (it runs inside `CollectionState.query`).
struct CalibrationRun {
    /// Queries at most: 400 (a curve point's standard error ~0.004 at recall 0.95), one per 150 rows on small
    /// collections (the measurement stays under a tenth of the build: at one per 100 it took 11 % of a 20k-row
    /// import, at one per 125 8.5–10.8 %), at least 100, and fewer where scanning every row for each would pass
    /// 10^10 multiply-adds (a few seconds; 200k × 128 still gets 390).
    static func queryCount(rows: Int, dimensions: Int) -> Int {
        let byCost = Int(1e10 / Double(max(rows * dimensions, 1)))
        return max(100, min(400, rows / 150, byCost))
    }
    /// The share of the latest-inserted rows the queries are drawn from (at least twice the queries).
    static let latestShare = 0.02
    /// Queries that locate the target's crossing before all are measured around it.
    static let pilotQueries = 50
    /// The sparsest filter the queries' one exact scan is deep enough for (3× its expected depth).
    static let scanDepthSelectivity = 0.1
    /// Quarter octaves measured on either side of the pilot's crossing.
    static let reach = 2
    /// How far above the target the pilot looks for its crossing (the adopted scale comes from all queries).
    static let pilotMargin = 0.01
    /// Effort scales (× the planner's table effort for the target): quarter octaves from ⅛
    /// (`RecallCalibration.minScale`) to 16.
    static let scales: [Double] = (-12...16).map { exp2(Double($0) / 4) }
    /// A selectivity standing for each filtered bucket of `RecallCalibration` (bucket 5, under 1 %, is left
    /// to exact plans and the online checks). The upper bound of each bucket decides whether the planner
    /// answers any of it with a graph search.
    static let selectivities: [(bucket: Int, selectivity: Double, upper: Double)] = [
        (1, RecallCalibration.representativeSelectivity[1], 1),
        (2, RecallCalibration.representativeSelectivity[2], 0.5),
        (3, RecallCalibration.representativeSelectivity[3], 0.2),
        (4, RecallCalibration.representativeSelectivity[4], 0.05),
    ]

    struct Query {
        let node: UInt32
        let label: UInt64
        let vector: [Float]
        /// The nearest rows by exact scan (deep enough for a 10 % filter to leave k: `scanDepthSelectivity`).
        var nearest: [IndexHit]
    }

    let index: HNSWIndex
    let k: Int
    let target: Double
    let dimensions: Int
    /// The planner's effort for the target at scale 1.
    let table: Int
    let all: [UInt32]
    private(set) var queries: [Query] = []

    /// Draws the queries and scans for their exact neighbours; nil when fewer than 20 usable rows exist.
    init?(index: HNSWIndex, k: Int, target: Double, dimensions: Int) {
        self.index = index
        self.k = k
        self.target = target
        self.dimensions = dimensions
        table = Planner.effort(forRecall: target, k: k)
        let capacity = index.nodeCapacity
        all = Array(0..<UInt32(capacity))
        var rng = SplitMix64(seed: 0x5EED_CA11 ^ UInt64(index.count))
        let wanted = Self.queryCount(rows: index.count, dimensions: dimensions)
        // The latest rows: slots go out in insertion order (a build allocates a batch's slots in its order; a slot
        // freed by deletes and taken again is a recent row in an early place, which only makes the draw older).
        var latest: [(node: UInt32, label: UInt64)] = []
        let pool = max(2 * wanted, Int(Self.latestShare * Double(index.count)))
        var node = capacity
        while latest.count < pool && node > 0 {
            node -= 1
            if let label = index.label(ofNode: UInt32(node)) { latest.append((UInt32(node), label)) }
        }
        latest.shuffle(using: &rng)
        for (node, label) in latest where queries.count < wanted {
            guard let v = index.vector(forLabel: label), vectorProblem(v, metric: index.parameters.metric) == nil
            else { continue }
            queries.append(Query(node: node, label: label, vector: v, nearest: []))
        }
        guard queries.count >= 20 else { return nil }
        // One exact scan a query serves the buckets down to 10 %; a sparser filter's answer is scanned for among
        // its matching rows where this one falls short (`Bucket`), which costs less than keeping every query's
        // nearest 1,320 (a third of the calibration's scanning was ranking and rescoring that depth).
        let depth = min(capacity, Int((Double(k + 1) / Self.scanDepthSelectivity * 3).rounded(.up)))
        let scanned = Locked([[IndexHit]](repeating: [], count: queries.count))
        let fixed = queries, all = all
        DispatchQueue.concurrentPerform(iterations: fixed.count) { qi in
            let hits = (try? index.exactSearch(fixed[qi].vector, k: depth, candidates: all).hits) ?? []
            scanned.withLock { $0[qi] = hits }
        }
        let nearest = scanned.withLock { $0 }
        for qi in queries.indices { queries[qi].nearest = nearest[qi] }
    }

    /// The curves of the unfiltered bucket and of each filtered bucket the planner would answer with a graph
    /// at the unfiltered curve's effort. A filtered bucket it would answer exactly borrows the unfiltered
    /// curve, so a query there plans with the same effort the decision assumed (and goes exact too).
    func measureCurves() -> [Int: [BuildCalibration.Point]] {
        var curves: [Int: [BuildCalibration.Point]] = [:]
        guard let unfiltered = curve(Bucket(self, number: 0, selectivity: 1)) else { return curves }
        curves[0] = unfiltered
        let scale = RecallCalibration.scale(meeting: target, on: BuildCalibration.monotone(unfiltered))
        for (number, selectivity, upper) in Self.selectivities {
            let plan = Planner.choose(
                PlanInput(
                    rows: index.count, estimatedMatches: upper * Double(index.count),
                    hasFilter: true, k: k, dimensions: dimensions, recallTarget: target,
                    effortScale: scale))
            curves[number] =
                plan.strategy == .exact
                ? unfiltered : curve(Bucket(self, number: number, selectivity: selectivity)) ?? unfiltered
        }
        return curves
    }

    /// What the cold tier's calibration needs of a query from the hot tier: its hot hits at the calibrated
    /// effort (its own row hidden) and its exact hot neighbours (without itself), distances as reported.
    struct HotAnswer: Sendable {
        let vector: [Float]
        let hits: [(row: Int64, distance: Float)]
        let exact: [(row: Int64, distance: Float)]
    }

    /// `HotAnswer`s of the first `count` queries, the unfiltered graph searched at `scale`.
    func hotAnswers(scale: Double, count: Int) -> [HotAnswer] {
        let ef = max(k, Int((Double(table) * scale).rounded(.up)))
        return queries.prefix(count).map { q in
            let hits = (try? index.search(q.vector, k: k, searchEffort: ef, hiding: q.node).hits) ?? []
            return HotAnswer(
                vector: q.vector, hits: hits.map { (Int64(bitPattern: $0.label), $0.distance) },
                exact: q.nearest.filter { $0.node != q.node }.prefix(k).map {
                    (Int64(bitPattern: $0.label), $0.distance)
                })
        }
    }

    /// `HotAnswer`s of the first `count` queries under a filter matching `matches` nodes, answered exactly: the
    /// hits are the exact answer.
    func exactHotAnswers(matches: (UInt32) -> Bool, count: Int) -> [HotAnswer] {
        var candidates: [UInt32]? = nil
        return queries.prefix(count).map { q in
            var exact = q.nearest.filter { $0.node != q.node && matches($0.node) }.prefix(k).map {
                (Int64(bitPattern: $0.label), $0.distance)
            }
            if exact.count < k && q.nearest.count < all.count {  // the scan was not deep enough
                if candidates == nil { candidates = all.filter(matches) }
                let hits = (try? index.exactSearch(q.vector, k: k + 1, candidates: candidates!).hits) ?? []
                exact = hits.filter { $0.node != q.node }.prefix(k).map { (Int64(bitPattern: $0.label), $0.distance) }
            }
            return HotAnswer(vector: q.vector, hits: exact, exact: exact)
        }
    }

    /// A bucket's filter and each query's exact answer under it (among the rows other than itself).
    struct Bucket: Sendable {
        let selectivity: Double
        let matches: @Sendable (UInt32) -> Bool
        let truth: [Set<UInt64>]
        /// Each recall measured so far, by query and index in `scales`: a search is deterministic, so the
        /// pilot's searches are not run again where the curve's window takes the same query and scale.
        let measured = Locked([Int: Double]())

        init(_ run: CalibrationRun, number: Int, selectivity: Double) {
            self.selectivity = selectivity
            let salt = UInt64(number) &* 0x9E37_79B9_7F4A_7C15
            let threshold = selectivity >= 1 ? UInt64.max : UInt64(Double(UInt64.max) * selectivity)
            let matches: @Sendable (UInt32) -> Bool = { node in
                selectivity >= 1 || SplitMix64.mix(UInt64(node) ^ salt) < threshold
            }
            self.matches = matches
            var candidates: [UInt32]? = nil
            truth = run.queries.map { q in
                var truth = q.nearest.filter { $0.node != q.node && matches($0.node) }.prefix(run.k).map(\.label)
                if truth.count < run.k && q.nearest.count < run.all.count {  // the scan was not deep enough
                    if candidates == nil { candidates = run.all.filter(matches) }
                    let hits = (try? run.index.exactSearch(q.vector, k: run.k + 1, candidates: candidates!).hits) ?? []
                    truth = Array(hits.filter { $0.node != q.node }.prefix(run.k).map(\.label))
                }
                return Set(truth)
            }
        }
    }

    /// Query `qi`'s recall@k at `scale` in `bucket`, its own row hidden.
    func recall(_ qi: Int, _ bucket: Bucket, scale: Double) -> Double {
        let q = queries[qi]
        let truth = bucket.truth[qi]
        guard !truth.isEmpty else { return 1 }
        let ef = max(k, Int((Double(table) * scale).rounded(.up)))
        let hits =
            bucket.selectivity >= 1
            ? try? index.search(q.vector, k: k, searchEffort: ef, hiding: q.node).hits
            : try? index.search(
                q.vector, k: k, searchEffort: Planner.filteredEffort(ef, selectivity: bucket.selectivity, k: k),
                filter: .predicate(bucket.matches), mode: .admitMatching, hiding: q.node
            ).hits
        return Double((hits ?? []).filter { truth.contains($0.label) }.count) / Double(truth.count)
    }

    /// Recall of each of `queries` at each scale of `window` (rows in query order). Queries run on every core;
    /// a query at recall 1 stays there at larger efforts (the search only widens).
    func measure(_ queries: [Int], _ bucket: Bucket, _ window: ClosedRange<Int>) -> [[Double]] {
        let rows = Locked([[Double]](repeating: [], count: queries.count))
        DispatchQueue.concurrentPerform(iterations: queries.count) { j in
            var row: [Double] = []
            for i in window {
                let key = queries[j] * Self.scales.count + i
                if row.last == 1 {
                    row.append(1)
                } else if let known = bucket.measured.withLock({ $0[key] }) {
                    row.append(known)
                } else {
                    let r = recall(queries[j], bucket, scale: Self.scales[i])
                    bucket.measured.withLock { $0[key] = r }
                    row.append(r)
                }
            }
            rows.withLock { $0[j] = row }
        }
        return rows.withLock { $0 }
    }

    /// The index in `scales` of the smallest quarter octave whose pilot mean reaches `target + pilotMargin`:
    /// octave steps from the table's effort, then halves.
    func crossing(_ pilot: [Int], _ bucket: Bucket) -> Int {
        func reaches(_ i: Int) -> Bool {
            let row = measure(pilot, bucket, i...i)
            return row.reduce(0) { $0 + $1[0] } / Double(max(pilot.count, 1)) >= target + Self.pilotMargin
        }
        let scales = Self.scales
        var crossing = scales.firstIndex(of: 1)!
        if reaches(crossing) {
            while crossing >= 4, reaches(crossing - 4) { crossing -= 4 }
        } else {
            while crossing < scales.count - 1, !reaches(crossing) { crossing = min(crossing + 4, scales.count - 1) }
        }
        for step in [2, 1] where crossing - step >= 0 && reaches(crossing - step) { crossing -= step }
        return crossing
    }

    /// The bucket's recall curve on the quarter octaves around the pilot's crossing (widened while the
    /// measured recall there is still short of, or already past, the target): per scale, the mean recall and
    /// its standard error. Nil when fewer than 20 queries have an answer under the filter.
    func curve(_ bucket: Bucket) -> [BuildCalibration.Point]? {
        let usable = queries.indices.filter { !bucket.truth[$0].isEmpty }
        guard usable.count >= 20 else { return nil }
        let crossing = crossing(Array(usable.prefix(Self.pilotQueries)), bucket)
        let last = Self.scales.count - 1
        var window = max(0, crossing - Self.reach)...min(last, crossing + Self.reach)
        var table = measure(usable, bucket, window)
        func mean(_ column: Int) -> Double { table.reduce(0) { $0 + $1[column] } / Double(table.count) }
        if window.upperBound < last, mean(window.count - 1) < target + Self.pilotMargin {
            table = zip(table, measure(usable, bucket, window.upperBound + 1...last)).map { $0 + $1 }
            window = window.lowerBound...last
        } else {
            while window.lowerBound > 0, mean(0) >= target {
                let below = max(0, window.lowerBound - Self.reach)...window.lowerBound - 1
                table = zip(measure(usable, bucket, below), table).map { $0 + $1 }
                window = below.lowerBound...window.upperBound
            }
        }
        return (0..<window.count).map { column in
            let (recall, error) = RecallCalibration.meanAndError(table.map { $0[column] })
            return BuildCalibration.Point(scale: Self.scales[window.lowerBound + column], recall: recall, error: error)
        }
    }
}
