import Dispatch
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// Queries the cold tier's curve is measured with (each runs an exact cold step for its truth).
    static let coldCalibrationQueries = 100
    /// Cold step effort scales (× `Planner.coldBlocks` and the codes' confidence): half octaves from ⅛ (the hot
    /// curves' least, `RecallCalibration.minScale`) to 16. From ½, clustered data was over-served over both tiers
    /// (aniso2-200k, 80 % cold, unfiltered: 0.984 at ½, the curve's first point; mixture-96 cosine 0.993); the
    /// curve starts two octaves at a time where it is far below the target, so hard data pays one cheap step more.
    static let coldCalibrationEfforts: [Double] = (-6...8).map { exp2(Double($0) / 2) }

    /// The same under a filter: from 1/16 (`RecallCalibration.minColdFilteredScale`), since the store's rule
    /// opens more blocks the sparser the filter.
    static let coldFilteredEfforts: [Double] = (-8...8).map { exp2(Double($0) / 2) }

    /// What the cold curves may keep of their queries' work (`ColdStepMemo`; queries × cold slots, 12 bytes each):
    /// 96 MB, every cold tier of up to 80,000 slots at 100 queries. Larger tiers estimate and read again at each
    /// step; their builds took longer too.
    static let memoBudget = 8_000_000

    /// What one cold curve is measured with: the hot answers of its queries (the same queries for every curve of
    /// one calibration), the filter on cold slots (nil: none) and the effort scales to try, rising.
    struct ColdCurveRequest {
        let answers: [CalibrationRun.HotAnswer]
        let slots: ColdSlotFilter?
        let efforts: [Double]
    }

    /// The recall of searches over both tiers against the cold step's effort scale, per request: queries are rows
    /// of the hot tier, answered in the hot tier as the request's answers say (unfiltered: the graph without
    /// their own row at its calibrated effort; under a filter: exactly), then in the cold tier as a query does
    /// (the cold step bounded by the hot k-th distance, under the request's filter), merged; the truth is the
    /// exact hot neighbours merged with the exact cold ones (`coldExactNearest`, one pass for every request).
    /// Efforts rise until the curve is past the target with room (later efforts would only cost time). Nil
    /// for every request when a cold block cannot be read (the curves would not be the tier's), nil for one with
    /// fewer than 20 queries or a failed cold step.
    func coldCurves(
        _ s: CollectionState, _ requests: [ColdCurveRequest], k: Int, target: Double
    ) -> [ColdCurve?] {
        guard let queries = requests.first?.answers.map(\.vector),
            requests.allSatisfy({ $0.answers.count == queries.count })
        else { return requests.map { _ in nil } }
        // Each query's code estimates and exact distances, kept from one step to the next (of one curve, at rising
        // efforts, and of the next: the queries are the same, and neither turns on the filter) while they fit in
        // `memoBudget`; the exact pass leaves each query's distance to every row it scored there first.
        let slotCount = s.lock.read { s.cold.blockOfSlot.count }
        let keeps = queries.count * slotCount <= Self.memoBudget
        let memos = queries.indices.map { _ in keeps ? ColdStepMemo(slotCount: slotCount) : nil }
        guard
            let exactCold = try? coldExactNearest(
                s, queries: queries, k: k, filters: requests.map(\.slots), memos: memos)
        else { return requests.map { _ in nil } }
        return requests.indices.map { r in
            coldCurve(s, requests[r], exactCold: exactCold[r], memos: memos, k: k, target: target)
        }
    }

    /// A cold curve's points, and its queries' recall with an exact cold step (which the exact pass gives).
    struct ColdCurve {
        let points: [BuildCalibration.Point]
        let exact: BuildCalibration.Exact
    }

    private func coldCurve(
        _ s: CollectionState, _ request: ColdCurveRequest, exactCold: [[(row: Int64, distance: Float)]],
        memos: [ColdStepMemo?], k: Int, target: Double
    )
        -> ColdCurve?
    {
        let answers = request.answers
        guard answers.count >= 20 else { return nil }
        @Sendable func merged(
            _ hot: [(row: Int64, distance: Float)], _ cold: [(row: Int64, distance: Float)]
        ) -> [Int64] {
            var seen = Set<Int64>()
            return (hot + cold).sorted { ($0.distance, $0.row) < ($1.distance, $1.row) }
                .filter { seen.insert($0.row).inserted }.prefix(k).map(\.row)
        }
        let slots = request.slots
        @Sendable func cold(_ i: Int, effort: Double) -> [(row: Int64, distance: Float)]? {
            var report = ColdStepReport()
            let answer = answers[i]
            return try? coldStep(
                s, query: answer.vector, k: k, filter: nil, condition: nil,
                bound: answer.hits.count >= k ? answer.hits[k - 1].distance : nil, probes: nil, effort: effort,
                slots: slots, memo: memos[i], report: &report)
        }
        let truth = answers.indices.map { Set(merged(answers[$0].exact, exactCold[$0])) }
        @Sendable func recall(_ i: Int, _ cold: [(row: Int64, distance: Float)]) -> Double {
            Double(merged(answers[i].hits, cold).filter { truth[i].contains($0) }.count) / Double(truth[i].count)
        }
        // What each query reaches with an exact cold step: the most any effort gives it (its hot misses stay).
        let ceiling = answers.indices.map { truth[$0].isEmpty ? 1 : recall($0, exactCold[$0]) }
        let highest = ceiling.reduce(0, +) / Double(max(ceiling.count, 1))
        let exact = RecallCalibration.meanAndError(ceiling)
        let exactStep = BuildCalibration.Exact(recall: exact.mean, error: exact.error)
        /// Each query's recall at `effort`. A query's recall cannot fall as the effort rises (a larger effort
        /// opens the same blocks and more, ranks the same rows with a wider interval), so one known at a smaller
        /// effort to reach its ceiling, or equal at a smaller and a larger one, is not searched again.
        func recalls(_ effort: Double, below: [Double]?, above: [Double]?) -> [Double]? {
            let out = Locked(ceiling)
            let failure = Locked(false)
            DispatchQueue.concurrentPerform(iterations: answers.count) { i in
                if truth[i].isEmpty { return }
                if let below, below[i] >= ceiling[i] {
                    out.withLock { $0[i] = below[i] }
                    return
                }
                if let below, let above, below[i] == above[i] {
                    out.withLock { $0[i] = below[i] }
                    return
                }
                guard let found = cold(i, effort: effort) else {
                    failure.withLock { $0 = true }
                    return
                }
                let r = recall(i, found)
                out.withLock { $0[i] = r }
            }
            return failure.withLock { $0 } ? nil : out.withLock { $0 }
        }
        func point(_ effort: Double, _ row: [Double]) -> BuildCalibration.Point {
            let (mean, error) = RecallCalibration.meanAndError(row)
            return BuildCalibration.Point(scale: effort, recall: mean, error: error)
        }
        // Up the efforts, two octaves at a time while the recall is far below the target, one when nearer, half an
        // octave when near (the last steps are the dearest: each opens twice the blocks of the one before), until a
        // point is past the target beyond doubt, the mean is within a thousandth of its ceiling (what is still
        // missed is the hot step's), or two steps gained nothing: larger efforts change nothing. Then the efforts
        // between the two coarse steps around the adopted scale.
        let efforts = request.efforts
        var measured: [Int: [Double]] = [:]
        var i = 0
        var previous: Int? = nil
        while true {
            guard let row = recalls(efforts[i], below: previous.map { measured[$0]! }, above: nil) else {
                return nil
            }
            measured[i] = row
            let p = point(efforts[i], row)
            let gains = measured.keys.sorted().suffix(3).map { point(efforts[$0], measured[$0]!).recall }
            let levelled = gains.count == 3 && zip(gains, gains.dropFirst()).allSatisfy { $1 - $0 < 0.001 }
            if p.recall - 2 * p.error >= target || p.recall >= highest - 0.001 || levelled || i == efforts.count - 1 {
                break
            }
            previous = i
            let short = target - p.recall
            i = min(i + (short > 0.15 ? 4 : short > 0.03 ? 2 : 1), efforts.count - 1)
        }
        let coarse = measured.keys.sorted()
        let modelled = beyondMeasured(
            s, request, measured: (efforts[coarse.last!], measured[coarse.last!]!), exactCold: exactCold,
            ceiling: ceiling, highest: highest, k: k, target: target
        ) { i, cold in recall(i, cold) }
        if !modelled.isEmpty {
            return ColdCurve(points: coarse.map { point(efforts[$0], measured[$0]!) } + modelled, exact: exactStep)
        }
        // The coarse step where the adopted scale lands (`RecallCalibration.scale(meeting:on:)`: the first point
        // meeting the target with confidence, else the first at the plateau), refined from the step below it.
        let last = point(efforts[coarse.last!], measured[coarse.last!]!).recall
        let landing =
            coarse.first {
                let p = point(efforts[$0], measured[$0]!)
                return p.recall - RecallCalibration.promiseZ * p.error >= target
            }
            ?? coarse.first { point(efforts[$0], measured[$0]!).recall >= last - RecallCalibration.plateau }!
        if let below = coarse.last(where: { $0 < landing }) {
            for j in below + 1..<landing {
                guard let row = recalls(efforts[j], below: measured[j - 1], above: measured[landing]) else {
                    return nil
                }
                measured[j] = row
            }
        }
        return ColdCurve(points: measured.keys.sorted().map { point(efforts[$0], measured[$0]!) }, exact: exactStep)
    }

    /// Past the largest effort measured, where the curve is still short of the target there (by its promise) and
    /// still below what an exact cold step reaches: the cold step misses rows whose blocks' centroids rank too far,
    /// as on isotropic data, where the nearest cold rows spread over most blocks (200,000 rows, 80 % cold, effort
    /// 16 opens 2,400 of 10,000 blocks). Each larger effort, half an octave apart up to the one that may open every
    /// block, is modelled rather than run: a step there reads a third to half of the tier per query, which a
    /// tier too large for `ColdStepMemo` reads from disk. A query's recall at a modelled effort is what it finds
    /// in the blocks that effort may open (the cold rows of its truth whose block ranks below the step's probes
    /// and its stop, `ColdBlockReach`), less what its step at the largest effort measured missed of what the
    /// same count found there (the codes' loss, which a larger effort's wider interval only narrows), never below
    /// that step's recall nor above its ceiling. The points up to the first that meets the target with
    /// confidence; none when none does (the planner's exact fallback then decides). `ceiling`: each query's recall
    /// with an exact cold step, `highest` their mean; `recall(i, cold)`: query i's recall over both tiers with these
    /// cold rows.
    private func beyondMeasured(
        _ s: CollectionState, _ request: ColdCurveRequest, measured top: (effort: Double, recalls: [Double]),
        exactCold: [[(row: Int64, distance: Float)]], ceiling: [Double], highest: Double, k: Int, target: Double,
        recall: (Int, [(row: Int64, distance: Float)]) -> Double
    ) -> [BuildCalibration.Point] {
        let (mean, error) = RecallCalibration.meanAndError(top.recalls)
        guard top.effort >= request.efforts.last!, mean - RecallCalibration.promiseZ * error < target,
            mean < highest - 0.001,
            let reach = coldBlockReach(s, request, truthRows: exactCold.map { $0.map(\.row) }, k: k)
        else { return [] }
        func found(_ i: Int, _ effort: Double) -> Double {
            let probes = reach.probes(effort)
            // An exhaustive step skips the blocks its bound rules out instead of stopping at the first.
            let limit = probes >= reach.blocks ? Int.max : min(probes, reach.stops[i])
            return recall(i, exactCold[i].filter { reach.ranks[i][$0.row].map { $0 < limit } ?? false })
        }
        // Queries at their ceiling already (those with no truth among them) stay there.
        let open = top.recalls.indices.filter { top.recalls[$0] < ceiling[$0] }
        var loss = [Double](repeating: 0, count: top.recalls.count)
        for i in open { loss[i] = max(0, found(i, top.effort) - top.recalls[i]) }
        var points: [BuildCalibration.Point] = []
        var effort = top.effort
        while reach.probes(effort) < reach.blocks {
            effort *= 2.0.squareRoot()
            var recalls = top.recalls
            for i in open { recalls[i] = min(ceiling[i], max(top.recalls[i], found(i, effort) - loss[i])) }
            let (mean, error) = RecallCalibration.meanAndError(recalls)
            points.append(BuildCalibration.Point(scale: effort, recall: mean, error: error))
            if mean - RecallCalibration.promiseZ * error >= target { return points }
        }
        return []
    }
}

