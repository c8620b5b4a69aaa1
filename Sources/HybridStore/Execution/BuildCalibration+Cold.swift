import Dispatch
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// Queries the cold tier's curve is measured with (each runs an exact cold step for its truth).
    static let coldCalibrationQueries = 100
    /// Cold step effort scales (× `Planner.coldBlocks` and the codes' confidence): half octaves from ½ to 16.
    static let coldCalibrationEfforts: [Double] = (-2...8).map { exp2(Double($0) / 2) }

    /// The recall of searches over both tiers against the cold step's effort scale: queries are rows of the
    /// hot tier, searched for in the graph without their own row at its calibrated effort (`answers`), then in
    /// the cold tier as a query does (the cold step bounded by the hot k-th distance), merged; the truth is the
    /// exact hot neighbours merged with an exact cold step bounded by their k-th. Efforts rise until the curve
    /// is past the target with room (later efforts would only cost time). Nil when a cold step fails (a corrupt
    /// block: the curve would not be the tier's) or fewer than 20 queries.
    func coldCurve(
        _ s: CollectionState, _ answers: [CalibrationRun.HotAnswer], k: Int, target: Double
    )
        -> [BuildCalibration.Point]?
    {
        guard answers.count >= 20 else { return nil }
        @Sendable func merged(
            _ hot: [(row: Int64, distance: Float)], _ cold: [(row: Int64, distance: Float)]
        ) -> [Int64] {
            var seen = Set<Int64>()
            return (hot + cold).sorted { ($0.distance, $0.row) < ($1.distance, $1.row) }
                .filter { seen.insert($0.row).inserted }.prefix(k).map(\.row)
        }
        @Sendable func cold(
            _ answer: CalibrationRun.HotAnswer, bound: [(row: Int64, distance: Float)], probes: Int?,
            effort: Double
        ) -> [(row: Int64, distance: Float)]? {
            var report = ColdStepReport()
            return try? coldStep(
                s, query: answer.vector, k: k, filter: nil, condition: nil,
                bound: bound.count >= k ? bound[k - 1].distance : nil, probes: probes, effort: effort,
                report: &report)
        }
        let truths = Locked([Set<Int64>?](repeating: nil, count: answers.count))
        DispatchQueue.concurrentPerform(iterations: answers.count) { i in
            let truth = cold(answers[i], bound: answers[i].exact, probes: .max, effort: 1).map {
                Set(merged(answers[i].exact, $0))
            }
            truths.withLock { $0[i] = truth }
        }
        let truth = truths.withLock { $0 }
        guard truth.allSatisfy({ $0 != nil }) else { return nil }
        var points: [BuildCalibration.Point] = []
        var last = [Double](repeating: 0, count: answers.count)
        for effort in Self.coldCalibrationEfforts {
            let before = last
            let recalls = Locked(before)
            let failure = Locked(false)
            DispatchQueue.concurrentPerform(iterations: answers.count) { i in
                // Recall 1 at a smaller effort: a larger one opens the same blocks and more.
                guard before[i] < 1, let wanted = truth[i], !wanted.isEmpty else {
                    recalls.withLock { $0[i] = 1 }
                    return
                }
                guard let found = cold(answers[i], bound: answers[i].hits, probes: nil, effort: effort) else {
                    failure.withLock { $0 = true }
                    return
                }
                let r =
                    Double(merged(answers[i].hits, found).filter { wanted.contains($0) }.count) / Double(wanted.count)
                recalls.withLock { $0[i] = r }
            }
            if failure.withLock({ $0 }) { return nil }
            last = recalls.withLock { $0 }
            let (mean, error) = RecallCalibration.meanAndError(last)
            points.append(BuildCalibration.Point(scale: effort, recall: mean, error: error))
            // Two points past the target beyond doubt, every query complete, or two steps that gained nothing
            // (what is still missed does not depend on the cold effort): larger efforts change nothing.
            let levelled =
                points.count >= 3
                && zip(points.suffix(3), points.suffix(2)).allSatisfy { $1.recall - $0.recall < 0.001 }
            if points.suffix(2).count == 2 && points.suffix(2).allSatisfy({ $0.recall - 2 * $0.error >= target })
                || last.allSatisfy({ $0 == 1 }) || levelled
            {
                break
            }
        }
        return points
    }
}
