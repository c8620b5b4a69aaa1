import Foundation

/// The whole plan of one query, decided before any step runs: the hot step (strategy, effort, over-fetch) and
/// what its expected recall rests on, the graph probe in front of an exact plan, the fallback rule, the cold
/// step and its budget, and what hydration reads. `Planner.plan(_:calibration:probeAdvised:)` makes it from the
/// statistics of the query's collection; the engine's query execution runs it step by step.
public struct QueryPlan: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The hot step (`.unplanned` when the hot tier is not searched).
    public var hot: Plan
    public var searchesHot: Bool
    /// The scale on the table's effort read off the collection's calibration (1 for a caller's fixed effort).
    public var effortScale: Double
    /// What `hot.expectedRecall` rests on.
    public var recallBasis: RecallBasis
    /// When a build-time curve gave the expected recall: the half-width of a 95 % interval for the mean recall of
    /// 100 queries.
    public var expectedRecallInterval: Double?
    /// A filtered-graph search tried first in front of an exact plan, within the exact scan's cost.
    public var probe: Probe?
    /// What runs when the hot step's graph search finds fewer than k rows although more match (nil: nothing).
    public var fallback: Strategy?
    /// The cold step (nil: no cold rows to search, or the cold tier is not searched).
    public var cold: ColdPlan?
    public var hydration: Hydration
    /// Under a filter, where the filtered floor bound its effort, or with a filtered graph planned from a build-time
    /// curve (measured under random filters) where an explanation asked: how the filter's hot rows link to the rest
    /// of the graph (`HNSWIndex.linkSpread`, 1 drawn at random, well under where the filter follows the data).
    public var hotSpread: Double? = nil
    /// Whether the hot effort lies below the filtered floor (`RecallCalibration.minFilteredScale`), the filter being
    /// known to be drawn at random (`hotSpread` 1).
    public var belowFilteredFloor = false
    /// Whether the hot plan rests on the filter's own curve (`FilterCurve`): its effort, its expectation, or an exact
    /// plan where the scan costs less than the effort the curve asks for (the probe then at that effort).
    public var filterCurveUsed = false

    public struct Probe: Sendable, Equatable, Codable {
        public var effort: Int
        /// Distance computations it may spend (the exact scan's modelled cost); past them, the exact scan runs.
        public var budget: Int
        /// The static model's recall at `effort`, which the query expects when the probe answers.
        public var expectedRecall: Double
    }

    public struct ColdPlan: Sendable, Equatable, Codable {
        /// × the store's probe rule: the calibrated scale times the caller's `coldEffort`.
        public var effort: Double
        public var source: ColdEffortSource
        /// Cold blocks the step may open at most (it stops sooner once no block can beat the k-th distance).
        public var blockBudget: Int
        /// Exact: every candidate block that its bound cannot rule out (a caller's probe count ≥ the blocks).
        public var exact: Bool
        /// Under a filter, with a curve under a filter of this selectivity: the recall over both tiers it
        /// expects with the hot rows answered exactly, and the half-width of its 95 % interval.
        public var expectedWithExactHot: Double? = nil
        public var expectedWithExactHotInterval: Double? = nil
        /// The calibrated scale lies past the largest effort the calibration ran (`RecallCalibration.maxScale`),
        /// where its curve is modelled from the blocks its queries' neighbours lie in.
        public var beyondMeasured = false
        /// Under a filter, with a curve under a filter: how the filter's cold rows spread over the blocks
        /// (`QueryPlanInput.Cold.spread`), where it was told; below 1 the curve of a filter following the data
        /// weighed in.
        public var spread: Double? = nil
        /// Whether the curve of a filter following the data weighed in (where `spread` is below 1, none measured at
        /// this selectivity this way leaves the expectation a random filter's).
        public var followedTheData = false
        /// The filter's own cold curve (`ColdFilterCurve`) gave the effort and the expectation: its queries, and what
        /// measuring it cost.
        public var ownCurve: OwnCurve? = nil
        /// The factor `effort` includes for a k above the curves' (`Planner.coldKScale`); 1 at their k.
        public var kScale: Double = 1
        /// The k the effort's curve (or rule) was measured at.
        public var curveK = Planner.coldRuleK

        public struct OwnCurve: Sendable, Equatable, Codable {
            public var queries: Int
            public var milliseconds: Double

            public init(queries: Int, milliseconds: Double) {
                self.queries = queries
                self.milliseconds = milliseconds
            }
        }
    }

    public enum ColdEffortSource: String, Sendable, Equatable, Codable {
        case fixedProbes = "fixed probes"
        case calibrated = "calibrated over both tiers"
        /// Under a filter: the scale the unfiltered curve over both tiers gave, where no curve under a filter exists.
        case calibratedUnfiltered = "the unfiltered curve over both tiers (not measured under a filter)"
        /// Under a filter: the curve over both tiers measured under a filter of the same selectivity bucket.
        case calibratedFiltered = "calibrated over both tiers under a filter of this selectivity"
        case rule = "uncalibrated: the store's probe rule"
        /// Exact, because the cold step's calibrated recall falls short of the target at the largest effort
        /// measured.
        case exactForRecall = "exact: the calibrated cold step falls short of the target at its largest effort"
        /// Exact, because the query asks a higher target than the cold curves were measured for
        /// (`Planner.planCold`).
        case exactAboveCalibration = "exact: the cold curves were measured for a lower target"
    }

    public enum Hydration: Sendable, Equatable, Codable {
        /// Ids come from memory; SQLite is not read.
        case none
        /// The ids of cold hits are read from SQLite.
        case coldIDs
        /// These columns (and ids) are read from SQLite in one statement.
        case columns([String])
    }

    public enum RecallBasis: Sendable, Equatable, Codable {
        /// The hot tier is not searched.
        case none
        case exact
        case fixedEffort
        case onlineChecks
        case staticModel
        /// A build-time curve of this bucket: its queries and when it was measured (seconds since 1970).
        case buildCurve(queries: Int, measuredAt: Double)
        /// The curve does not reach the target at any effort, and an exact scan would cost this many times more.
        case buildCurveShort(queries: Int, measuredAt: Double, shortBy: Double, exactCostRatio: Double)
        /// Exact, because the graph's calibrated recall falls short of the target.
        case exactForRecall(graphRecall: Double, interval: Double)
        /// A curve over both tiers (unfiltered with the hot step's graph; or under a filter of the query's
        /// selectivity bucket with the hot rows answered exactly, as an exact hot step does).
        case overBothTiers(queries: Int)
        /// The cold step is exact because its calibrated curve falls short of the target (`coldRecall`, with its
        /// interval, at the largest effort measured); the expectation is the curve's queries' with an exact cold step.
        case coldExactForRecall(queries: Int, coldRecall: Double, interval: Double)
        /// The calibrated cold step falls short of what it is asked by `shortBy` at its largest effort, and an exact
        /// cold step would open `exactBlocksRatio` times the blocks (more than the planner allows).
        case coldShort(queries: Int, shortBy: Double, exactBlocksRatio: Double)
        /// Under a filter with a graph-searched hot step: the hot tier's curve (its misses, in the hot rows' share of
        /// the matches) with the cold step's curve under a filter of this selectivity (measured with the hot rows
        /// exact), each with its build-time queries.
        case bothCurves(hotQueries: Int, coldQueries: Int)
        /// The filter follows the data: its own curve (`FilterCurve`), of `queries` rows drawn from the collection,
        /// measured in `milliseconds` when the filter was first planned; `shortBy` where it does not reach the target
        /// at its largest effort and an exact scan would cost too much.
        case filterCurve(queries: Int, milliseconds: Double, shortBy: Double?)

        /// A build-time curve gave the expectation (reaching the target or not).
        public var isBuildCurve: Bool {
            switch self {
            case .buildCurve, .buildCurveShort: true
            default: false
            }
        }

        /// The words `explain` prints, with the age of a curve at `now`.
        public func description(now: Double = Date().timeIntervalSince1970) -> String {
            func age(_ measuredAt: Double) -> String {
                let hours = max(0, now - measuredAt) / 3600
                return hours < 1 ? "\(Int(hours * 60)) min old" : String(format: "%.1f h old", hours)
            }
            switch self {
            case .none: return ""
            case .exact: return "exact"
            case .fixedEffort: return "fixed effort: static model"
            case .onlineChecks: return "online checks"
            case .staticModel: return "uncalibrated: static model"
            case .buildCurve(let queries, let measuredAt): return "\(queries) build-time queries, " + age(measuredAt)
            case .buildCurveShort(let queries, let measuredAt, let shortBy, let ratio):
                return "\(queries) build-time queries, " + age(measuredAt)
                    + String(
                        format: "; short of the target by %.3f, and an exact scan would cost %.0f× more", shortBy, ratio
                    )
            case .exactForRecall(let recall, let interval):
                return String(
                    format: "exact: the graph's calibrated recall %.3f ± %.3f falls short of the target", recall,
                    interval)
            case .overBothTiers(let queries): return "over both tiers, \(queries) build-time queries"
            case .coldShort(let queries, let shortBy, let ratio):
                return "over both tiers, \(queries) build-time queries"
                    + String(
                        format: "; the cold step falls short of the target by %.3f at its largest effort, and an exact "
                            + "cold step would open %.0f× its blocks", shortBy, ratio)
            case .coldExactForRecall(let queries, let recall, let interval):
                return "over both tiers with an exact cold step, \(queries) build-time queries: "
                    + String(
                        format: "the cold step's calibrated recall %.3f ± %.3f falls short of the target", recall,
                        interval)
            case .bothCurves(let hot, let cold):
                return
                    "over both tiers: the hot curve's \(hot) build-time queries with the cold step's \(cold) under a filter"
            case .filterCurve(let queries, let ms, let shortBy):
                return "this filter follows the data: its own curve, \(queries) rows of the collection as queries, "
                    + String(format: "measured in %.0f ms", ms)
                    + (shortBy.map { String(format: "; short of the target by %.3f at its largest effort", $0) } ?? "")
            }
        }
    }

    // The hot step's fields, read and written through the plan.
    public var strategy: Strategy {
        get { hot.strategy }
        set { hot.strategy = newValue }
    }
    public var effort: Int? {
        get { hot.effort }
        set { hot.effort = newValue }
    }
    public var overFetch: Int? {
        get { hot.overFetch }
        set { hot.overFetch = newValue }
    }
    public var estimatedMatches: Double {
        get { hot.estimatedMatches }
        set { hot.estimatedMatches = newValue }
    }
    public var estimatedSelectivity: Double {
        get { hot.estimatedSelectivity }
        set { hot.estimatedSelectivity = newValue }
    }
    public var estimatedCost: Double {
        get { hot.estimatedCost }
        set { hot.estimatedCost = newValue }
    }
    public var expectedRecall: Double {
        get { hot.expectedRecall }
        set { hot.expectedRecall = newValue }
    }
    public var alternatives: [String: Double] {
        get { hot.alternatives }
        set { hot.alternatives = newValue }
    }

    /// A plan before planning.
    public static let unplanned = QueryPlan(
        hot: .unplanned, searchesHot: false, effortScale: 1, recallBasis: .none,
        expectedRecallInterval: nil, probe: nil, fallback: nil, cold: nil,
        hydration: .none)

    /// The steps in one line each: hot, probe, fallback, cold, hydrate.
    public var description: String { steps.joined(separator: "\n") }

    /// The calibrated effort scale after the hot step's effort, where it is not 1: " (effort ×0.25, calibrated)",
    /// and why it lies below the filtered floor where it does.
    public var effortNote: String {
        // The filter's own curve set it (its basis is the two curves' where a cold tier is beside).
        if filterCurveUsed, hot.effort != nil { return " (from this filter's own curve)" }
        guard effortScale != 1, hot.effort != nil else { return "" }
        return String(format: " (effort ×%.2f, calibrated", effortScale)
            + (belowFilteredFloor
                ? "; below the floor for filters that follow the data: this one's rows link outside it as often as at "
                    + "random" : "") + ")"
    }

    public var steps: [String] {
        var lines: [String] = []
        if searchesHot {
            lines.append(
                "hot: \(hot.strategy.rawValue)" + (hot.effort.map { ", ef \($0)" } ?? "")
                    + effortNote
                    + (hot.overFetch.map { ", over-fetch \($0)" } ?? ""))
        } else {
            lines.append("hot: not searched")
        }
        if let probe {
            lines.append(
                "probe: filtered graph at ef \(probe.effort) first"
                    + (probe.budget > 0 ? ", within \(probe.budget) distance computations" : ""))
        }
        if let fallback { lines.append("if the graph finds fewer than k of more matches: \(fallback.rawValue)") }
        if let cold {
            lines.append(
                "cold: " + (cold.exact ? "exact, " : "")
                    + (cold.blockBudget > 0 ? "at most \(cold.blockBudget) blocks, " : "")
                    + String(format: "effort ×%.2f", cold.effort)
                    + (cold.ownCurve == nil
                        ? " (\(cold.source.rawValue))" : " (this filter's own curve over both tiers)")
                    + (cold.kScale > 1
                        ? String(format: "; ×%.2f the blocks, for a k above the curve's %d", cold.kScale, cold.curveK)
                        : "")
                    + (cold.spread.map {
                        String(
                            format: "; the filter's cold rows spread over the blocks %.2f as widely as at random", $0)
                    } ?? ""))
        }
        switch hydration {
        case .none: break
        case .coldIDs: lines.append("hydrate: ids of cold hits")
        case .columns(let names): lines.append("hydrate: " + names.joined(separator: ", "))
        }
        return lines
    }
}

