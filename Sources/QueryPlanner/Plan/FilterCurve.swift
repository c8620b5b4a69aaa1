import Foundation

/// One filter's own recall curve for the filtered graph: rows drawn from the collection as queries (hidden from the
/// graph, so each is a query it has never seen) searched under this filter at a few efforts, each answer compared
/// with the exact one among the filter's matches. A build-time curve is measured under random filters; a filter
/// that follows the data (whole topics or clusters) is harder for the queries whose own neighbourhood it leaves
/// out, and only a curve of its own says by how much.
public struct FilterCurve: Sendable, Equatable, Codable {
    public struct Point: Sendable, Equatable, Codable {
        public var effort: Int
        /// Mean recall@k of the queries.
        public var recall: Double
        /// Standard deviation of one query's recall.
        public var deviation: Double

        public init(effort: Int, recall: Double, deviation: Double) {
            self.effort = effort
            self.recall = recall
            self.deviation = deviation
        }
    }

    /// Efforts ascending.
    public var points: [Point]
    public var queries: Int
    /// What measuring it cost.
    public var milliseconds: Double

    public init(points: [Point], queries: Int, milliseconds: Double) {
        self.points = points.sorted { $0.effort < $1.effort }
        self.queries = queries
        self.milliseconds = milliseconds
    }

    /// Per effort, each query's recall (`recalls[i][q]` at `efforts[i]`).
    public init(efforts: [Int], recalls: [[Double]], milliseconds: Double) {
        let points = zip(efforts, recalls).map { effort, values in
            let (mean, error) = RecallCalibration.meanAndError(values)
            return Point(effort: effort, recall: mean, deviation: error * Double(values.count).squareRoot())
        }
        self.init(points: points, queries: recalls.first?.count ?? 0, milliseconds: milliseconds)
    }

    /// The standard error of a point's mean.
    private func standardError(_ p: Point) -> Double { p.deviation / Double(max(queries, 1)).squareRoot() }

    /// The least effort at which the curve, less its standard error, reaches `target`: between two measured
    /// efforts, interpolated in log effort (recall is concave there, so the chord lies under the curve and the
    /// effort found is, if anything, more than needed). Nil where no measured effort reaches it.
    public func effort(meeting target: Double) -> Int? {
        guard let i = points.firstIndex(where: { $0.recall - standardError($0) >= target }) else { return nil }
        guard i > 0 else { return points[0].effort }
        let low = points[i - 1], high = points[i]
        let goal = target + standardError(high)
        let t = min(max((goal - low.recall) / max(high.recall - low.recall, 1e-9), 0), 1)
        let effort = Double(low.effort) * pow(Double(high.effort) / Double(low.effort), t)
        return min(high.effort, max(low.effort, Int(effort.rounded(.up))))
    }

    /// The recall expected at `effort` (interpolated in log effort; the nearest end outside the measured range), and
    /// the half-width of a 95 % interval for the mean recall of 100 queries: the curve's own uncertainty and the
    /// sampling of those queries.
    public func expected(at effort: Int) -> (recall: Double, interval: Double) {
        guard let first = points.first, let last = points.last else { return (0, 1) }
        let point: Point
        if effort <= first.effort {
            point = first
        } else if effort >= last.effort {
            point = last
        } else {
            let i = points.firstIndex { $0.effort >= effort }!
            let low = points[i - 1], high = points[i]
            let t = log(Double(effort) / Double(low.effort)) / log(Double(high.effort) / Double(low.effort))
            point = Point(
                effort: effort, recall: low.recall + t * (high.recall - low.recall),
                deviation: low.deviation + t * (high.deviation - low.deviation))
        }
        let se = standardError(point)
        return (point.recall, 1.96 * (se * se + point.deviation * point.deviation / 100).squareRoot())
    }
}
