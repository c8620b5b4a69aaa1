import Foundation

/// The results file of FORMAT.md ("Benchmark results format"). Unknown keys are ignored on reading.
struct BenchResults: Codable {
    struct DatasetInfo: Codable {
        var name: String
        var count: Int
        var dim: Int
        var metric: String
    }
    struct Host: Codable {
        var cores: Int
        var cpu: String
        var kernel: String?
    }
    struct Params: Codable {
        var connectivity: Int?
        var ef_construction: Int?
        var build_threads: Int?
        var query_threads: Int?
    }
    struct Run: Codable {
        var `class`: String
        var effort: Int?
        var cold_effort: Double?
        var queries: Int
        var recall_at_10: Double
        var qps: Double
        var p50_ms: Double
        var p99_ms: Double
        var plans: [String: Int]?
        var mode: String?
        var mean_distance_computations: Double?
        var mean_selectivity: Double?
        var selectivity_estimate_error: Double?
        var mean_phase_ms: [String: Double]?
        var mean_cold_blocks: Double?
    }

    var program = "hybrid-bench"
    var mode: String
    var engine: String
    var dataset: DatasetInfo
    var host: Host
    var params: Params
    var build_seconds: Double?
    var peak_rss_bytes: Int?
    var index_bytes: Int?
    var raw_bytes: Int?
    var snapshot_save_seconds: Double?
    var snapshot_load_seconds: Double?
    var import_seconds: Double?
    var hnsw_build_seconds: Double?
    var checkpoint_seconds: Double?
    var reopen_seconds: Double?
    var rebuild_seconds: Double?
    var store_bytes: Int?
    var recall_target: Double?
    var index_rss_bytes: Int?
    var ram_bytes_before: Int?
    var ram_bytes_after: Int?
    var cold_bytes: Int?
    var cold_bytes_fp16: Int?
    var tier_seconds: Double?
    /// `tier`: per class, the fastest tiered run (over the efforts swept) whose recall is at least the all-hot
    /// run's, against the all-hot p50: the "at the same recall".
    var matched_recall: [MatchedRecall]?
    var runs: [Run]

    struct MatchedRecall: Codable {
        var `class`: String
        var all_hot_recall: Double
        var all_hot_p50_ms: Double
        /// Nil when no effort swept reached the all-hot recall.
        var cold_effort: Double?
        var recall_at_10: Double?
        var p50_ms: Double?
        var p50_ratio: Double?
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    static func read(_ path: String) throws -> BenchResults {
        try JSONDecoder().decode(BenchResults.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// Latency percentiles and QPS from per-query nanoseconds and the run's wall time.
struct Timing {
    var qps: Double
    var p50: Double
    var p99: Double

    init(latenciesNs: [UInt64], wallNs: UInt64) {
        let sorted = latenciesNs.sorted()
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let i = min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)
            return Double(sorted[max(i, 0)]) / 1e6
        }
        qps = wallNs > 0 ? Double(latenciesNs.count) / (Double(wallNs) / 1e9) : 0
        p50 = percentile(0.50)
        p99 = percentile(0.99)
    }
}