/// What the planner is told about one query: the estimates (from the collection's statistics) and the caller's
/// options.
package struct QueryPlanInput: Sendable {
    /// Live hot rows, and the estimated hot rows matching the filter (rows when there is none).
    package var rows: Int
    package var estimatedMatches: Double
    package var hasFilter: Bool
    /// The hot step's k (k plus the rows a writer changed under a pinned read).
    package var k: Int
    package var dimensions: Int
    package var recallTarget: Double
    package var searchEffort: Int?
    package var forcedStrategy: Strategy?
    /// Whether the filter is evaluated in memory per node (else SQLite has listed the matching rows).
    package var inMemoryPredicate: Bool
    /// Matching rows SQLite has listed, when it evaluated the filter.
    package var listedMatches: Int?
    package var searchesHot: Bool
    /// The cold tier, when it has rows and is searched.
    package var cold: Cold?
    package var hydratedColumns: [String]

    package struct Cold: Sendable {
        package var blocks: Int
        package var liveRows: Int
        /// Estimated live cold rows matching the filter (`liveRows` when there is none or memory cannot tell).
        package var estimatedMatches: Double
        package var fixedProbes: Int?
        /// The caller's scale on the cold effort.
        package var effort: Double
        /// Whether memory can tell which cold rows match (else the cold step checks the filter through SQL, and
        /// picks blocks by centroid).
        package var filterInMemory = true
        /// How the filter's cold rows spread over the blocks (`ColdTier.spread`): about 1 drawn at random, well
        /// under where they follow the data; nil where unknown.
        package var spread: Double? = nil
        /// The filter's own curve for the cold step, where one was measured (a filter following the data): taken
        /// instead of the build-time curves under a filter.
        package var ownCurve: ColdFilterCurve? = nil

        package init(blocks: Int, liveRows: Int, estimatedMatches: Double, fixedProbes: Int?, effort: Double) {
            self.blocks = blocks
            self.liveRows = liveRows
            self.estimatedMatches = estimatedMatches
            self.fixedProbes = fixedProbes
            self.effort = effort
        }
    }

    package init(
        rows: Int, estimatedMatches: Double, hasFilter: Bool, k: Int, dimensions: Int, recallTarget: Double,
        searchEffort: Int?, forcedStrategy: Strategy?, inMemoryPredicate: Bool, listedMatches: Int?,
        searchesHot: Bool, cold: Cold?, hydratedColumns: [String]
    ) {
        self.rows = rows
        self.estimatedMatches = estimatedMatches
        self.hasFilter = hasFilter
        self.k = k
        self.dimensions = dimensions
        self.recallTarget = recallTarget
        self.searchEffort = searchEffort
        self.forcedStrategy = forcedStrategy
        self.inMemoryPredicate = inMemoryPredicate
        self.listedMatches = listedMatches
        self.searchesHot = searchesHot
        self.cold = cold
        self.hydratedColumns = hydratedColumns
    }
}