extension HybridStore {
    /// What a calibration's cold steps return for `query` at each of `efforts` (rising) under each of `filters`
    /// in turn (a filter matching that share of the cold rows at random; nil: none), its code estimates and exact
    /// distances kept from one step to the next, across filters too, and from one pass over the tier for all the
    /// filters first (as `coldCurves` runs them), or made afresh at each; with the blocks the steps read, and, per
    /// filter, the exact answer by the one pass over the tier its truth comes from (`coldExactNearest`), and by an
    /// exact cold step. For tests that keeping changes nothing and that the pass is exact. Distances as a query
    /// reports them.
    package func calibrationColdAnswers(
        _ collection: CollectionRef, query: [Float], k: Int, efforts: [Double], filters: [Double?],
        keepingMemo: Bool
    ) throws(HybridStoreError) -> [(
        steps: [[(row: Int64, distance: Float)]], blocksRead: Int, pass: [(row: Int64, distance: Float)],
        exactStep: [(row: Int64, distance: Float)]
    )] {
        let s = try state(collection)
        let (rowOfSlot, slotCount) = s.lock.read { (s.cold.rowOfSlot, s.cold.blockOfSlot.count) }
        let memo = keepingMemo ? ColdStepMemo(slotCount: slotCount) : nil
        let slotFilters = filters.map { selectivity in
            selectivity.map { selectivity in
                let draw = Self.randomFilter(selectivity: selectivity, salt: 16)
                return ColdSlotFilter(
                    rowOfSlot: rowOfSlot, selectivity: selectivity, matchesRow: { draw(UInt64(bitPattern: $0)) })
            }
        }
        if keepingMemo { _ = try coldExactNearest(s, queries: [query], k: k, filters: slotFilters, memos: [memo]) }
        var out:
            [(
                steps: [[(row: Int64, distance: Float)]], blocksRead: Int, pass: [(row: Int64, distance: Float)],
                exactStep: [(row: Int64, distance: Float)]
            )] = []
        for slots in slotFilters {
            var steps: [[(row: Int64, distance: Float)]] = []
            var report = ColdStepReport()
            for effort in efforts {
                steps.append(
                    try coldStep(
                        s, query: query, k: k, filter: nil, condition: nil, bound: nil, probes: nil, effort: effort,
                        slots: slots, memo: memo, report: &report))
            }
            let pass = try coldExactNearest(s, queries: [query], k: k, filters: [slots])[0][0]
            var exactReport = ColdStepReport()
            let exactStep = try coldStep(
                s, query: query, k: k, filter: nil, condition: nil, bound: nil, probes: .max, slots: slots,
                report: &exactReport)
            out.append((steps, report.blocksProbed, pass, exactStep))
        }
        return out
    }
}

