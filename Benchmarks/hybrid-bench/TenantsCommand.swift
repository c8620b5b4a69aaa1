import ArgumentParser
import Foundation
import HNSW
import HybridStore
#if canImport(Glibc)
import Glibc
#endif

/// `hybrid-bench tenants`: many tenants of Zipf-like sizes in one collection. Imports the rows with a tenant
/// column and, for the baseline, without one (each import in a child process of its own, so their RAM is
/// measured apart), then runs tenant-scoped queries per tenant-size bucket against brute force, times the
/// quota check and dropping tenants.
struct TenantsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants",
        abstract: "Tenants: import with and without a tenant column, scoped queries per tenant size, quota check, drop."
    )

    @Option(help: "Tenants.") var tenants = 1_000_000
    @Option(help: "Rows, spread over the tenants (every tenant gets at least one).") var rows = 2_000_000
    @Option(help: "Vector dimensions.") var dim = 64
    @Option(help: "Results JSON file to write.") var out: String
    @Option(help: "Rows per write transaction.") var batch = 10_000
    @Option(help: "Links per node (M).") var connectivity = 16
    @Option(name: .customLong("ef-construction")) var efConstruction = 200
    @Option(help: "Queries per tenant-size bucket.") var queries = 300
    @Option(help: "Seed of the generated data.") var seed: UInt64 = 42
    @Option(help: "Directory for the two stores (default: the temporary directory).") var directory: String?
    @Option(
        name: .customLong("sweep-efforts"),
        help: "Also run every bucket at these fixed search efforts (comma-separated), as extra runs.")
    var sweepEfforts: String?
    @Option(help: .hidden) var phase: String?
    @Option(name: .customLong("phase-out"), help: .hidden) var phaseOut: String?

    func validate() throws {
        guard tenants >= 1, rows >= tenants else { throw ValidationError("need --rows ≥ --tenants ≥ 1") }
        guard (1...4096).contains(dim) else { throw ValidationError("--dim must be 1…4096") }
    }

    func run() throws {
        if let phase {
            let result = try runPhase(phase)
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            try data.write(to: URL(fileURLWithPath: phaseOut!))
            return
        }
        let base = directory ?? FileManager.default.temporaryDirectory.path
        var merged: [String: Any] = [:]
        for phase in ["plain", "tenants"] {
            let resultPath = base + "/hybrid-bench-tenants-\(getpid())-\(phase).json"
            defer { unlink(resultPath) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            process.arguments =
                [
                    "tenants", "--tenants", "\(tenants)", "--rows", "\(rows)", "--dim", "\(dim)", "--out", out,
                    "--batch", "\(batch)", "--connectivity", "\(connectivity)", "--ef-construction",
                    "\(efConstruction)", "--queries", "\(queries)", "--seed", "\(seed)", "--directory", base,
                    "--phase", phase, "--phase-out", resultPath,
                ] + (sweepEfforts.map { ["--sweep-efforts", $0] } ?? [])
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ValidationError("the \(phase) phase failed") }
            let result =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: resultPath)))
                as! [String: Any]
            for (key, value) in result { merged[phase == "plain" ? key + "_no_tenants" : key] = value }
        }
        let ramTenants = merged["ram_bytes"] as! Int, ramPlain = merged["ram_bytes_no_tenants"] as! Int
        merged["bytes_per_tenant"] = Double(ramTenants - ramPlain) / Double(tenants)
        let importTenants = merged["import_seconds"] as! Double,
            importPlain = merged["import_seconds_no_tenants"] as! Double
        merged["import_ratio"] = importTenants / importPlain
        // The FORMAT.md envelope, then this mode's keys.
        let envelope = BenchResults(
            mode: "tenants", engine: "hybridstore",
            dataset: .init(name: "tenants-zipf-\(tenants)-\(rows)", count: rows, dim: dim, metric: "l2"),
            host: .init(cores: ProcessInfo.processInfo.activeProcessorCount, cpu: cpuName(), kernel: nil),
            params: .init(
                connectivity: connectivity, ef_construction: efConstruction,
                build_threads: ProcessInfo.processInfo.activeProcessorCount, query_threads: 1),
            runs: [])
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(envelope)) as! [String: Any]
        let filePages = merged["file_pages_bytes"] as! Int,
            filePagesPlain = merged["file_pages_bytes_no_tenants"] as! Int
        merged["file_pages_bytes_per_tenant"] = Double(filePages - filePagesPlain) / Double(tenants)
        for key in ["runs_no_tenants", "small_p50_ms_no_tenants", "large_p50_ms_no_tenants", "min_recall_no_tenants"] {
            merged[key] = nil
        }
        for (key, value) in merged { json[key] = value }
        json["tenants"] = tenants
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: out))
        log(
            String(
                format: "import %.1f s with tenants, %.1f s without (%.3f×); tenancy RAM %.1f bytes per tenant",
                importTenants, importPlain, importTenants / importPlain, merged["bytes_per_tenant"] as! Double))
        log("wrote \(out)")
    }

    /// One child: generate the data, import it (with or without the tenant column), and for `tenants` run
    /// the queries, the quota-check timing and the drops.
    private func runPhase(_ phase: String) throws -> [String: Any] {
        let withTenants = phase == "tenants"
        let data = TenantData(tenants: tenants, rows: rows, dim: dim, seed: seed)
        let path =
            (directory ?? FileManager.default.temporaryDirectory.path) + "/hybrid-bench-tenants-store-\(getpid())"
        try? FileManager.default.removeItem(atPath: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = Configuration()
        configuration.checkpointEveryChanges = 0
        let hs = try HybridStore(directory: path, create: true, configuration: configuration)
        defer { hs.close() }
        let schema = Schema(
            vector: VectorSpec(
                dimensions: dim, metric: .l2, connectivity: connectivity,
                constructionEffort: efConstruction),
            id: .integer,
            columns: withTenants ? [.text("tenant", nullable: false, filterable: true)] : [],
            tenantColumn: withTenants ? "tenant" : nil)
        let c = try hs.createCollection("chunks", schema: schema)
        releaseFreedMemory()
        let ramBefore = rssBytes("RssAnon:"), fileBefore = rssBytes("RssFile:")
        log("\(phase): importing \(rows) rows" + (withTenants ? " of \(tenants) tenants" : " (no tenant column)"))
        let t0 = nowNanoseconds()
        var start = 0
        while start < rows {
            let end = min(rows, start + batch)
            try hs.write { tx in
                for row in start..<end {
                    let vector = Array(data.vector(row))
                    try tx.insert(
                        .int(Int64(row)), into: c, vector: vector,
                        values: withTenants ? ["tenant": .text(TenantData.name(Int(data.owner[row])))] : [:])
                }
            }
            start = end
            if start % (batch * 20) == 0 || start == rows {
                log(String(format: "  %d rows, %.1f s", start, seconds(since: t0)))
            }
        }
        let importSeconds = seconds(since: t0)
        releaseFreedMemory()
        // Anonymous memory: what the store holds. File pages (SQLite's memory-mapped database) are the OS's
        // page cache, reclaimable, and reported apart.
        let ramBytes = rssBytes("RssAnon:") - ramBefore, fileBytes = rssBytes("RssFile:") - fileBefore
        log(
            String(
                format: "\(phase): import %.1f s, RAM +%.1f MiB (file pages +%.1f MiB)", importSeconds,
                Double(ramBytes) / 1048576, Double(fileBytes) / 1048576))
        var result: [String: Any] = [
            "import_seconds": importSeconds, "ram_bytes": ramBytes, "file_pages_bytes": fileBytes,
        ]
        guard withTenants else { return result }

        // Queries per bucket: a random tenant of the bucket, a query from its topics; truth by brute force.
        let buckets: [(String, ClosedRange<Int>)] = [
            ("small", 1...10), ("medium", 11...10_000), ("large", 10_001...Int.max),
        ]
        var rng = SplitMix64(seed: seed &+ 1)
        var runs: [[String: Any]] = []
        var minRecall = 1.0
        for (bucket, range) in buckets {
            let members = (0..<tenants).filter { range.contains(data.sizes[$0]) }
            guard !members.isEmpty else { continue }
            var latencies: [UInt64] = []
            var recallSum = 0.0
            var plans: [String: Int] = [:]
            var scored = 0
            var cases: [(tenant: Int, query: [Float], truth: [Int])] = []
            for _ in 0..<queries {
                let t = members[Int(rng.next() % UInt64(members.count))]
                let q = data.query(forTenant: t, rng: &rng)
                cases.append((t, q, data.nearest(q, ofTenant: t, k: 10)))
            }
            for effort in [nil] + (try sweepEfforts.map(parseIntList) ?? []).map(Optional.some) {
                latencies = []
                recallSum = 0
                plans = [:]
                scored = 0
                let wall = nowNanoseconds()
                for item in cases {
                    let scope = try hs.tenant(TenantData.name(item.tenant))
                    let began = nowNanoseconds()
                    let result = try scope.query(
                        c, near: item.query, k: 10, where: nil, options: QueryOptions(searchEffort: effort))
                    let (hits, e) = (result.hits, result.explanation)
                    latencies.append(nowNanoseconds() - began)
                    let ids = hits.map { hit -> Int in if case .int(let v) = hit.id { Int(v) } else { -1 } }
                    let want = Set(item.truth)
                    recallSum += Double(ids.filter { want.contains($0) }.count) / Double(max(1, want.count))
                    plans[e.ran.rawValue, default: 0] += 1
                    scored += e.distanceComputations
                }
                let timing = Timing(latenciesNs: latencies, wallNs: nowNanoseconds() - wall)
                let recall = recallSum / Double(cases.count)
                if effort == nil { minRecall = min(minRecall, recall) }
                let sizes = members.map { data.sizes[$0] }
                runs.append([
                    "class": bucket, "effort": effort.map { $0 as Any } ?? NSNull(), "queries": cases.count,
                    "recall_at_10": recall,
                    "qps": timing.qps, "p50_ms": timing.p50, "p99_ms": timing.p99, "plans": plans,
                    "tenants_in_bucket": members.count, "rows_in_bucket": sizes.reduce(0, +),
                    "max_tenant_rows": sizes.max() ?? 0,
                    "mean_distance_computations": Double(scored) / Double(cases.count),
                ])
                if effort == nil { result["\(bucket)_p50_ms"] = timing.p50 }
                log(
                    String(
                        format: "  %-6@ %7d tenants  ef %@  recall %.4f  p50 %.3f ms  p99 %.3f ms  qps %8.1f  plans %@",
                        bucket as NSString, members.count, (effort.map(String.init) ?? "auto") as NSString, recall,
                        timing.p50,
                        timing.p99, timing.qps, "\(plans)" as NSString))
            }
        }
        result["runs"] = runs
        result["min_recall"] = minRecall
        result["tenants_stored"] = try hs.tenantCount()

        // The quota check: the same single-batch writes into a collection with and without a tenant column
        // (the tenant has quotas), alternating, in the same store.
        let small = Schema(
            vector: VectorSpec(
                dimensions: dim, metric: .l2, connectivity: connectivity, constructionEffort: efConstruction),
            id: .integer, columns: [.text("tenant", nullable: false, filterable: true)], tenantColumn: "tenant")
        let quoted = try hs.createCollection("quota_bench", schema: small)
        var plainSchema = small
        plainSchema.tenantColumn = nil
        let plain = try hs.createCollection("plain_bench", schema: plainSchema)
        try hs.setQuota(TenantQuota(maxRows: 1 << 40, maxBytes: 1 << 50), for: "quota-bench")
        let scope = try hs.tenant("quota-bench")
        var tenantNs: UInt64 = 0, plainNs: UInt64 = 0
        let perRound = 500, rounds = 10
        for round in 0..<rounds {
            for (k, collection) in [plain, quoted].enumerated() {
                let began = nowNanoseconds()
                let body = { (tx: WriteTransaction) throws in
                    for i in 0..<perRound {
                        let row = round * perRound + i
                        try tx.insert(
                            .int(Int64(row)), into: collection, vector: Array(data.vector(row)),
                            values: ["tenant": .text("quota-bench")])
                    }
                }
                if k == 0 { try hs.write(body) } else { try scope.write(body) }
                if k == 0 { plainNs += nowNanoseconds() - began } else { tenantNs += nowNanoseconds() - began }
            }
        }
        let writes = Double(perRound * rounds)
        result["quota_check_overhead_us_per_row"] = (Double(tenantNs) - Double(plainNs)) / writes / 1000
        result["quota_checked_write_ratio"] = Double(tenantNs) / Double(plainNs)
        log(
            String(
                format: "  quota-checked writes %.1f µs/row vs %.1f µs/row without tenants (%.3f×)",
                Double(tenantNs) / writes / 1000, Double(plainNs) / writes / 1000, Double(tenantNs) / Double(plainNs)))

        // Dropping: the largest tenant, and the median of ten small ones.
        let largest = (0..<tenants).max { data.sizes[$0] < data.sizes[$1] }!
        var began = nowNanoseconds()
        let droppedLarge = try hs.dropTenant(TenantData.name(largest))
        result["drop_large_ms"] = Double(nowNanoseconds() - began) / 1e6
        result["drop_large_rows"] = droppedLarge
        var smallDrops: [Double] = []
        for t in (0..<tenants).filter({ data.sizes[$0] <= 10 }).suffix(10) {
            began = nowNanoseconds()
            try hs.dropTenant(TenantData.name(t))
            smallDrops.append(Double(nowNanoseconds() - began) / 1e6)
        }
        result["drop_small_ms"] = smallDrops.sorted()[smallDrops.count / 2]
        log(
            String(
                format: "  drop: largest tenant (%d rows) %.1f ms, small tenant %.2f ms",
                droppedLarge, result["drop_large_ms"] as! Double, result["drop_small_ms"] as! Double))
        result["store_bytes"] = directoryBytes(path)
        return result
    }
}

