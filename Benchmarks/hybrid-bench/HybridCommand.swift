import ArgumentParser
import Foundation
import HybridStore

/// `hybrid-bench hybrid`: every filter class through the store's public search, planner included.
struct HybridCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hybrid",
        abstract: "Import a dataset into a store and run every filter class through search with its where string.")

    @Option(help: "Dataset directory (FORMAT.md).") var dataset: String
    @Option(help: "Results JSON file to write.") var out: String
    @Option(name: .customLong("recall-target"), help: "The planner's recall target.") var recallTarget = 0.95
    @Option(help: "Also sweep these fixed efforts (comma-separated), besides the planner's own choice.") var ef: String?
    @Option(help: "Use only the first N queries per class.") var queries: Int?
    @Option(help: "Only these classes (comma-separated).") var classes: String?
    @Option(help: "Store directory to create (removed first). Default: a temporary directory.") var store: String?
    @Option(help: "Reuse an existing store directory from an earlier run instead of importing.") var reuse: String?
    @Option(help: "Links per node (M).") var connectivity = 16
    @Option(name: .customLong("ef-construction")) var efConstruction = 200
    @Option(help: "Draw recall (x) against QPS (y, log) per class into this SVG file.") var svg: String?
    @Option(
        help:
            "Unmeasured passes over every class's queries first, with every other query checked for recall, so the store calibrates its effort on this query stream; then a checkpoint saves the calibration and the store is reopened with the default configuration for the measured runs (0: measure an uncalibrated store)."
    )
    var warmup = 0
    @Option(
        name: .customLong("force-strategy"),
        help:
            "Run every query with this strategy (exact, filtered_graph, …) instead of the planner's choice (experiments)."
    )
    var forceStrategy: String?

    func run() throws {
        let data = try Dataset.load(dataset)
        var configuration = Configuration()
        configuration.checkpointEveryChanges = 0
        let path: String
        var importSeconds: Double? = nil
        if let reuse {
            path = reuse
        } else {
            path = store ?? FileManager.default.temporaryDirectory.path + "/hybrid-bench-hybrid-\(getpid())"
            try? FileManager.default.removeItem(atPath: path)
        }
        defer { if store == nil && reuse == nil { try? FileManager.default.removeItem(atPath: path) } }
        var hs = try HybridStore(directory: path, create: true, configuration: configuration)
        defer { hs.close() }
        var collection: CollectionRef
        if reuse != nil {
            collection = try hs.collection("bench")
        } else {
            let t = nowNanoseconds()
            collection = try StoreImport.run(
                data, into: hs, name: "bench",
                schema: StoreImport.inferSchema(
                    data, connectivity: connectivity,
                    efConstruction: efConstruction))
            importSeconds = seconds(since: t)
            try hs.checkpoint()
            log(String(format: "imported %d rows in %.2f s", data.meta.count, importSeconds!))
        }
        let wanted = classes.map { Set($0.split(separator: ",").map(String.init)) }
        if warmup > 0 {
            hs.close()
            var calibrating = configuration
            calibrating.recallSampleEvery = 2
            calibrating.recallChecksPerSecond = 10_000
            calibrating.recallCheckCPUShare = 1
            hs = try HybridStore(directory: path, create: true, configuration: calibrating)
            collection = try hs.collection("bench")
            let t = nowNanoseconds()
            for className in data.classNames where wanted?.contains(className) ?? true {
                var cases = data.cases.filter { $0.className == className }
                if let queries { cases = Array(cases.prefix(queries)) }
                for _ in 0..<warmup {
                    for c in cases {
                        let filter = c.whereText.isEmpty ? nil : try hs.parseFilter(c.whereText)
                        _ = try hs.query(
                            collection, near: Array(data.query(c.qid)), k: 10, where: filter,
                            options: QueryOptions(recallTarget: recallTarget))
                    }
                }
            }
            hs.waitForBackgroundWork()
            try hs.checkpoint()
            hs.close()
            hs = try HybridStore(directory: path, create: true, configuration: configuration)
            collection = try hs.collection("bench")
            log(
                String(
                    format: "warm-up: %d passes in %.1f s; effort scales per selectivity bucket: %@", warmup,
                    seconds(since: t),
                    try hs.calibration(of: collection).scales.map { String(format: "%.2f", $0) }.joined(separator: " "))
            )
        }
        let rows = try hs.count(collection)
        let efforts: [Int?] = [nil] + (try ef.map(parseIntList) ?? []).map { Optional($0) }
        var runs: [BenchResults.Run] = []
        for className in data.classNames where wanted?.contains(className) ?? true {
            var cases = data.cases.filter { $0.className == className }
            if let queries { cases = Array(cases.prefix(queries)) }
            for effort in efforts {
                var latencies: [UInt64] = []
                var recallSum = 0.0
                var plans: [String: Int] = [:]
                var estimateError = 0.0
                var estimated = 0
                var phases: [String: Double] = [:]
                let wall = nowNanoseconds()
                for c in cases {
                    let q = Array(data.query(c.qid))
                    let t = nowNanoseconds()
                    let filter = c.whereText.isEmpty ? nil : try hs.parseFilter(c.whereText)
                    let result = try hs.query(
                        collection, near: q, k: 10, where: filter,
                        options: QueryOptions(
                            recallTarget: recallTarget, searchEffort: effort,
                            strategy: forceStrategy.flatMap(Strategy.init(rawValue:))))
                    let (hits, explanation) = (result.hits, result.explanation)
                    latencies.append(nowNanoseconds() - t)
                    let ids = hits.map { hit -> Int in if case .int(let v) = hit.id { Int(v) } else { -1 } }
                    recallSum += recall(ids, groundTruth: c.groundTruth)
                    let name =
                        explanation.ran.rawValue + (explanation.fallback != nil ? "+fallback" : "")
                        + ((explanation.ran == explanation.plan.strategy
                            ? explanation.plan.effort : explanation.plan.probe?.effort)
                            .map { "@ef\($0)" } ?? "")
                    plans[name, default: 0] += 1
                    for (phase, t) in explanation.timingsMs { phases[phase, default: 0] += t / Double(cases.count) }
                    if filter != nil && c.selectivity > 0 {
                        let est = explanation.plan.estimatedMatches / Double(rows)
                        estimateError += abs(est - c.selectivity) / c.selectivity
                        estimated += 1
                    }
                }
                let timing = Timing(latenciesNs: latencies, wallNs: nowNanoseconds() - wall)
                var run = BenchResults.Run(
                    class: className, effort: effort, queries: cases.count,
                    recall_at_10: recallSum / Double(max(cases.count, 1)), qps: timing.qps,
                    p50_ms: timing.p50, p99_ms: timing.p99, plans: plans, mode: nil,
                    mean_distance_computations: nil,
                    mean_selectivity: cases.map(\.selectivity).reduce(0, +) / Double(max(cases.count, 1)))
                run.selectivity_estimate_error = estimated > 0 ? estimateError / Double(estimated) : nil
                run.mean_phase_ms = phases
                runs.append(run)
                log(
                    className.padding(16) + "ef \(effort.map(String.init) ?? "auto")".padding(9)
                        + String(
                            format: "recall %.4f  qps %8.1f  p50 %.3f ms  p99 %.3f ms  est.err %.3f  ",
                            run.recall_at_10,
                            run.qps, run.p50_ms, run.p99_ms, run.selectivity_estimate_error ?? 0)
                        + plans.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                        + "  ms: "
                        + phases.sorted { $0.key < $1.key }.map { "\($0.key) " + String(format: "%.3f", $0.value) }
                        .joined(separator: ", "))
            }
        }
        var results = BenchResults(
            mode: "hybrid", engine: "hybridstore",
            dataset: .init(name: data.meta.name, count: data.meta.count, dim: data.meta.dim, metric: data.meta.metric),
            host: .init(cores: ProcessInfo.processInfo.activeProcessorCount, cpu: cpuName(), kernel: nil),
            params: .init(
                connectivity: connectivity, ef_construction: efConstruction,
                build_threads: ProcessInfo.processInfo.activeProcessorCount, query_threads: 1),
            build_seconds: importSeconds, peak_rss_bytes: peakRSSBytes(), index_bytes: nil,
            raw_bytes: data.meta.count * data.meta.dim * 4, runs: runs)
        results.import_seconds = importSeconds
        results.recall_target = recallTarget
        try results.write(to: out)
        if let svg { try SVGPlot.write(results: [results], to: svg) }
        log("wrote \(out)")
    }
}