extension Planner {
    /// How much more than the graph plan an exact scan may cost where the graph cannot reach the recall target.
    package static let exactFallbackCostRatio = 32.0
    /// Exact plans over fewer estimated matches than this are not probed (the scan is already cheap).
    package static let probeMinimumMatches = 1000
    /// Matches above which a post-filter that found too few falls back to the filtered graph, not to exact.
    package static let postFilterFallbackToGraphAbove = 20_000
    /// The store's probe rule at effort 1 meets the default target over both tiers on the benchmark set
    /// (Benchmarks/README.md, "Measurements behind constants"); the build-time calibration scales it per store.
    package static let coldProbeScale = 1.5
    /// The k that rule was set at (the benchmark's).
    package static let coldRuleK = 10

    /// Matching rows one block read is worth ranking by code instead (a code takes ~20–40 ns, a block read
    /// ~4–5 µs): the cold step ranks by code when the matching cold rows number at most this many per block
    /// it may open at effort 1. (Measured against 256: Benchmarks/README.md, "Measurements behind constants".)
    package static let coldCodeRanksPerBlockRead = 128.0

    /// Whether a cold step under a filter held in memory ranks every matching row by its code (few matching rows
    /// for the blocks it may open), rather than picking blocks by centroid. Decided at effort 1: effort then
    /// scales the work within the way chosen.
    package static func coldRanksByCode(blocks: Int, liveRows: Int, selectivity: Double) -> Bool {
        Double(liveRows) * selectivity
            <= Double(min(blocks, max(1, coldBlocks(blocks: blocks, selectivity: selectivity))))
            * coldCodeRanksPerBlockRead
    }

