/// How a query is executed.
public enum Strategy: String, Sendable, Codable, CaseIterable {
    /// Plain graph search, no filter.
    case graph
    /// Collect the matching rows and compute every distance (SIMD); exact.
    case exact
    /// Graph search that traverses all nodes and admits only matching ones (HNSW mode a).
    case filteredGraph = "filtered_graph"
    /// Graph search over matching nodes only, expanding through non-matching neighbours (mode b, ACORN-1).
    case filteredGraphMatchingOnly = "filtered_graph_matching_only"
    /// Plain graph search with over-fetch, then the filter on the candidates.
    case postFilter = "postfilter"
}

/// The inputs of a planning decision.
package struct PlanInput: Sendable {
    /// Live rows in the collection.
    public var rows: Int
    /// Estimated rows matching the filter (rows when there is none).
    public var estimatedMatches: Double
    public var hasFilter: Bool
    public var k: Int
    public var dimensions: Int
    /// Mean recall@k the caller wants.
    public var recallTarget: Double
    /// A fixed search effort from the caller, overriding the one the target implies.
    public var searchEffort: Int?
    /// Whether the filter can be evaluated in memory per node (else only exact via SQL ids is possible).
    public var inMemoryPredicate: Bool
    /// Scale on the table's effort, learned per selectivity bucket from measured recall (`RecallCalibration`);
    /// ignored when `searchEffort` is given.
    public var effortScale: Double

    public init(
        rows: Int, estimatedMatches: Double, hasFilter: Bool, k: Int, dimensions: Int,
        recallTarget: Double = 0.95, searchEffort: Int? = nil, inMemoryPredicate: Bool = true,
        effortScale: Double = 1
    ) {
        self.effortScale = effortScale
        self.rows = rows
        self.estimatedMatches = estimatedMatches
        self.hasFilter = hasFilter
        self.k = k
        self.dimensions = dimensions
        self.recallTarget = recallTarget
        self.searchEffort = searchEffort
        self.inMemoryPredicate = inMemoryPredicate
    }
}

/// A chosen plan: the strategy, its effort, and what the model expects of it.
public struct Plan: Sendable, Equatable, Codable {
    public var strategy: Strategy
    /// ef for graph strategies (nil for exact).
    public var effort: Int?
    /// Candidates fetched before filtering (post-filter only).
    public var overFetch: Int?
    public var estimatedMatches: Double
    public var estimatedSelectivity: Double
    /// Modelled cost in distance-computation equivalents.
    public var estimatedCost: Double
    /// Expected mean recall@k (1 for exact).
    public var expectedRecall: Double
    /// The alternatives considered, with their modelled costs (for `explain`).
    public var alternatives: [String: Double]

    /// A plan before planning: plain graph search, nothing estimated.
    public static let unplanned = Plan(
        strategy: .graph, effort: nil, overFetch: nil, estimatedMatches: 0,
        estimatedSelectivity: 1, estimatedCost: 0, expectedRecall: 0, alternatives: [:])
}