/// The generated rows: tenant sizes Zipf-like (every tenant one row, the rest by rank^-1.3, so a few
/// tenants hold 100k+ rows and most 1–10), rows shuffled across tenants, vectors drawn around each tenant's
/// own topics (70 %) or any topic (30 %).
struct TenantData {
    let tenants: Int
    let rows: Int
    let dim: Int
    let seed: UInt64
    var sizes: [Int]
    var owner: [Int32]
    var vectors: [Float]
    /// Rows of each tenant: `members[offsets[t] ..< offsets[t + 1]]`.
    var offsets: [Int]
    var members: [Int32]
    var centers: [Float]
    static let topics = 1024

    static func name(_ tenant: Int) -> String { "t" + String(tenant) }

    init(tenants: Int, rows: Int, dim: Int, seed: UInt64) {
        self.tenants = tenants
        self.rows = rows
        self.dim = dim
        self.seed = seed
        var rng = SplitMix64(seed: seed)
        let weights = (0..<tenants).map { pow(Double($0 + 1), -1.3) }
        let total = weights.reduce(0, +)
        let extra = Double(rows - tenants)
        sizes = weights.map { 1 + Int(extra * $0 / total) }
        var left = rows - sizes.reduce(0, +)
        while left > 0 {
            sizes[Int(rng.next() % UInt64(tenants))] += 1
            left -= 1
        }
        owner = []
        owner.reserveCapacity(rows)
        for (t, n) in sizes.enumerated() { owner.append(contentsOf: repeatElement(Int32(t), count: n)) }
        for i in stride(from: rows - 1, to: 0, by: -1) { owner.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        offsets = [0]
        offsets.reserveCapacity(tenants + 1)
        for n in sizes { offsets.append(offsets.last! + n) }
        var fill = Array(offsets.dropLast())
        members = [Int32](repeating: 0, count: rows)
        for (row, t) in owner.enumerated() {
            members[fill[Int(t)]] = Int32(row)
            fill[Int(t)] += 1
        }
        centers = (0..<Self.topics * dim).map { _ in Float(rng.next() % 2_000_001) / 1_000_000 - 1 }
        vectors = [Float](repeating: 0, count: rows * dim)
        for row in 0..<rows {
            let topic = Self.topic(forTenant: Int(owner[row]), rng: &rng)
            for d in 0..<dim { vectors[row * dim + d] = centers[topic * dim + d] + Self.noise(&rng) }
        }
    }

    /// 70 %: one of the tenant's eight topics; else any.
    static func topic(forTenant t: Int, rng: inout SplitMix64) -> Int {
        let r = rng.next()
        if r % 10 < 7 { return (t &* 7919 &+ Int((r >> 8) % 8) &* 131) % topics }
        return Int((r >> 8) % UInt64(topics))
    }

    /// Roughly normal, σ ≈ 0.25.
    static func noise(_ rng: inout SplitMix64) -> Float {
        let r = rng.next()
        let a = Float(r & 0xFFFF), b = Float((r >> 16) & 0xFFFF), c = Float((r >> 32) & 0xFFFF)
        return ((a + b + c) / 65535 - 1.5) * 0.5
    }

    func vector(_ row: Int) -> ArraySlice<Float> { vectors[row * dim..<(row + 1) * dim] }

    func query(forTenant t: Int, rng: inout SplitMix64) -> [Float] {
        let topic = Self.topic(forTenant: t, rng: &rng)
        return (0..<dim).map { centers[topic * dim + $0] + Self.noise(&rng) }
    }

    /// The k nearest rows of a tenant, by brute force.
    func nearest(_ q: [Float], ofTenant t: Int, k: Int) -> [Int] {
        var best: [(Float, Int)] = []
        for i in offsets[t]..<offsets[t + 1] {
            let row = Int(members[i])
            var sum: Float = 0
            for d in 0..<dim {
                let x = vectors[row * dim + d] - q[d]
                sum += x * x
            }
            if best.count < k {
                best.append((sum, row))
                best.sort { $0.0 < $1.0 }
            } else if sum < best[k - 1].0 {
                best[k - 1] = (sum, row)
                best.sort { $0.0 < $1.0 }
            }
        }
        return best.map(\.1)
    }
}

/// A line of /proc/self/status in bytes (e.g. "RssAnon:").
func rssBytes(_ key: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix(key) {
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }
    return 0
}

/// glibc's `malloc_trim(0)`: returns freed heap pages to the system, so RSS measures what is still in use.
func releaseFreedMemory() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(nil, "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}