    /// How many times the blocks a cold step for `k` rows may open are those its effort was measured for, at
    /// `measuredAt` rows (the build-time curves' k). Ranking rows by code (`ranksByCode`), the k nearest matches
    /// lie in about k blocks, one each, so the blocks grow as k does; picking blocks by centroid, they gather in
    /// the blocks nearest the query, and the blocks grow as √k. (synth-20k, 80 % cold at random, 20 queries
    /// against exact answers, before: k 100 under price < 10 % 0.41, k 1,000 0.28; unfiltered k 1,000 0.75, with
    /// the explanation promising 0.965. Linear: 0.998–1.000 under the filters, √k there 0.72 at k 100. Unfiltered
    /// √k: 0.94 at k 30, 0.97 at k 100, 1.00 at k 1,000; linear 1.00 from k 100, reading 10× the blocks.)
    package static func coldKScale(k: Int, measuredAt: Int, ranksByCode: Bool) -> Double {
        guard k > measuredAt, measuredAt > 0 else { return 1 }
        let ratio = Double(k) / Double(measuredAt)
        return ranksByCode ? ratio : ratio.squareRoot()
    }

    /// Cold blocks a query opens at most (those holding a live matching row; bounds may stop it sooner):
    /// `coldProbeScale · effort · √blocks`, divided by √selectivity as the filter narrows (the k nearest matches
    /// lie among the k/s nearest rows, which spread over more blocks), at least 8, all blocks at most.
    package static func coldBlocks(blocks: Int, selectivity: Double, effort: Double = 1) -> Int {
        let base = coldProbeScale * effort * Double(blocks).squareRoot()
        return min(blocks, max(8, Int((base / max(selectivity, 1e-4).squareRoot()).rounded(.up))))
    }

