/// Learns, from a sample of a collection's own queries, how much search effort its data needs.
///
/// The planner's effort table (0.95 → ef 80 at k = 10, less under a filter) was fitted to one dataset; on
/// another the same ef can under- or over-deliver (384-d cosine: 0.985 where 0.95 was asked; 64-d clustered
/// data with 2M rows under a 5 % filter: 0.92). The engine checks a sample of graph queries against an exact
/// scan in the background and records each one's recall here; per selectivity bucket, a scale on the
/// effort moves until the mean measured recall sits just above the target.
///
/// Deterministic given the same recorded samples: no clocks, no randomness.
public struct RecallCalibration: Sendable, Equatable, Codable {
    /// Effort scale per bucket (1 = the table's effort).
    public private(set) var scales: [Double]
    /// Recall samples per bucket taken at the current scale.
    private var window: [[Double]]
    /// Samples that decide a step.
    public static let windowSize = 16
    public static let minScale = 0.25, maxScale = 8.0
    /// Buckets: 0 no filter; 1 s ≥ 0.5; 2 0.2 ≤ s < 0.5; 3 0.05 ≤ s < 0.2; 4 0.01 ≤ s < 0.05; 5 s < 0.01.
    public static let bucketCount = 6

    public init() {
        scales = Array(repeating: 1, count: Self.bucketCount)
        window = Array(repeating: [], count: Self.bucketCount)
    }

    public static func bucket(selectivity s: Double, filtered: Bool) -> Int {
        guard filtered else { return 0 }
        switch s {
        case 0.5...: return 1
        case 0.2...: return 2
        case 0.05...: return 3
        case 0.01...: return 4
        default: return 5
        }
    }

    public func scale(selectivity: Double, filtered: Bool) -> Double {
        scales[Self.bucket(selectivity: selectivity, filtered: filtered)]
    }

    /// Records the recall@k one query reached at the bucket's current scale. Once a window is full: a mean
    /// below `target` raises the scale (by more the further below), a mean above `target + slack` lowers it a
    /// little; either way the window starts afresh.
    /// - Returns: whether the scale changed.
    @discardableResult
    public mutating func record(recall: Double, selectivity: Double, filtered: Bool, target: Double,
                                slack: Double = 0.02) -> Bool {
        let b = Self.bucket(selectivity: selectivity, filtered: filtered)
        window[b].append(recall)
        guard window[b].count >= Self.windowSize else { return false }
        let mean = window[b].reduce(0, +) / Double(window[b].count)
        window[b].removeAll()
        let old = scales[b]
        if mean < target {
            scales[b] = min(Self.maxScale, old * min(2, 1.15 + (target - mean) * 8))
        } else if mean > min(target + slack, 0.9995) {
            scales[b] = max(Self.minScale, old * 0.85)
        }
        return scales[b] != old
    }
}
