import HNSW
import Logging
import CoreMetrics

/// The store's logging (swift-log) and metrics (swift-metrics), as `Configuration.logger` and `.metrics` ask.
/// Absent when both are off: then no call site does more than test an optional.
///
/// Metrics (labels in braces):
/// - `hybridstore_queries_total{collection, plan}` and `hybridstore_query_duration_seconds{collection, plan}`:
///   every vector query by the plan that answered it (`graph`, `exact`, `filtered_graph`, …; `keyword` and
///   `hybrid` for retrieval);
/// - `hybridstore_cancelled_total{work}`: async calls stopped by cancellation (`read`, `write`);
/// - at each checkpoint and open: `hybridstore_rows{collection, tier}`, `hybridstore_memory_bytes{collection,
///   tier}` (hot: index and filter columns; cold: block summaries and filter values), and
///   `hybridstore_effort_scale{collection, bucket}` (the calibrated effort per selectivity bucket);
/// - `hybridstore_checkpoint_duration_seconds`.
final class StoreObserver: Sendable {
    let logger: Logger?
    /// The backend, when metrics are on.
    let factory: (any MetricsFactory)?
    var metrics: Bool { factory != nil }
    private let slowNanos: UInt64
    private let queryMetrics = Locked<[String: (count: Counter, latency: Timer)]>([:])

    /// nil when the configuration neither logs nor reports metrics.
    static func make(_ configuration: Configuration, directory: String) -> StoreObserver? {
        guard configuration.logger != nil || configuration.metrics != nil else { return nil }
        return StoreObserver(configuration, directory: directory)
    }

    private init(_ configuration: Configuration, directory: String) {
        var logger = configuration.logger
        logger?[metadataKey: "store"] = .string(directory)
        self.logger = logger
        factory = configuration.metrics
        slowNanos = UInt64(max(0, configuration.slowQueryMilliseconds) * 1e6)
    }

    /// A query answered: counted and timed by plan; logged with its plan when slow.
    func query(collection: String, plan: String, nanos: UInt64, details: @autoclosure () -> String) {
        if let factory {
            let key = collection + "\u{0}" + plan
            let (count, latency) = queryMetrics.withLock { cache in
                if let pair = cache[key] { return pair }
                let dimensions = [("collection", collection), ("plan", plan)]
                let pair = (
                    Counter(label: "hybridstore_queries_total", dimensions: dimensions, factory: factory),
                    Timer(label: "hybridstore_query_duration_seconds", dimensions: dimensions, factory: factory)
                )
                cache[key] = pair
                return pair
            }
            count.increment()
            latency.recordNanoseconds(Int64(clamping: nanos))
        }
        if let logger, nanos >= slowNanos {
            logger.warning(
                "slow query",
                metadata: [
                    "collection": .string(collection), "plan": .string(plan),
                    "ms": .stringConvertible(Double(nanos) / 1e6), "details": .string(details()),
                ])
        }
    }

    func cancelled(write: Bool) {
        if let factory {
            Counter(
                label: "hybridstore_cancelled_total", dimensions: [("work", write ? "write" : "read")], factory: factory
            ).increment()
        }
        logger?.debug("call cancelled", metadata: ["work": .string(write ? "write" : "read")])
    }

    func recovery(_ progress: RecoveryProgress) {
        guard let logger else { return }
        switch progress.phase {
        case .rebuilding where progress.done == 0:
            logger.notice(
                "rebuilding an index from the database",
                metadata: [
                    "collection": .string(progress.collection), "rows": .stringConvertible(progress.total),
                    "reason": .string(progress.reason ?? "none"),
                ])
        case .replaying where progress.done == 0 && progress.total > 0:
            logger.info(
                "replaying the change log into a loaded snapshot",
                metadata: [
                    "collection": .string(progress.collection), "entries": .stringConvertible(progress.total),
                ])
        case .ready:
            logger.info("collection ready", metadata: ["collection": .string(progress.collection)])
        default:
            break
        }
    }

    func checkpointed(nanos: UInt64, statistics: [CollectionStatistics]) {
        logger?.info("checkpoint", metadata: ["ms": .stringConvertible(Double(nanos) / 1e6)])
        guard let factory else { return }
        Timer(label: "hybridstore_checkpoint_duration_seconds", factory: factory).recordNanoseconds(
            Int64(clamping: nanos))
        report(statistics)
    }

    /// Rows, RAM by tier and calibration of each collection, as gauges.
    func report(_ statistics: [CollectionStatistics]) {
        guard let factory else { return }
        for s in statistics {
            for (tier, rows) in s.tiers {
                Gauge(
                    label: "hybridstore_rows", dimensions: [("collection", s.name), ("tier", tier)], factory: factory
                ).record(rows)
            }
            Gauge(
                label: "hybridstore_memory_bytes", dimensions: [("collection", s.name), ("tier", "hot")],
                factory: factory
            )
            .record(s.indexBytes + s.columnBytes + s.textBytes)
            Gauge(
                label: "hybridstore_memory_bytes", dimensions: [("collection", s.name), ("tier", "cold")],
                factory: factory
            )
            .record(s.coldMemoryBytes)
            for (bucket, scale) in s.effortScales.enumerated() {
                Gauge(
                    label: "hybridstore_effort_scale", dimensions: [("collection", s.name), ("bucket", "\(bucket)")],
                    factory: factory
                )
                .record(scale)
            }
        }
    }
}