    /// The whole plan of a query. `probeAdvised(bucket)` says whether probes of this filter shape at this
    /// selectivity bucket have paid off lately (asked only where a probe is possible).
    package static func plan(
        _ input: QueryPlanInput, calibration: RecallCalibration,
        probeAdvised: (Int) -> Bool, linkSpread: () -> Double? = { nil },
        filterCurve: ([Int]) -> FilterCurve? = { _ in nil }
    ) -> QueryPlan {
        var plan = QueryPlan.unplanned
        plan.searchesHot = input.searchesHot
        plan.hydration =
            !input.hydratedColumns.isEmpty ? .columns(input.hydratedColumns) : input.cold != nil ? .coldIDs : .none
        if input.searchesHot {
            planHot(
                input, calibration: calibration, probeAdvised: probeAdvised, linkSpread: linkSpread,
                filterCurve: filterCurve, into: &plan)
        }
        if let cold = input.cold { planCold(cold, input, calibration: calibration, into: &plan) }
        return plan
    }

    /// Strategy and effort from the cost model at the calibrated scale; exact where the calibrated graph falls
    /// short; a caller's forced strategy; the probe in front of an exact plan; the fallback rule.
    private static func planHot(
        _ input: QueryPlanInput, calibration: RecallCalibration, probeAdvised: (Int) -> Bool,
        linkSpread: () -> Double?, filterCurve: ([Int]) -> FilterCurve?, into plan: inout QueryPlan
    ) {
        let filtered = input.hasFilter
        let selectivity = input.estimatedMatches / Double(max(input.rows, 1))
        var scale = calibration.scale(selectivity: selectivity, filtered: filtered)
        func chosen(_ scale: Double) -> Plan {
            choose(
                PlanInput(
                    rows: input.rows, estimatedMatches: input.estimatedMatches, hasFilter: filtered, k: input.k,
                    dimensions: input.dimensions, recallTarget: input.recallTarget,
                    searchEffort: input.searchEffort, inMemoryPredicate: input.inMemoryPredicate,
                    effortScale: scale))
        }
        var hot = chosen(scale)
        // Where the filtered floor binds and a graph search would answer below it, a filter known to be drawn at
        // random (its rows link outside it as often as at random) is planned on its curve there
        // (`RecallCalibration.bucketScale`); asked only then.
        if filtered, input.searchEffort == nil, input.inMemoryPredicate, input.forcedStrategy == nil {
            let lower = calibration.scale(selectivity: selectivity, filtered: true, randomFilter: true)
            if lower < scale, case let below = chosen(lower), below.strategy != .exact {
                plan.hotSpread = linkSpread()
                if plan.hotSpread == 1 {
                    plan.belowFilteredFloor = true
                    scale = lower
                    hot = below
                }
            }
        }
        plan.effortScale = input.searchEffort == nil ? scale : 1
        var exactForRecall = false
        // Where a filter's own curve found the exact scan cheaper than the graph at the effort it needs: the probe's
        // effort, and what the curve expects of it.
        var ownProbe: (effort: Int, recall: Double)? = nil
        if hot.strategy != .exact, input.searchEffort == nil, let built = calibration.built,
            built.target == input.recallTarget,
            let expected = calibration.expected(
                selectivity: selectivity, filtered: filtered, randomFilter: plan.belowFilteredFloor)
        {
            hot.expectedRecall = expected.recall
            plan.expectedRecallInterval = expected.interval
            plan.recallBasis = .buildCurve(queries: built.queries, measuredAt: built.measuredAt)
            // Never a silent shortfall: where the measured curve does not reach the target even at the largest
            // effort, an exact plan answers when it costs at most `exactFallbackCostRatio` times the graph's;
            // otherwise the plan states the expected shortfall.
            if expected.recall + 2 * expected.error < input.recallTarget, input.forcedStrategy == nil {
                let exactCost = hot.estimatedMatches * (exactDistanceCost(dimensions: input.dimensions) + collectCost)
                if input.inMemoryPredicate, exactCost <= exactFallbackCostRatio * max(hot.estimatedCost, 1) {
                    plan.recallBasis = .exactForRecall(graphRecall: expected.recall, interval: expected.interval)
                    plan.expectedRecallInterval = nil
                    hot.strategy = .exact
                    hot.effort = nil
                    hot.overFetch = nil
                    hot.expectedRecall = 1
                    exactForRecall = true
                } else {
                    plan.recallBasis = .buildCurveShort(
                        queries: built.queries, measuredAt: built.measuredAt,
                        shortBy: input.recallTarget - expected.recall,
                        exactCostRatio: exactCost / max(hot.estimatedCost, 1))
                }
            }
        } else {
            plan.recallBasis =
                hot.strategy == .exact
                ? .exact
                : input.searchEffort != nil
                    ? .fixedEffort
                    : calibration.isMeasured(selectivity: selectivity, filtered: filtered)
                        ? .onlineChecks
                        : .staticModel
        }
        // A filter that follows the data, planned from a curve measured under random filters: its own curve instead
        // (`filterCurve(efforts)`, measured once and remembered by the caller), at half to 32 times the effort. Over
        // both tiers too: it speaks for the hot step's share (aniso2-200k, 80 % cold, `grp = 3`: 0.921 where 0.963
        // was expected with the hot step on the random filters' curve, its rows linking outside 0.09 as often).
        if filtered, hot.strategy == .filteredGraph, !exactForRecall, let planned = hot.effort,
            input.searchEffort == nil, input.forcedStrategy == nil, input.inMemoryPredicate,
            plan.recallBasis.isBuildCurve
        {
            let spread = plan.hotSpread ?? linkSpread()
            plan.hotSpread = spread
            // Half to 32 times the planned effort, within [k, rows]: built only where asked.
            func efforts() -> [Int] {
                Array(
                    Set([1, 2, 4, 8, 16, 32, 64].map { min(max(planned * $0 / 2, input.k), max(input.rows, input.k)) })
                )
                .sorted()
            }
            if let spread, spread < 1, let curve = filterCurve(efforts()), !curve.points.isEmpty {
                let exactCost = hot.alternatives["exact"] ?? .infinity
                func cost(_ effort: Int) -> Double { hot.estimatedCost * Double(effort) / Double(planned) }
                let effort = curve.effort(meeting: input.recallTarget)
                let graphEffort = effort ?? curve.points.last!.effort
                let expected = curve.expected(at: graphEffort)
                let exactInstead =
                    effort != nil
                    ? exactCost < cost(graphEffort) : exactCost <= exactFallbackCostRatio * cost(graphEffort)
                hot.alternatives[Strategy.filteredGraph.rawValue] = cost(graphEffort)
                plan.filterCurveUsed = true
                if exactInstead {
                    plan.recallBasis =
                        effort != nil
                        ? .exact : .exactForRecall(graphRecall: expected.recall, interval: expected.interval)
                    plan.expectedRecallInterval = nil
                    hot.strategy = .exact
                    hot.effort = nil
                    hot.estimatedCost = exactCost
                    hot.expectedRecall = 1
                    exactForRecall = effort == nil
                    if effort != nil { ownProbe = (graphEffort, expected.recall) }
                } else {
                    hot.effort = graphEffort
                    hot.estimatedCost = cost(graphEffort)
                    hot.expectedRecall = expected.recall
                    plan.expectedRecallInterval = expected.interval
                    plan.recallBasis = .filterCurve(
                        queries: curve.queries, milliseconds: curve.milliseconds,
                        shortBy: effort == nil ? input.recallTarget - expected.recall : nil)
                }
            }
        }
        if let forced = input.forcedStrategy, forced != hot.strategy, filtered || forced == .graph || forced == .exact {
            hot.strategy = forced
            hot.effort =
                hot.effort ?? max(input.searchEffort ?? effort(forRecall: input.recallTarget, k: input.k), input.k)
            if forced == .postFilter && hot.overFetch == nil {
                hot.overFetch = Int((Double(input.k) / max(hot.estimatedSelectivity, 1e-6) * 1.5).rounded(.up))
                hot.effort = max(hot.effort!, hot.overFetch!)
            }
        }
        // A filter correlated with the query lets a filtered graph search finish in fewer distance computations
        // than the exact scan; the cost model cannot see correlation, so the graph goes first with the exact
        // scan's cost as its budget, where recall checks have measured the graph at this selectivity (shadow
        // probes of exact plans) and this filter shape's probes have paid off lately.
        if hot.strategy == .exact, filtered, input.inMemoryPredicate, input.forcedStrategy == nil,
            input.searchEffort == nil,
            !exactForRecall, hot.estimatedMatches >= Double(probeMinimumMatches),
            calibration.isMeasured(selectivity: hot.estimatedSelectivity, filtered: true),
            probeAdvised(RecallCalibration.bucket(selectivity: hot.estimatedSelectivity, filtered: true))
        {
            let ef =
                ownProbe?.effort
                ?? filteredEffort(
                    forRecall: input.recallTarget, k: input.k, scale: scale, selectivity: hot.estimatedSelectivity)
            plan.probe = QueryPlan.Probe(
                effort: ef,
                budget: Int(hot.estimatedMatches * exactDistanceCost(dimensions: input.dimensions)),
                expectedRecall: ownProbe?.recall ?? expectedRecall(effort: ef, k: input.k))
        }
        // Fewer than k found while more match: few matches, exact over them; many (a post-filter that
        // over-fetched too little), the filtered graph, which admits only matches.
        if filtered, hot.strategy != .exact || plan.probe != nil {
            let expected = input.listedMatches ?? Int(hot.estimatedMatches)
            plan.fallback =
                hot.strategy == .postFilter && expected > postFilterFallbackToGraphAbove && input.inMemoryPredicate
                ? .filteredGraph : .exact
        }
        plan.hot = hot
    }

