import Foundation
import HNSW
import QueryPlanner

/// What a query did and why: the planner's whole plan, the estimate against the actual matches, what each step
/// did, the work and the time.
public struct Explanation: Sendable, Codable, Equatable, CustomStringConvertible {
    public var collection: String
    /// The filter in the string syntax, if any (rendered when explaining; otherwise a note that there was one).
    public var filter: String?
    public var k: Int
    public var recallTarget: Double
    /// The plan, as the planner made it before any step ran.
    public var plan: QueryPlan
    /// The hot strategy whose answer was kept: the plan's, or the filtered graph when a probe answered.
    public var ran: Strategy = .graph
    /// Rows that match the filter, counted exactly (explain only; nil from search).
    public var actualMatches: Int?
    /// The strategy run after the plan found fewer than k rows although more match.
    public var fallback: Strategy?
    public var distanceComputations: Int
    public var visitedNodes: Int
    public var results: Int
    /// Cold blocks opened by the cold step, and the bytes they decompressed to.
    public var coldBlocksProbed = 0
    public var coldBytesDecompressed = 0
    /// Matching cold rows ranked by their codes before any block was chosen (0: blocks were chosen by
    /// centroid).
    public var coldRowsRanked = 0
    /// Rows of the blocks chosen by centroid then ranked by their codes, so that only blocks holding one that can
    /// still be among the k nearest were opened (0: blocks were chosen by code, or no cold step ran).
    public var coldRowsReranked = 0
    /// The cold step's effort scale (× the store's probe rule) and what it rests on: the build-time curve over
    /// both tiers ("calibrated") or the rule alone ("uncalibrated"); nil when no cold step ran.
    public var coldEffort: Double? { plan.cold?.effort }
    public var coldEffortSource: String? { plan.cold?.source.rawValue }
    /// Rows a writer changed while the query read: memory's view of them was set aside and their state in the
    /// query's snapshot evaluated exactly (0 without concurrent writes).
    public var rowsChangedUnderRead = 0
    /// Milliseconds per phase: filter curve and cold curve (measuring the filter's own curves, where this query
    /// did; part of plan, which runs from the query's start), plan, collect, search, fallback, cold plan (ranking
    /// blocks; part of cold), cold, hydrate.
    public var timingsMs: [String: Double]
    /// The scale on the planner's effort that this collection's calibration gave (1: the table's effort).
    public var effortScale: Double { plan.effortScale }
    /// What the filtered-graph probe in front of an exact plan did, if one ran.
    public var probe: String?
    /// The tenant a scoped query ran as. Its explanation speaks only of the tenant's rows: estimates come from
    /// them alone, selectivity is relative to them, and what depends on other tenants' rows (the collection's
    /// size, modelled costs, graph and cold-block work counters, the probe's budget) is left out.
    public var scopedToTenant: String?
    /// Where `plan.expectedRecall` comes from: a build-time curve ("100 build-time queries, 3 h old"), online
    /// checks, the static model ("uncalibrated: static model"), or an exact plan; over both tiers, whether the cold
    /// step's effort lies past the largest the calibration ran, where its curve is modelled.
    public var recallSource: String {
        var basis = plan.recallBasis.description()
        // Where the filter's own curves (`FilterCurve` for the hot step, `ColdFilterCurve` for the cold one) spoke.
        let coldCurve = plan.cold?.ownCurve.map {
            String(
                format: "this filter's own cold curve (%d hot rows as queries, measured in %.0f ms)", $0.queries,
                $0.milliseconds)
        }
        switch plan.recallBasis {
        case .overBothTiers: if let coldCurve { basis = "over both tiers: the filter follows the data; " + coldCurve }
        case .bothCurves(let hot, let cold):
            basis =
                "over both tiers: "
                + (plan.filterCurveUsed
                    ? "this filter's own hot curve (\(hot) hot rows as queries)"
                    : "the hot curve's \(hot) build-time queries")
                + " with " + (coldCurve ?? "the cold step's \(cold) under a filter")
        default: break
        }
        switch plan.recallBasis {
        case .overBothTiers, .bothCurves:
            return basis
                + (plan.cold?.beyondMeasured == true ? ", the cold step's effort modelled past the largest run" : "")
                + unmeasuredSpread + (plan.filterCurveUsed ? "" : unmeasuredHotSpread)
        case .buildCurve: return basis + unmeasuredHotSpread
        case .exact where plan.filterCurveUsed:
            return "exact: this filter follows the data, and its own curve asks for an effort that costs more"
        default: return basis
        }
    }

