import HNSW
import QueryPlanner

/// Per-query knobs.
public struct QueryOptions: Sendable {
    /// Mean recall@k to aim for; the planner picks the effort and strategy for it.
    public var recallTarget: Double = 0.95
    /// Fix the graph effort ("ef") instead of deriving it from the target.
    public var searchEffort: Int?
    /// Force a strategy (for experiments and benchmarks); nil lets the planner choose.
    public var strategy: Strategy?
    /// The tiers to search; both by default.
    public var tiers: Set<Tier>
    /// Cold blocks the step may open at most (nil: the store's rule, 1.5 · `√blocks / √selectivity` × `coldEffort`;
    /// `.max` or any count ≥ the blocks: exact, every block holding a matching row that its centroid bound
    /// cannot rule out, without the codes' probabilistic pruning).
    public var coldProbes: Int?
    /// Scales the cold step's effort: the blocks considered, and by its square root the margin (ε₀) the rows'
    /// codes must clear to be ruled out. 1 is the effort the store calibrated for the recall target over both
    /// tiers (the store's rule where no calibration was measured); more buys recall with cold reads
    /// (Benchmarks/README.md, "Tiered cold storage").
    public var coldEffort: Double
    /// Set by the async API: the query stops between its steps once the flag is raised.
    package var cancellation: CancellationFlag? = nil
    /// Plan the graph's effort for the first `effortK` results while returning k (the vector arm of a hybrid
    /// query: fusion ranks its `depth` candidates, but the recall target speaks of the first k).
    package var effortK: Int? = nil

    public init(
        recallTarget: Double = 0.95, searchEffort: Int? = nil, strategy: Strategy? = nil,
        tiers: Set<Tier> = [.hot, .cold], coldProbes: Int? = nil, coldEffort: Double = 1
    ) {
        self.recallTarget = recallTarget
        self.searchEffort = searchEffort
        self.strategy = strategy
        self.tiers = tiers
        self.coldProbes = coldProbes
        self.coldEffort = coldEffort
    }

    /// Throws `cancelled` once the calling task is cancelled (async calls only).
    func checkCancelled() throws(HybridStoreError) {
        if let cancellation, cancellation.isCancelled {
            throw HybridStoreError(.cancelled, "the query was cancelled")
        }
    }
}