    /// The cold step's effort (the store's rule at the calibrated scale, times the caller's) and block budget, or an
    /// exact cold step where the calibrated one falls short of the target; the expected recall over both tiers
    /// where a curve over both tiers speaks for the whole query.
    private static func planCold(
        _ cold: QueryPlanInput.Cold, _ input: QueryPlanInput, calibration: RecallCalibration,
        into plan: inout QueryPlan
    ) {
        let selectivity = input.hasFilter ? cold.estimatedMatches / Double(max(cold.liveRows, 1)) : 1
        // Under a filter with a graph-searched hot step, the hot step's misses come on top of the cold step's, whose
        // curve under a filter is measured with the hot rows exact: the hot step loses about its share of the
        // matches times its expected miss rate (an overestimate: the few hot rows among the query's k nearest are
        // the hot step's nearest, which it misses least). The cold step is asked for that much more than the
        // target, so that the two together meet it (synth-200k, 80 % cold, a 50 % filter: hot 0.958 and cold
        // 0.965 each expected, 0.942 measured together), and the query's expectation is the two together.
        let hotLoss: (share: Double, loss: Double)? = {
            let hotCurve: Bool
            switch plan.recallBasis {
            case .buildCurve, .filterCurve: hotCurve = true
            default: hotCurve = false
            }
            guard input.hasFilter, input.searchesHot, plan.hot.strategy != .exact, plan.probe == nil,
                cold.fixedProbes == nil, cold.effort == 1, input.searchEffort == nil, hotCurve,
                let built = calibration.built, built.target == input.recallTarget
            else { return nil }
            let hotMatches = max(plan.hot.estimatedMatches, 0), coldMatches = max(cold.estimatedMatches, 0)
            guard hotMatches + coldMatches > 0 else { return nil }
            let share = hotMatches / (hotMatches + coldMatches)
            return (share, share * max(0, 1 - plan.hot.expectedRecall))
        }()
        // What the cold step is asked for.
        let asked = hotLoss.map { min(input.recallTarget + $0.loss, 0.9995) } ?? input.recallTarget
        // The filter's own curve where it has one (and the caller does not set the cold step's effort).
        let own =
            input.hasFilter && cold.fixedProbes == nil && cold.effort == 1 && calibration.built != nil
            ? cold.ownCurve.flatMap { curve in curve.reading(target: asked).map { (curve, $0) } } : nil
        // Whether the cold step ranks the filter's rows by code (else it picks blocks by centroid).
        let ranksByCode =
            input.hasFilter && cold.filterInMemory
            && coldRanksByCode(blocks: cold.blocks, liveRows: cold.liveRows, selectivity: selectivity)
        let filtered =
            own.map { _, read in
                (
                    scale: read.scale, recall: read.recall, interval: read.interval, error: read.error,
                    exact: Optional(read.exact), followed: true
                )
            }
            ?? (input.hasFilter
                ? calibration.coldFiltered(
                    selectivity: selectivity, ranksByCode: ranksByCode,
                    target: hotLoss == nil ? nil : asked, spread: cold.spread)
                : nil)
        let source: QueryPlan.ColdEffortSource =
            cold.fixedProbes != nil
            ? .fixedProbes
            : filtered != nil
                ? .calibratedFiltered
                : calibration.coldScale == nil ? .rule : input.hasFilter ? .calibratedUnfiltered : .calibrated
        let scale: Double
        switch source {
        case .fixedProbes, .rule, .exactForRecall, .exactAboveCalibration: scale = 1
        case .calibratedFiltered: scale = filtered!.scale
        case .calibrated, .calibratedUnfiltered: scale = calibration.coldScale ?? 1
        }
        // A curve measured at another k than the query's (not this filter's own, measured at its k) opens blocks in
        // proportion (`coldKScale`); the caller's fixed probes stay as given.
        let curveK = calibration.built?.k ?? Self.coldRuleK
        let kScale =
            cold.fixedProbes != nil || own != nil
            ? 1
            : coldKScale(k: input.k, measuredAt: curveK, ranksByCode: ranksByCode)
        let effort = cold.effort * scale * kScale
        let budget = min(
            cold.blocks,
            max(1, cold.fixedProbes ?? coldBlocks(blocks: cold.blocks, selectivity: selectivity, effort: effort)))
        let calibrated = cold.effort == 1 && (own != nil || calibration.built?.target == input.recallTarget)
        // Unfiltered, the curve over both tiers says what the whole query expects (the hot tier's own curve speaks
        // of the hot rows alone); under a filter, the curve under a filter of this bucket (measured with the hot
        // rows answered exactly) does where the hot step is exact too, and with the hot step's loss where it is a
        // graph search.
        let unfiltered =
            !input.hasFilter && calibrated && cold.fixedProbes == nil && input.searchEffort == nil && input.searchesHot
                && plan.hot.strategy == .graph
            ? calibration.expectedOverBothTiers().map { both in
                (
                    recall: both.recall, error: both.error, interval: both.interval,
                    exact: calibration.exactOverBothTiers()
                )
            } : nil
        let underFilter =
            source == .calibratedFiltered && calibrated
            ? filtered.map { (recall: $0.recall, error: $0.error, interval: $0.interval, exact: $0.exact) } : nil
        let curve = unfiltered ?? underFilter
        // Never a silent shortfall over the cold tier either: where the cold step's curve falls short of what it is
        // asked (its expected recall plus two standard errors below it) at the effort it adopted, the largest on
        // its curve (past 16 the curve models larger efforts where it can, `HybridStore.beyondMeasured`, and this is
        // where none it modelled meets it), the cold step goes exact (every block its bound cannot rule out) when
        // that opens at most `exactFallbackCostRatio` times the blocks the effort may, and the query expects what
        // the curve's queries got with an exact cold step. (200,000 rows, 80 % cold, at effort 16: uniform-256
        // with inner product 0.753 unfiltered, gaussian-128 cosine 0.898.) Not where the exact step would fall
        // short too (what is missed is the hot step's): reading every block would buy little.
        var shortfall: (recall: Double, interval: Double, exact: RecallCalibration.ExactExpectation)? = nil
        var tooDear: Double? = nil  // short, and an exact step would open this many times the blocks
        if let curve, let exact = curve.exact, curve.recall + 2 * curve.error < asked,
            exact.recall + 2 * exact.error >= asked
        {
            let exactBlocks = min(Double(cold.blocks), input.hasFilter ? max(1, cold.estimatedMatches) : .infinity)
            if exactBlocks <= exactFallbackCostRatio * Double(budget) {
                shortfall = (curve.recall, curve.interval, exact)
            } else {
                tooDear = exactBlocks / Double(budget)
            }
        }
        // A target above the calibration's: the cold curves stop just past the calibration's target, and their hot
        // step searched at its effort, so they cannot say which effort meets this one; at the calibrated effort, 0.99
        // asked got 0.958 (synth-20k, 80 % cold). The cold step goes exact (every block its bound cannot rule out)
        // where that opens at most `exactFallbackCostRatio` times the blocks the calibrated effort may (then 0.97 and
        // 0.99 asked got 0.999, the cold step opening 1,077 of 1,281 blocks in 4.3 ms where the calibrated one opened
        // 25 in 0.47 ms); else it keeps that effort and `explain` says its recall is not measured.
        var aboveCalibration = false
        if shortfall == nil, let built = calibration.built, input.recallTarget > built.target, own == nil,
            cold.fixedProbes == nil, cold.effort == 1, input.searchEffort == nil
        {
            let exactBlocks = min(Double(cold.blocks), input.hasFilter ? max(1, cold.estimatedMatches) : .infinity)
            aboveCalibration = exactBlocks <= exactFallbackCostRatio * Double(budget)
        }
        plan.cold = QueryPlan.ColdPlan(
            effort: effort,
            source: shortfall != nil ? .exactForRecall : aboveCalibration ? .exactAboveCalibration : source,
            blockBudget: shortfall == nil && !aboveCalibration ? budget : cold.blocks,
            exact: shortfall != nil || aboveCalibration || (cold.fixedProbes.map { $0 >= cold.blocks } ?? false),
            beyondMeasured: shortfall == nil && scale > RecallCalibration.maxScale,
            spread: source == .calibratedFiltered ? cold.spread : nil,
            followedTheData: source == .calibratedFiltered && filtered?.followed == true,
            ownCurve: own.map { curve, _ in .init(queries: curve.queries, milliseconds: curve.milliseconds) },
            kScale: kScale, curveK: curveK)
        guard let curve, let built = calibration.built else { return }
        let expected =
            shortfall.map { (recall: $0.exact.recall, interval: $0.exact.interval) }
            ?? (recall: curve.recall, interval: curve.interval)
        let queries = own?.0.queries ?? built.coldQueries ?? built.queries
        if underFilter != nil {
            plan.cold?.expectedWithExactHot = expected.recall
            plan.cold?.expectedWithExactHotInterval = expected.interval
        }
        let shortBasis =
            shortfall.map {
                QueryPlan.RecallBasis.coldExactForRecall(queries: queries, coldRecall: $0.recall, interval: $0.interval)
            }
            ?? tooDear.map {
                QueryPlan.RecallBasis.coldShort(queries: queries, shortBy: asked - curve.recall, exactBlocksRatio: $0)
            }
        if unfiltered != nil || (underFilter != nil && input.searchesHot && plan.hot.strategy == .exact) {
            plan.hot.expectedRecall = expected.recall
            plan.expectedRecallInterval = expected.interval
            plan.recallBasis = shortBasis ?? .overBothTiers(queries: queries)
        } else if underFilter != nil, let hotLoss {
            // The two steps' errors, the hot one's in its share.
            let hotInterval = hotLoss.share * (plan.expectedRecallInterval ?? 0)
            plan.hot.expectedRecall = expected.recall - hotLoss.loss
            plan.expectedRecallInterval = (expected.interval * expected.interval + hotInterval * hotInterval)
                .squareRoot()
            let hotQueries: Int
            if case .filterCurve(let own, _, _) = plan.recallBasis {
                hotQueries = own
            } else {
                hotQueries = built.queries
            }
            plan.recallBasis = shortBasis ?? .bothCurves(hotQueries: hotQueries, coldQueries: queries)
        }
    }
}