    /// Where a filtered graph's expectation comes from a curve measured under random filters and the filter follows
    /// the data (its rows link outside it well under as often as a random filter's: `QueryPlan.hotSpread`): that
    /// the curve does not speak for it. A query whose own neighbourhood the filter leaves out must walk to the
    /// regions it keeps, several at much the same distance (clustered 96-d cosine data, all hot, a 58 % filter of
    /// whole clusters: 0.939 where 0.983 was expected); one whose neighbourhood it keeps is served as well as under
    /// a random filter, or better.
    private var unmeasuredHotSpread: String {
        guard let spread = plan.hotSpread, spread < 1 else { return "" }
        return String(
            format: "; this filter follows the data, its rows linking outside it %.2f as often as at random, and the "
                + "curve is a random filter's: a query whose neighbourhood it leaves out may get less", spread)
    }
    /// When a build-time curve gave `plan.expectedRecall`: the half-width of a 95 % interval for the mean
    /// recall of 100 queries (the curve's own uncertainty and the sampling of those queries).
    public var expectedRecallError: Double? { plan.expectedRecallInterval }
    /// The recall the answer is expected to have: the plan's, or the static model's (or the filter's own curve's) at
    /// the probe's effort when the probe answered an exact plan.
    public var expectedRecall: Double {
        if ran != plan.strategy, let probe = plan.probe { return probe.expectedRecall }
        return plan.expectedRecall
    }

    /// Leaves out what speaks of rows outside `tenant`'s (see `scopedToTenant`).
    mutating func scope(to tenant: String, rows: Int?) {
        scopedToTenant = tenant
        plan.estimatedSelectivity = rows.map { plan.estimatedMatches / Double(max($0, 1)) } ?? 0
        plan.estimatedCost = 0
        plan.alternatives = [:]
        distanceComputations = 0
        visitedNodes = 0
        coldBlocksProbed = 0
        coldBytesDecompressed = 0
        coldRowsRanked = 0
        coldRowsReranked = 0
        probe = nil
        plan.probe?.budget = 0
        plan.effortScale = 1
        plan.cold?.blockBudget = 0
    }

