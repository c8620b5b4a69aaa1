import Foundation
import Logging
import MetricsTestKit
import Testing
import HybridStore

/// Logging and metrics (off unless configured: `Configuration.logger` and `.metrics` default to nil). When on, slow queries are logged with their plan, queries are
/// counted and timed by plan, and checkpoints report rows and RAM by tier.
@Suite struct ObservabilityTests {
    @Test func queriesAreCountedAndTimedByPlanAndCheckpointsReportRowsAndMemory() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let metrics = TestMetrics()
        let store = try tmp.open { $0.metrics = metrics }
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 300)
        for q in vectors.prefix(5) { _ = try store.search(c, near: q, k: 3) }
        let plans = try store.explain(c, near: vectors[0], k: 3, where: try store.parseFilter("year = 2001")).plan
            .strategy
        _ = try store.search(c, near: vectors[0], k: 3, where: try store.parseFilter("year = 2001"))
        #expect(
            metrics.counterTotal(
                label: "hybridstore_queries_total", dimensions: [("collection", "docs"), ("plan", "graph")]) == 5)
        #expect(
            metrics.counterTotal(
                label: "hybridstore_queries_total",
                dimensions: [("collection", "docs"), ("plan", plans.rawValue)]) == 2)
        let timer = try metrics.expectTimer(
            "hybridstore_query_duration_seconds", [("collection", "docs"), ("plan", "graph")])
        #expect(timer.values.count == 5 && timer.values.allSatisfy { $0 > 0 })

        try store.checkpoint()
        let rows = try metrics.expectGauge("hybridstore_rows", [("collection", "docs"), ("tier", "hot")])
        #expect(rows.lastValue == 300)
        let ram = try metrics.expectGauge("hybridstore_memory_bytes", [("collection", "docs"), ("tier", "hot")])
        #expect((ram.lastValue ?? 0) > 300 * 8 * 4)
        #expect(try metrics.expectTimer("hybridstore_checkpoint_duration_seconds").values.count == 1)
    }

    @Test func slowQueriesCheckpointsAndRebuildsAreLogged() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let records = LogRecords()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(records) }
        let store = try tmp.open {
            $0.logger = logger; $0.slowQueryMilliseconds = 0
        }
        let c = try store.collection("docs", creatingIfMissing: chunkSchema)
        let vectors = try fill(store, c, count: 100)
        _ = try store.search(c, near: vectors[0], k: 3, where: try store.parseFilter("tenant = 'acme'"))
        let slow = records.all.filter { $0.message == "slow query" }
        #expect(slow.count == 1)
        #expect(slow.first?.metadata["collection"] == "docs")
        #expect(slow.first?.metadata["plan"] != nil)
        #expect(slow.first.map { "\($0.metadata["details"] ?? "")".contains("tenant") } == true)
        try store.checkpoint()
        #expect(records.all.contains { $0.message == "checkpoint" })
        store.close()

        // A lost snapshot: the reopened store rebuilds the index from the database and says why.
        for file in try FileManager.default.contentsOfDirectory(atPath: tmp.path) where file.hasSuffix(".hsnap") {
            try FileManager.default.removeItem(atPath: tmp.path + "/" + file)
        }
        let reopened = try tmp.open { $0.logger = logger }
        defer { reopened.close() }
        #expect(
            records.all.contains {
                $0.message.description.contains("rebuilding") && $0.metadata["collection"] == "docs"
            })
    }
}

final class LogRecords: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): `records` is only touched under `lock`.
    struct Record { var level: Logger.Level; var message: Logger.Message; var metadata: Logger.Metadata }
    private let lock = NSLock()
    private var records: [Record] = []
    func append(_ r: Record) { lock.withLock { records.append(r) } }
    var all: [Record] { lock.withLock { records } }
}

struct CapturingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    init(_ records: LogRecords) { self.records = records }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        records.append(
            .init(
                level: event.level, message: event.message,
                metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
    }
}