extension HybridStore {
    /// Per query of a cold curve, where its cold step would find the cold rows of its truth: the rank of each one's
    /// block among the step's candidate blocks (those holding a live matching slot) in the order the step opens
    /// them (nearest centroid first), and the rank at which an approximate step stops (the first block whose lower
    /// bound cannot beat the hot k-th distance). Nil when the step would rank every matching row by code instead
    /// (`Planner.coldRanksByCode`): then blocks do not come in centroid order.
    struct ColdBlockReach {
        /// Per query: cold truth row → the rank of its block.
        let ranks: [[Int64: Int]]
        /// Per query: the rank an approximate step stops at (the candidates' count when it does not).
        let stops: [Int]
        /// The tier's blocks, and the selectivity the step's rule is asked with.
        let blocks: Int
        let selectivity: Double

        /// The blocks a step at `effort` may open (as `coldStep` counts them).
        func probes(_ effort: Double) -> Int {
            min(blocks, max(1, Planner.coldBlocks(blocks: blocks, selectivity: selectivity, effort: effort)))
        }
    }

    func coldBlockReach(
        _ s: CollectionState, _ request: ColdCurveRequest, truthRows: [[Int64]], k: Int
    ) -> ColdBlockReach? {
        let metric = s.schema.vector.metric
        let slots = request.slots
        let selectivity = slots?.selectivity ?? 1
        return s.lock.read { () -> ColdBlockReach? in
            let tier = s.cold
            let blockCount = tier.blocks.count
            guard blockCount > 0 else { return nil }
            if slots != nil,
                Planner.coldRanksByCode(blocks: blockCount, liveRows: tier.liveRows, selectivity: selectivity)
            {
                return nil
            }
            let rowOfSlot = tier.rowOfSlot, blockOfSlot = tier.blockOfSlot, radii = tier.radii
            // Candidate blocks: those holding a live slot that matches.
            var candidate = [Bool](repeating: false, count: blockCount)
            for (slot, row) in rowOfSlot.enumerated() where row >= 0 && (slots?.matches(UInt32(slot)) ?? true) {
                candidate[Int(blockOfSlot[slot])] = true
            }
            let wanted = Set(truthRows.joined())
            var blockOfRow: [Int64: Int] = [:]
            for (slot, row) in rowOfSlot.enumerated() where row >= 0 && wanted.contains(row) {
                blockOfRow[row] = Int(blockOfSlot[slot])
            }
            var ranks: [[Int64: Int]] = []
            var stops: [Int] = []
            var rankOfBlock = [Int](repeating: -1, count: blockCount)
            for (i, answer) in request.answers.enumerated() {
                var q = answer.vector
                if metric == .cosine { unsafe q.withUnsafeMutableBufferPointer { unsafe normalize($0) } }
                let keys = unsafe q.withUnsafeBufferPointer {
                    unsafe tier.keys(query: $0.baseAddress!, innerProduct: metric == .innerProduct)
                }
                let order = (0..<blockCount).filter { candidate[$0] }.sorted { (keys[$0], $0) < (keys[$1], $1) }
                // As `coldStep`'s lower bound: the centroid distance less the radius (none for inner product).
                let bound = answer.hits.count >= k ? answer.hits[k - 1].distance : Float.infinity
                var stop = order.count
                for (rank, b) in order.enumerated() {
                    rankOfBlock[b] = rank
                    guard metric != .innerProduct, stop == order.count else { continue }
                    let gap = max(0, keys[b].squareRoot() - radii[b])
                    if (metric == .cosine ? gap * gap / 2 : gap * gap) > bound { stop = rank }
                }
                var rowRanks: [Int64: Int] = [:]
                for row in truthRows[i] {
                    if let b = blockOfRow[row], rankOfBlock[b] >= 0 { rowRanks[row] = rankOfBlock[b] }
                }
                ranks.append(rowRanks)
                stops.append(stop)
                for b in order { rankOfBlock[b] = -1 }
            }
            return ColdBlockReach(ranks: ranks, stops: stops, blocks: blockCount, selectivity: selectivity)
        }
    }
}

extension HybridStore {
    /// The cold curve a calibration measures for `queries` at `efforts` (rising) over a collection whose rows are
    /// all cold (no hot step), with the points past the last modelled where it falls short of `target` there
    /// (`beyondMeasured`). For tests that the model tells what steps at those efforts find.
    package func calibrationColdCurve(
        _ collection: CollectionRef, queries: [[Float]], k: Int, efforts: [Double], target: Double
    ) throws(HybridStoreError) -> [BuildCalibration.Point] {
        let s = try state(collection)
        let answers = queries.map { CalibrationRun.HotAnswer(vector: $0, hits: [], exact: []) }
        let request = ColdCurveRequest(answers: answers, slots: nil, efforts: efforts)
        return coldCurves(s, [request], k: k, target: target)[0]?.points ?? []
    }
}