    public var description: String {
        var lines: [String] = []
        lines.append("collection \(collection), k \(k), recall target \(recallTarget)")
        lines.append("filter: \(filter ?? "(none)")")
        let est = String(format: "%.0f", plan.estimatedMatches)
        let sel = String(format: "%.4f%%", plan.estimatedSelectivity * 100)
        lines.append(
            "plan: \(plan.strategy.rawValue)" + (plan.effort.map { ", ef \($0)" } ?? "")
                + plan.effortNote
                + (plan.overFetch.map { ", over-fetch \($0)" } ?? "")
                + (ran != plan.strategy ? ", answered by \(ran.rawValue)" : "")
                + (fallback.map { ", then fallback \($0.rawValue)" } ?? ""))
        lines += plan.steps.dropFirst().map { "  " + $0 }
        if let scopedToTenant {
            lines.append("tenant \(scopedToTenant): estimates from its rows only; costs and work counters not shown")
            lines.append(
                "matches: estimated \(est) (\(sel) of the tenant's rows)"
                    + (actualMatches.map { ", actual \($0)" } ?? ""))
            lines.append(String(format: "expected recall %.3f", expectedRecall) + recallNote)
            lines.append("work: \(results) results")
        } else {
            lines.append("matches: estimated \(est) (\(sel))" + (actualMatches.map { ", actual \($0)" } ?? ""))
            lines.append(
                String(format: "expected recall %.3f", expectedRecall) + recallNote
                    + String(format: "; modelled cost %.0f", plan.estimatedCost)
                    + " ("
                    + plan.alternatives.sorted { $0.value < $1.value }.map {
                        "\($0.key) \(String(format: "%.0f", $0.value))"
                    }
                    .joined(separator: ", ") + ")")
            lines.append(
                "work: \(distanceComputations) distance computations, \(visitedNodes) nodes visited, \(results) results"
            )
        }
        if let probe { lines.append("probe ran: \(probe)") }
        if coldBlocksProbed > 0 || plan.cold != nil {
            lines.append(
                "cold step ran: \(coldBlocksProbed) blocks probed, \(coldBytesDecompressed) bytes decompressed"
                    + (coldRowsRanked > 0
                        ? ", chosen by the codes of \(coldRowsRanked) matching rows"
                        : ", chosen by centroid"
                            + (coldRowsReranked > 0 ? ", then by the codes of their \(coldRowsReranked) rows" : ""))
                    + (plan.cold.map { String(format: "; effort ×%.2f, ", $0.effort) + $0.source.rawValue } ?? "")
                    + (plan.cold?.beyondMeasured == true
                        ? String(
                            format:
                                " (modelled past ×%g, the largest effort the calibration ran, from the blocks its queries' neighbours lie in)",
                            RecallCalibration.maxScale) : ""))
        }
        lines.append(
            "time: "
                + [
                    "filter curve", "cold curve", "plan", "collect", "search", "fallback", "cold plan", "cold",
                    "hydrate",
                ].compactMap { phase in
                    timingsMs[phase].map { "\(phase) " + String(format: "%.3f ms", $0) }
                }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    private var recallNote: String {
        if ran != plan.strategy, plan.probe != nil {
            return
                (plan.filterCurveUsed
                ? " (the probe's effort: this filter's own curve)" : " (the probe's effort: static model)") + coldNote
        }
        return
            (recallSource.isEmpty
            ? ""
            : " (" + (expectedRecallError.map { String(format: "± %.3f for 100 queries' mean, ", $0) } ?? "")
                + recallSource + ")") + coldNote
    }

    /// Where the filter's cold rows gather in few blocks (it follows the data) but no curve under such a filter was
    /// measured at its selectivity its way (none at 20 % and wider): that the cold step's expectation is a random
    /// filter's, which such a filter may miss (a 57 % filter of whole clusters got 0.868 where 0.962 was expected).
    private var unmeasuredSpread: String {
        guard let cold = plan.cold, let spread = cold.spread, spread < 1, !cold.followedTheData else { return "" }
        return String(
            format: "; this filter follows the data (spread %.2f) and the cold step's curve is a random filter's: "
                + "no filter like it was measured at this selectivity", spread)
    }

    /// Where the expected recall speaks of the hot rows alone while an approximate cold step also ran, said so
    /// rather than implied: with what the cold step's own curve under a filter of this selectivity expects (with
    /// the hot rows answered exactly) where there is one, else that the cold step's recall here is not measured.
    private var coldNote: String {
        guard let cold = plan.cold, !cold.exact, plan.searchesHot else { return "" }
        let probeAnswered = ran != plan.strategy && plan.probe != nil
        switch plan.recallBasis {
        case .overBothTiers, .bothCurves, .coldShort: if !probeAnswered { return "" }
        default: break
        }
        if let expected = cold.expectedWithExactHot {
            return "; of the hot rows only: over both tiers with the hot rows exact, the cold step's curve under a "
                + String(format: "filter expects %.3f", expected)
                + (cold.expectedWithExactHotInterval.map { String(format: " ± %.3f", $0) } ?? "") + unmeasuredSpread
        }
        return "; of the hot rows only: the cold step's recall here is not measured"
    }

    /// The explanation as JSON.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
