import ArgumentParser
import Foundation
import HNSW
import QueryPlanner

/// `hybrid-bench ann`: the bare HNSW index, built and searched over a dataset, per filter class and ef.
struct AnnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ann",
        abstract: "Build the HNSW index over a dataset and measure recall@10, QPS, p50 and p99 per class and ef.")

    @Option(help: "Dataset directory (FORMAT.md).") var dataset: String
    @Option(help: "Results JSON file to write.") var out: String
    @Option(help: "Links per node (M).") var connectivity = 16
    @Option(name: .customLong("ef-construction"), help: "Candidate list size while building (efConstruction).")
    var efConstruction = 200
    @Option(help: "Comma-separated search efforts (ef).") var ef = "10,20,40,80,160,320,640"
    @Option(name: .customLong("build-threads"), help: "Threads for the build (default: all cores).")
    var buildThreads: Int?
    @Option(help: "Use only the first N queries.") var queries: Int?
    @Option(help: "Only these classes (comma-separated).") var classes: String?
    @Option(help: "Filtered modes to run: admit, matching, or both.") var modes = "both"
    @Option(help: "Also draw recall (x) against QPS (y, log) per class into this SVG file.") var svg: String?
    @Option(name: .customLong("snapshot"), help: "Save and reload a snapshot at this path, timing both.")
    var snapshotPath: String?
    @Option(
        name: .customLong("load-snapshot"), help: "Load this snapshot instead of building (for experiments on search).")
    var loadSnapshot: String?
    @Option(help: "How searches walk the graph: int8 (codes, float32 re-scoring) or float32.")
    var traversal: TraversalPrecision = .int8

    func run() throws {
        let efs = try parseIntList(ef)
        let data = try Dataset.load(dataset)
        let metric = Metric(rawValue: data.meta.metric) ?? .l2
        log(
            "dataset \(data.meta.name): \(data.meta.count) × \(data.meta.dim) \(metric), \(data.cases.count) query cases"
        )

        let threads = buildThreads ?? ProcessInfo.processInfo.activeProcessorCount
        var index = try HNSWIndex(
            parameters: HNSWParameters(
                dimensions: data.meta.dim, metric: metric,
                connectivity: connectivity,
                constructionEffort: efConstruction),
            capacity: data.meta.count, traversal: traversal)
        let rssBefore = currentRSSBytes()
        let buildStart = nowNanoseconds()
        if let loadSnapshot {
            index = try HNSWIndex.load(from: loadSnapshot, traversal: traversal)
        } else {
            _ = try index.insert(
                contentsOf: data.base, labels: (0..<data.meta.count).map(UInt64.init), threads: threads)
        }
        let buildSeconds = Double(nowNanoseconds() - buildStart) / 1e9
        let indexRSS = currentRSSBytes() - rssBefore
        log(String(format: "built in %.2f s on %d threads", buildSeconds, threads) + " (kernel \(index.kernelLevel))")

        var saveSeconds: Double?
        var loadSeconds: Double?
        if let snapshotPath {
            let t0 = nowNanoseconds()
            try index.save(to: snapshotPath)
            let t1 = nowNanoseconds()
            index = try HNSWIndex.load(from: snapshotPath, traversal: traversal)
            let t2 = nowNanoseconds()
            saveSeconds = Double(t1 - t0) / 1e9
            loadSeconds = Double(t2 - t1) / 1e9
            log(String(format: "snapshot save %.3f s, load %.3f s", saveSeconds!, loadSeconds!))
        }

        // Node id of each dataset row (labels are row ids).
        var nodeOfRow = [UInt32](repeating: 0, count: data.meta.count)
        for row in 0..<data.meta.count { nodeOfRow[row] = index.node(forLabel: UInt64(row))! }
        let capacity = index.nodeCapacity

        let wanted = classes.map { Set($0.split(separator: ",").map(String.init)) }
        let modeList: [FilteredSearchMode] =
            switch modes {
            case "admit": [.admitMatching]
            case "matching": [.matchingOnly]
            default: [.admitMatching, .matchingOnly]
            }
        var runs: [BenchResults.Run] = []
        var bitsetCache: [String: (NodeBitset, Int)] = [:]
        for className in data.classNames where wanted?.contains(className) ?? true {
            var cases = data.cases.filter { $0.className == className }
            if let queries { cases = Array(cases.prefix(queries)) }
            // Predicates are built before timing (as for the libraries in PEERS.md): filter cost not counted.
            var bitsets: [NodeBitset?] = []
            var selectivity = 0.0
            for c in cases {
                guard let filter = c.filter else {
                    bitsets.append(nil)
                    selectivity += 1
                    continue
                }
                let key = c.whereText.isEmpty ? "\(filter)" : c.whereText
                if bitsetCache[key] == nil {
                    let matches = try filter.predicate(over: data.columns)
                    var set = NodeBitset(capacity: capacity)
                    var n = 0
                    for row in 0..<data.meta.count where matches(row) {
                        set.insert(nodeOfRow[row])
                        n += 1
                    }
                    bitsetCache[key] = (set, n)
                }
                bitsets.append(bitsetCache[key]!.0)
                selectivity += Double(bitsetCache[key]!.1) / Double(data.meta.count)
            }
            selectivity /= Double(max(cases.count, 1))
            let filtered = bitsets.contains { $0 != nil }
            for mode in filtered ? modeList : [.admitMatching] {
                for effort in efs {
                    var latencies: [UInt64] = []
                    latencies.reserveCapacity(cases.count)
                    var recallSum = 0.0
                    var distanceSum = 0
                    let wallStart = nowNanoseconds()
                    for (i, c) in cases.enumerated() {
                        let q = data.query(c.qid)
                        let t0 = nowNanoseconds()
                        let result = try q.withUnsafeBufferPointer { buffer in
                            try index.search(
                                buffer, k: 10, searchEffort: effort,
                                filter: bitsets[i].map { .bitset($0) }, mode: mode)
                        }
                        latencies.append(nowNanoseconds() - t0)
                        recallSum += recall(result.hits.map { Int($0.label) }, groundTruth: c.groundTruth)
                        distanceSum += result.stats.distanceComputations
                    }
                    let timing = Timing(latenciesNs: latencies, wallNs: nowNanoseconds() - wallStart)
                    let plan = filtered ? (mode == .admitMatching ? "graph_admit" : "graph_matching_only") : "graph"
                    let run = BenchResults.Run(
                        class: className, effort: effort, queries: cases.count,
                        recall_at_10: recallSum / Double(max(cases.count, 1)), qps: timing.qps,
                        p50_ms: timing.p50, p99_ms: timing.p99, plans: [plan: cases.count],
                        mode: filtered ? mode.rawValue : nil,
                        mean_distance_computations: Double(distanceSum) / Double(max(cases.count, 1)),
                        mean_selectivity: selectivity)
                    runs.append(run)
                    log(
                        className.padding(16) + (run.mode ?? "-").padding(14)
                            + String(
                                format: "ef %4d  recall %.4f  qps %8.1f  p50 %.3f ms  p99 %.3f ms  dc %.0f",
                                effort, run.recall_at_10, run.qps, run.p50_ms, run.p99_ms,
                                run.mean_distance_computations ?? 0))
                }
            }
        }
        var results = BenchResults(
            mode: "ann", engine: "hybridstore",
            dataset: .init(name: data.meta.name, count: data.meta.count, dim: data.meta.dim, metric: data.meta.metric),
            host: .init(
                cores: ProcessInfo.processInfo.activeProcessorCount, cpu: cpuName(),
                kernel: index.kernelLevel.description),
            params: .init(
                connectivity: connectivity, ef_construction: efConstruction, build_threads: threads,
                query_threads: 1),
            build_seconds: loadSnapshot == nil ? buildSeconds : nil, peak_rss_bytes: peakRSSBytes(),
            index_bytes: index.memoryBytes,
            raw_bytes: data.meta.count * data.meta.dim * 4,
            snapshot_save_seconds: saveSeconds, snapshot_load_seconds: loadSeconds, runs: runs)
        results.index_rss_bytes = indexRSS
        try results.write(to: out)
        log(
            "index RSS growth \(indexRSS >> 20) MiB for \((data.meta.count * (data.meta.dim * 4 + (2 * connectivity + 1) * 4)) >> 20) MiB of vectors + level-0 links"
        )
        if let svg { try SVGPlot.write(results: [results], to: svg) }
        log("wrote \(out)")
    }
}

extension String {
    /// Left-aligned in a field of `width` characters.
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
    /// Right-aligned in a field of `width` characters.
    func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
extension TraversalPrecision: ExpressibleByArgument {}
