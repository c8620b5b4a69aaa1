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

/// One filter's own curve for the cold step: rows of the hot tier as queries (the tier's recent rows, as queries
/// come), each answered exactly in the hot tier under the filter (itself left out), then by the cold step under the
/// filter at rising effort scales; each answer over both tiers compared with the exact one. The build-time curves
/// under a filter are measured under filters drawn at random and under filters gathering a few regions of blocks;
/// a filter of whole clusters wider than those (four topics of seven) is neither, and only a curve of its own says
/// what its cold step needs. (Clustered anisotropic 96-d cosine data, 80 % cold, `grp < 4`: 0.885 where the random
/// filter's curve expected 0.960.)
public struct ColdFilterCurve: Sendable, Equatable, Codable {
    /// Effort scales ascending (× the store's probe rule), each with its queries' mean recall and standard error.
    public var points: [BuildCalibration.Point]
    /// The queries' recall with an exact cold step (what no effort passes: the rest is missed by neither step).
    public var exact: BuildCalibration.Exact
    public var queries: Int
    /// What measuring it cost.
    public var milliseconds: Double

    public init(points: [BuildCalibration.Point], exact: BuildCalibration.Exact, queries: Int, milliseconds: Double) {
        self.points = BuildCalibration.monotone(points.sorted { $0.scale < $1.scale })
        self.exact = exact
        self.queries = queries
        self.milliseconds = milliseconds
    }

    /// The least effort scale meeting `target` as a build-time cold curve's is adopted (`RecallCalibration.scale`),
    /// what the curve expects there with its standard error and the 95 % interval for 100 queries' mean, and what it
    /// expects of an exact cold step; nil without points.
    package func reading(
        target: Double
    ) -> (
        scale: Double, recall: Double, interval: Double, error: Double, exact: RecallCalibration.ExactExpectation
    )? {
        guard !points.isEmpty else { return nil }
        let scale = RecallCalibration.scale(
            meeting: target, on: points, floor: RecallCalibration.minColdFilteredScale,
            ceiling: RecallCalibration.maxColdScale)
        guard let expected = RecallCalibration.read(points, at: scale, queries: queries) else { return nil }
        return (
            scale, expected.recall, expected.interval, expected.error,
            RecallCalibration.expectation(exact, queries: queries)
        )
    }
}