/// Chooses the cheapest strategy expected to reach the recall target.
///
/// Cost model (unit: one distance computation during a graph search on int8 codes, memory-latency bound). The
/// constants are fitted to `hybrid-bench ann` sweeps (the measurements: Benchmarks/README.md, "Measurements
/// behind constants"):
/// - plain graph: ≈ 15 · ef distance computations;
/// - filtered graph (mode a) at selectivity s: ≈ 15 · ef / s, capped at the row count;
/// - exact: one sequential distance per match at a fraction of a graph distance (streaming, prefetch-friendly;
///   see `exactDistanceCost`), plus 1/16 per match to collect the ids;
/// - post-filter: a plain search with ef raised to cover k / s candidates; only for s ≥ 0.9, where missing
///   matches are rare (at s = 0.5 a few percent of queries find fewer than k and fall back).
/// ef for a recall target, from the unfiltered sweep: 0.90 → 4k, 0.95 → 8k, 0.98 → 16k, 0.99 → 32k. Filtered
/// searches at the same ef reach higher recall (they visit more nodes).
package enum Planner {
    public static let graphDistancesPerEffort = 15.0
    /// What one distance of an exact scan costs, in graph distance computations: a scan streams float32
    /// vectors in order, a graph search jumps between int8 codes (and re-scores its final candidates in
    /// float32). Fitted per distance as a scan's ~9 ns + 0.064 ns a dimension against a graph search's ~43 ns
    /// + 0.036 ns: 0.37 at 128-d, 0.59 at 384-d, 1.05 at 1536-d.
    public static func exactDistanceCost(dimensions d: Int) -> Double {
        (9.3 + 0.064 * Double(d)) / (43 + 0.036 * Double(d))
    }
    public static let collectCost = 1.0 / 16

    /// The least k whose effort a search is planned at (`effort(forRecall:k:)`): the build-time curves are measured
    /// at k 10, and a smaller k at its own, smaller table effort fell short of the target they promised (synth-20k
    /// all hot, 100 queries, calibrated ×0.89: k 1 at ef 15 found its nearest row 0.82 of the time, k 3 at ef 22
    /// 0.86, where k 10 at ef 71 got 0.946; at ef 71, k 1 got 0.94 and k 3 0.953). A graph search finds its nearest
    /// few about as often as its nearest ten at the same ef, so a smaller k is searched as 10 is.
    public static let leastPlannedK = 10

    /// ef for a recall target at `k` (at `leastPlannedK` at least).
    public static func effort(forRecall target: Double, k: Int) -> Int {
        let factor: Int =
            switch target {
            case ..<0.85: 2
            case ..<0.905: 4
            case ..<0.955: 8
            case ..<0.985: 16
            case ..<0.995: 32
            default: 64
            }
        return max(max(k, leastPlannedK) * factor, k, 16)
    }

    /// ef for a filtered graph search at selectivity `s`, from the unfiltered `ef` (see `choose`).
    public static func filteredEffort(_ ef: Int, selectivity s: Double, k: Int) -> Int {
        max(k, Int((Double(ef) * s.squareRoot().squareRoot()).rounded(.up)))
    }

    /// ef for a filtered graph search at selectivity `s` for a recall target, with the collection's
    /// calibrated scale (what `choose` plans, and what the probe in front of exact plans uses).
    public static func filteredEffort(forRecall target: Double, k: Int, scale: Double, selectivity s: Double) -> Int {
        filteredEffort(Int((Double(effort(forRecall: target, k: k)) * scale).rounded(.up)), selectivity: s, k: k)
    }

    /// Expected recall of a graph search at `ef` for `k` (inverse of `effort(forRecall:k:)`).
    public static func expectedRecall(effort: Int, k: Int) -> Double {
        let ratio = Double(effort) / Double(max(k, 1))
        switch ratio {
        case ..<2: return 0.80
        case ..<4: return 0.85
        case ..<8: return 0.90
        case ..<16: return 0.95
        case ..<32: return 0.98
        case ..<64: return 0.99
        default: return 0.995
        }
    }

    public static func choose(_ input: PlanInput) -> Plan {
        let n = Double(max(input.rows, 1))
        let matches = min(max(input.estimatedMatches, 0), n)
        let s = max(matches / n, 1 / n)
        let tableEffort = effort(forRecall: input.recallTarget, k: input.k)
        let ef = max(input.searchEffort ?? Int((Double(tableEffort) * input.effortScale).rounded(.up)), input.k)
        // A calibrated effort is expected to meet the target it was calibrated for.
        let graphRecall =
            input.searchEffort == nil && input.effortScale != 1
            ? input.recallTarget
            : expectedRecall(effort: ef, k: input.k)
        guard input.hasFilter else {
            let cost = min(graphDistancesPerEffort * Double(ef), n)
            return Plan(
                strategy: .graph, effort: ef, overFetch: nil, estimatedMatches: matches, estimatedSelectivity: 1,
                estimatedCost: cost, expectedRecall: graphRecall, alternatives: ["graph": cost])
        }
        var costs: [Strategy: Double] = [:]
        costs[.exact] = matches * (exactDistanceCost(dimensions: input.dimensions) + collectCost)
        if input.inMemoryPredicate {
            costs[.filteredGraph] = min(graphDistancesPerEffort * Double(ef) * s.squareRoot().squareRoot() / s, n * 1.2)
            if s >= 0.9 {
                let overFetch = Int((Double(input.k) / s * 1.5).rounded(.up))
                costs[.postFilter] = graphDistancesPerEffort * Double(max(ef, overFetch)) * 1.1
            }
        }
        let best = costs.min { a, b in a.value < b.value || (a.value == b.value && a.key.rawValue < b.key.rawValue) }!
        let alternatives = Dictionary(uniqueKeysWithValues: costs.map { ($0.key.rawValue, $0.value) })
        switch best.key {
        case .exact:
            return Plan(
                strategy: .exact, effort: nil, overFetch: nil, estimatedMatches: matches, estimatedSelectivity: s,
                estimatedCost: best.value, expectedRecall: 1, alternatives: alternatives)
        case .postFilter:
            let overFetch = Int((Double(input.k) / s * 1.5).rounded(.up))
            return Plan(
                strategy: .postFilter, effort: max(ef, overFetch), overFetch: overFetch, estimatedMatches: matches,
                estimatedSelectivity: s, estimatedCost: best.value, expectedRecall: graphRecall,
                alternatives: alternatives)
        default:
            // A filtered search at ef keeps exploring until ef matches are found, so it reaches the target with
            // a smaller ef than an unfiltered one: ef · s^¼ (ef · √s fits one dataset but not clustered tenant
            // filters: Benchmarks/README.md, "Measurements behind constants"). A caller's fixed effort is kept.
            let filteredEffort = input.searchEffort ?? Self.filteredEffort(ef, selectivity: s, k: input.k)
            return Plan(
                strategy: best.key, effort: filteredEffort, overFetch: nil, estimatedMatches: matches,
                estimatedSelectivity: s, estimatedCost: best.value, expectedRecall: graphRecall,
                alternatives: alternatives)
        }
    }
}
