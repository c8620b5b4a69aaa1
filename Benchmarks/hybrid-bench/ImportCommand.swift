import ArgumentParser
import Foundation
import HNSW
import HybridStore

/// `hybrid-bench import`: the engine's import, reopen and rebuild against a bare index build in the same run.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract:
            "Import a dataset through the store API; time reopen (snapshot) and rebuild; compare with a bare HNSW build."
    )

    @Option(help: "Dataset directory (FORMAT.md).") var dataset: String
    @Option(help: "Results JSON file to write.") var out: String
    @Option(help: "Store directory to create (removed first). Default: a temporary directory.") var store: String?
    @Option(help: "Rows per write transaction.") var batch = 10_000
    @Option(help: "Links per node (M).") var connectivity = 16
    @Option(name: .customLong("ef-construction")) var efConstruction = 200
    @Option(help: "Comma-separated search efforts for the `none` queries.") var ef = "40,80,160"
    @Option(help: "Use only the first N queries.") var queries: Int?

    func run() throws {
        let efs = try parseIntList(ef)
        let data = try Dataset.load(dataset)
        let path = store ?? FileManager.default.temporaryDirectory.path + "/hybrid-bench-import-\(getpid())"
        try? FileManager.default.removeItem(atPath: path)
        defer { if store == nil { try? FileManager.default.removeItem(atPath: path) } }
        let schema = StoreImport.inferSchema(data, connectivity: connectivity, efConstruction: efConstruction)
        log(
            "dataset \(data.meta.name): \(data.meta.count) × \(data.meta.dim); columns \(schema.columns.map { "\($0.name):\($0.type)" })"
        )

        // 1. Bare index build, same data, same parameters, all cores.
        let t0 = nowNanoseconds()
        let bare = try HNSWIndex(parameters: schema.vector.hnswParameters, capacity: data.meta.count)
        _ = try bare.insert(contentsOf: data.base, labels: (0..<data.meta.count).map(UInt64.init))
        let bareSeconds = seconds(since: t0)
        log(String(format: "bare HNSW build %.2f s", bareSeconds))

        // 2. Import through the API.
        var configuration = Configuration()
        configuration.checkpointEveryChanges = 0
        var hs = try HybridStore(directory: path, create: true, configuration: configuration)
        let t1 = nowNanoseconds()
        var collection = try StoreImport.run(data, into: hs, name: "bench", schema: schema, batch: batch)
        let importSeconds = seconds(since: t1)
        log(String(format: "import %.2f s (%.2f× the bare build)", importSeconds, importSeconds / bareSeconds))
        let t2 = nowNanoseconds()
        try hs.checkpoint()
        let checkpointSeconds = seconds(since: t2)
        hs.close()

        // 3. Reopen with the snapshot, then without it (rebuild).
        let t3 = nowNanoseconds()
        hs = try HybridStore(directory: path, create: true, configuration: configuration)
        let reopenSeconds = seconds(since: t3)
        hs.close()
        for name in try FileManager.default.contentsOfDirectory(atPath: path) where name.hasSuffix(".hsnap") {
            try FileManager.default.removeItem(atPath: path + "/" + name)
        }
        let t4 = nowNanoseconds()
        hs = try HybridStore(directory: path, create: true, configuration: configuration)
        let rebuildSeconds = seconds(since: t4)
        log(
            String(
                format: "checkpoint %.2f s, reopen %.2f s, rebuild %.2f s (%.2f× the bare build)",
                checkpointSeconds, reopenSeconds, rebuildSeconds, rebuildSeconds / bareSeconds))
        collection = try hs.collection("bench")

        // 4. The `none` queries through search (ids only) and through the bare index, same efs.
        var cases = data.cases.filter { $0.className == "none" }
        if let queries { cases = Array(cases.prefix(queries)) }
        var runs: [BenchResults.Run] = []
        for effort in efs {
            for engine in ["store", "bare"] {
                var latencies: [UInt64] = []
                var recallSum = 0.0
                let wall = nowNanoseconds()
                for c in cases {
                    let q = Array(data.query(c.qid))
                    let t = nowNanoseconds()
                    let ids: [Int]
                    if engine == "store" {
                        ids = try hs.search(collection, near: q, k: 10, searchEffort: effort).map {
                            if case .int(let v) = $0.id { Int(v) } else { -1 }
                        }
                    } else {
                        ids = try bare.search(q, k: 10, searchEffort: effort).hits.map { Int($0.label) }
                    }
                    latencies.append(nowNanoseconds() - t)
                    recallSum += recall(ids, groundTruth: c.groundTruth)
                }
                let timing = Timing(latenciesNs: latencies, wallNs: nowNanoseconds() - wall)
                runs.append(
                    BenchResults.Run(
                        class: "none", effort: effort, queries: cases.count,
                        recall_at_10: recallSum / Double(max(cases.count, 1)), qps: timing.qps,
                        p50_ms: timing.p50, p99_ms: timing.p99,
                        plans: [engine == "store" ? "graph" : "bare_index": cases.count],
                        mode: engine))
                log(
                    "none \(engine.padding(6))"
                        + String(
                            format: "ef %4d  recall %.4f  qps %8.1f  p50 %.3f ms",
                            effort, runs.last!.recall_at_10, timing.qps, timing.p50))
            }
        }
        let storeBytes = directoryBytes(path)
        hs.close()
        var results = BenchResults(
            mode: "import", engine: "hybridstore",
            dataset: .init(name: data.meta.name, count: data.meta.count, dim: data.meta.dim, metric: data.meta.metric),
            host: .init(cores: ProcessInfo.processInfo.activeProcessorCount, cpu: cpuName(), kernel: nil),
            params: .init(
                connectivity: connectivity, ef_construction: efConstruction,
                build_threads: ProcessInfo.processInfo.activeProcessorCount, query_threads: 1),
            build_seconds: importSeconds, peak_rss_bytes: peakRSSBytes(), index_bytes: bare.memoryBytes,
            raw_bytes: data.meta.count * data.meta.dim * 4, runs: runs)
        results.import_seconds = importSeconds
        results.hnsw_build_seconds = bareSeconds
        results.checkpoint_seconds = checkpointSeconds
        results.reopen_seconds = reopenSeconds
        results.rebuild_seconds = rebuildSeconds
        results.store_bytes = storeBytes
        try results.write(to: out)
        log("wrote \(out)")
    }
}

func seconds(since start: UInt64) -> Double { Double(nowNanoseconds() - start) / 1e9 }
