import ArgumentParser
import Foundation
import HybridStore
import Synchronization

/// `hybrid-bench service`: the example RAG service (Examples/RAGService) under `wrk` on loopback, against the
/// library's own QPS for the same calls in the same run.
///
/// The dataset is imported with every row owned by one tenant, so the service's tenant-scoped searches cover the
/// whole set and the dataset's filters apply unchanged. For each filter class: the library's QPS with 2 and with
/// `--connections` tasks awaiting `TenantScope.query` (the call the service makes), then the store is closed, the
/// service started on it, and `wrk` posts the same searches (JSON bodies with the vector as an array) through a
/// Lua script. CPU time per request of the service, of wrk and of the library, and the store's own query time
/// inside the service (from its /metrics), say where the time goes; and a trivial GET under the same wrk (the HTTP
/// ceiling) bounds the ratio any search could reach here: ceiling ÷ (ceiling + library QPS). With `--rounds N` the
/// library and the service take turns N times, each round's ratio is taken within it, and the median is reported
/// (this machine's speed drifts by tens of percent between minutes).
struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "The example HTTP service under wrk (loopback) against the library's QPS in the same run.")

    @Option(help: "Dataset directory (FORMAT.md).") var dataset: String
    @Option(help: "Results JSON file to write.") var out: String?
    @Option(help: "Filter classes (comma-separated).") var classes = "none,price_lt_10pct,price_lt_1pct"
    @Option(help: "The built rag-service executable.") var service = "Examples/RAGService/.build/release/rag-service"
    @Option(help: "More arguments for the service (space-separated), e.g. \"--event-loops 1\".")
    var serviceArguments = ""
    @Option(help: "The wrk executable.") var wrk = "wrk"
    @Option(help: "wrk threads.") var threads = 2
    @Option(help: "wrk connections (and the library's concurrent tasks).") var connections = 64
    @Option(help: "Seconds per measurement.") var seconds = 10.0
    @Option(help: "Reuse a store directory made by an earlier run of this command.") var reuse: String?
    @Option(help: "How requests carry the vector: arrays (JSON numbers), base64 (float32), or both (comma-separated).")
    var encodings = "arrays,base64"
    @Option(help: "The library's share of one core for online recall checks (Configuration.recallCheckCPUShare).")
    var recallCheckShare = Configuration().recallCheckCPUShare

    static let tenant = "bench"
    static let key = "bench-key"

    @Option(
        help:
            "Rounds of library then service, alternating (this machine's speed drifts: a ratio is taken within each round, and the median reported)."
    )
    var rounds = 1

    struct ServiceRun: Codable {
        var encoding: String
        var round = 0
        var serviceRPS = 0.0, serviceP50Ms = 0.0, serviceP99Ms = 0.0, serviceErrors = 0
        var serviceCPUMicrosPerRequest = 0.0, wrkCPUMicrosPerRequest = 0.0, storeMicrosPerQueryInService = 0.0
        var serviceOverLibrary = 0.0
        /// The most `serviceOverLibrary` could be, were searches to cost the service nothing but the query and the
        /// HTTP work of a trivial request: ceiling ÷ (ceiling + library), both sharing this machine's cores.
        var ratioBound = 0.0
    }

    struct LibraryRun: Codable {
        var qps2 = 0.0, qpsMany = 0.0, cpuMicrosPerQuery = 0.0
        /// Online recall checks during the measurement with `connections` tasks: per second, and their time as a
        /// share of one core.
        var recallChecksPerSecond = 0.0, recallCheckCoreShare = 0.0
        var best: Double { max(qps2, qpsMany) }
    }

    struct ClassResult: Codable {
        var className: String
        /// The first round's library numbers (kept for readers of earlier results), and every round's.
        var libraryQPS2 = 0.0, libraryQPSMany = 0.0, libraryCPUMicrosPerQuery = 0.0
        var library: [LibraryRun] = []
        var service: [ServiceRun] = []
        /// Per encoding: the median over rounds of each round's service ÷ library.
        var medianServiceOverLibrary: [String: Double] = [:]
    }

    func run() throws {
        guard FileManager.default.isExecutableFile(atPath: service) else {
            throw ValidationError(
                "no rag-service at \(service): build it with `cd Examples/RAGService && swift build -c release`")
        }
        guard rounds >= 1 else { throw ValidationError("--rounds ≥ 1") }
        let data = try Dataset.load(dataset)
        let path = reuse ?? FileManager.default.temporaryDirectory.path + "/hybrid-bench-service-\(getpid())"
        if reuse == nil { try? FileManager.default.removeItem(atPath: path) }
        defer { if reuse == nil { try? FileManager.default.removeItem(atPath: path) } }
        let names = classes.split(separator: ",").map(String.init)
        var results = names.map { ClassResult(className: $0) }
        let work = FileManager.default.temporaryDirectory.path + "/hybrid-bench-service-files-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var ceilings: [Double] = []
        for round in 0..<rounds {
            // The library, first (the store's lock admits one process at a time).
            let library = try measureLibrary(data, path: path, names: names)
            for i in names.indices {
                results[i].library.append(library[i])
                if round == 0 {
                    (results[i].libraryQPS2, results[i].libraryQPSMany, results[i].libraryCPUMicrosPerQuery) =
                        (library[i].qps2, library[i].qpsMany, library[i].cpuMicrosPerQuery)
                }
            }
            let (ceiling, runs) = try measureService(
                data, path: path, work: work, names: names, library: library, round: round)
            ceilings.append(ceiling)
            for i in names.indices { results[i].service += runs[i] }
        }
        for i in names.indices {
            for encoding in Set(results[i].service.map(\.encoding)) {
                let ratios = results[i].service.filter { $0.encoding == encoding }.map(\.serviceOverLibrary).sorted()
                let median =
                    ratios.count % 2 == 1
                    ? ratios[ratios.count / 2] : (ratios[ratios.count / 2 - 1] + ratios[ratios.count / 2]) / 2
                results[i].medianServiceOverLibrary[encoding] = median
                if rounds > 1 {
                    log(
                        String(
                            format: "%@ (%@): service ÷ library by round %@, median %.2f", names[i], encoding,
                            ratios.map { String(format: "%.2f", $0) }.joined(separator: " "), median))
                }
            }
        }
        if let out {
            let json: [String: Any] = [
                "mode": "service", "engine": "hybridstore", "dataset": data.meta.name, "dim": data.meta.dim,
                "count": data.meta.count, "wrk_threads": threads, "connections": connections, "seconds": seconds,
                "rounds": rounds, "http_ceiling_rps": ceilings.first ?? 0, "http_ceiling_rps_by_round": ceilings,
                "cores": ProcessInfo.processInfo.activeProcessorCount,
                "classes": try JSONSerialization.jsonObject(with: JSONEncoder().encode(results)),
            ]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: out))
            log("wrote \(out)")
        }
    }

    /// The library's QPS per class with 2 and with `connections` tasks awaiting `TenantScope.query`, the store
    /// opened (and on the first call without `--reuse`, imported) here and closed before returning.
    func measureLibrary(_ data: Dataset, path: String, names: [String]) throws -> [LibraryRun] {
        var configuration = Configuration()
        configuration.checkpointEveryChanges = 0
        configuration.recallCheckCPUShare = recallCheckShare
        let store = try HybridStore(directory: path, create: true, configuration: configuration)
        defer { store.close() }
        let collection: CollectionRef
        if let existing = try? store.collection("bench") {
            collection = existing
        } else {
            var schema = StoreImport.inferSchema(data, connectivity: 16, efConstruction: 200)
            schema.columns.append(.text("owner", nullable: false, filterable: true))
            schema.tenantColumn = "owner"
            log("importing \(data.meta.count) rows of \(data.meta.dim) dimensions")
            collection = try StoreImport.run(
                data, into: store, name: "bench", schema: schema,
                extraValues: ["owner": .text(Self.tenant)])
            try store.checkpoint()
        }
        let scope = try store.tenant(Self.tenant)
        var out: [LibraryRun] = []
        for name in names {
            let cases = try data.cases.filter { $0.className == name }.map { c in
                (Array(data.query(c.qid)), c.whereText.isEmpty ? nil : try store.parseFilter(c.whereText))
            }
            guard !cases.isEmpty else { throw ValidationError("no queries of class \(name)") }
            let call: @Sendable (Int) async -> Void = { i in
                let (q, f) = cases[i % cases.count]
                _ = try? await scope.query(
                    collection, near: q, k: 10, where: f, options: QueryOptions(),
                    returning: [], explain: false)
            }
            var r = LibraryRun()
            _ = measureTasks(2, seconds: 1, call)  // warm
            r.qps2 = measureTasks(2, seconds: seconds, call)
            let cpu0 = processCPUSeconds()
            let checks0 = store.recallCheckTotals
            let before = nowNanoseconds()
            r.qpsMany = measureTasks(connections, seconds: seconds, call)
            let elapsed = Double(nowNanoseconds() - before) / 1e9
            let calls = r.qpsMany * elapsed
            r.cpuMicrosPerQuery = (processCPUSeconds() - cpu0) / max(calls, 1) * 1e6
            let checks1 = store.recallCheckTotals
            r.recallChecksPerSecond = Double(checks1.checks - checks0.checks) / elapsed
            r.recallCheckCoreShare = (checks1.seconds - checks0.seconds) / elapsed
            log(
                String(
                    format:
                        "%@ library: %.0f QPS with 2 tasks, %.0f with %d (%.0f µs CPU a query; online checks %.1f a second, %.1f %% of one core)",
                    name, r.qps2, r.qpsMany, connections, r.cpuMicrosPerQuery, r.recallChecksPerSecond,
                    r.recallCheckCoreShare * 100))
            out.append(r)
        }
        return out
    }

    /// The service started on the store, the HTTP ceiling, and wrk's searches per class and encoding against
    /// `library` (this round's); the service stopped (gracefully) before returning.
    func measureService(
        _ data: Dataset, path: String, work: String, names: [String], library: [LibraryRun], round: Int
    ) throws -> (ceiling: Double, runs: [[ServiceRun]]) {
        try #"{"keys": {"\#(Self.key)": "\#(Self.tenant)"}}"#.write(
            toFile: work + "/keys.json", atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: service)
        server.arguments =
            ["--store", path, "--keys", work + "/keys.json", "--port", "0", "--log-level", "warning"]
            + serviceArguments.split(separator: " ").map(String.init)
        let output = Pipe()
        server.standardOutput = output
        try server.run()
        defer {
            if server.isRunning {
                server.terminate()  // SIGTERM: a graceful shutdown that checkpoints
                server.waitUntilExit()
            }
        }
        let port = try readPort(output.fileHandleForReading)
        let base = "http://127.0.0.1:\(port)"
        log("rag-service pid \(server.processIdentifier) on \(base)")
        // The HTTP ceiling: a trivial GET (no body, no JSON, no store) under the same wrk. A request costs the
        // service at least that, beside its query, on the cores wrk and the service share.
        let health = work + "/health.lua"
        try #"request = function() return wrk.format("GET", "/health") end"#.write(
            toFile: health, atomically: true, encoding: .utf8)
        _ = try runWrk(script: health, url: base, seconds: 1)  // warm
        let ceiling = try runWrk(script: health, url: base, seconds: seconds).rps
        log(String(format: "HTTP ceiling: GET /health %.0f req/s", ceiling))
        let encodingList = encodings.split(separator: ",").map(String.init)
        var runs: [[ServiceRun]] = names.map { _ in [] }
        for (i, name) in names.enumerated() {
            for encoding in encodingList {
                let script = work + "/\(name)-\(encoding).lua"
                try luaScript(
                    data.cases.filter { $0.className == name }.map { c in
                        searchBody(data.query(c.qid), filter: c.whereText, base64: encoding == "base64")
                    }
                ).write(toFile: script, atomically: true, encoding: .utf8)
                _ = try runWrk(script: script, url: base, seconds: 1)  // warm
                let store0 = try storeQuerySeconds(base)
                let cpu0 = try serviceCPUSeconds(server.processIdentifier)
                let children0 = childCPUSeconds()
                let w = try runWrk(script: script, url: base, seconds: seconds)
                let cpu1 = try serviceCPUSeconds(server.processIdentifier)
                let store1 = try storeQuerySeconds(base)
                let requests = max(w.requests, 1)
                var r = ServiceRun(encoding: encoding, round: round)
                r.serviceRPS = w.rps
                r.serviceP50Ms = w.p50Ms
                r.serviceP99Ms = w.p99Ms
                r.serviceErrors = w.errors
                r.serviceCPUMicrosPerRequest = (cpu1 - cpu0) / requests * 1e6
                r.wrkCPUMicrosPerRequest = (childCPUSeconds() - children0) / requests * 1e6
                r.storeMicrosPerQueryInService =
                    (store1.seconds - store0.seconds) / max(store1.count - store0.count, 1) * 1e6
                r.serviceOverLibrary = w.rps / library[i].best
                r.ratioBound = ceiling / (ceiling + library[i].best)
                runs[i].append(r)
                log(
                    String(
                        format:
                            "%@ service (%@): %.0f req/s (%.2f× the library's best; "
                            + "at most %.2f× by the HTTP ceiling), "
                            + "p50 %.2f ms, p99 %.2f ms, %d errors; "
                            + "CPU a request: service %.0f µs (store %.0f µs of wall time a query), wrk %.0f µs; library %.0f µs",
                        name, encoding, r.serviceRPS, r.serviceOverLibrary, r.ratioBound, r.serviceP50Ms,
                        r.serviceP99Ms,
                        r.serviceErrors,
                        r.serviceCPUMicrosPerRequest, r.storeMicrosPerQueryInService, r.wrkCPUMicrosPerRequest,
                        library[i].cpuMicrosPerQuery))
                guard w.errors == 0 else { throw ValidationError("\(w.errors) requests of class \(name) failed") }
            }
        }
        return (ceiling, runs)
    }

    /// The JSON body the service takes for one search (the vector as an array of numbers, or base64 float32).
    func searchBody(_ vector: ArraySlice<Float>, filter: String, base64: Bool) -> String {
        var object: [String: Any] = ["k": 10]
        if !filter.isEmpty { object["filter"] = filter }
        if base64 {
            var bytes: [UInt8] = []
            for x in vector { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
            object["vector_base64"] = Data(bytes).base64EncodedString()
        }
        let rest = String(
            decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        guard !base64 else { return rest }
        // Floats as a client writes them: the shortest text that reads back the same float.
        return #"{"vector":["# + vector.map { "\($0)" }.joined(separator: ",") + "]," + rest.dropFirst()
    }

    /// A wrk script that posts the bodies in turn.
    func luaScript(_ bodies: [String]) -> String {
        var lua = "local bodies = {\n"
        for body in bodies { lua += "[==[\(body)]==],\n" }
        lua += """
            }
            local i = 0
            local headers = {["Authorization"] = "Bearer \(Self.key)", ["Content-Type"] = "application/json"}
            request = function()
              i = i + 1
              return wrk.format("POST", "/v1/collections/bench/search", headers, bodies[(i % #bodies) + 1])
            end

            """
        return lua
    }

    struct WrkResult { var rps = 0.0, requests = 0.0, p50Ms = 0.0, p99Ms = 0.0, errors = 0 }

    func runWrk(script: String, url: String, seconds: Double) throws -> WrkResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            wrk, "-t\(threads)", "-c\(connections)", "-d\(max(1, Int(seconds.rounded())))s", "--latency",
            "-s", script, url,
        ]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ValidationError("wrk failed:\n\(text)") }
        var r = WrkResult()
        func milliseconds(_ s: Substring) -> Double {
            let units: [(String, Double)] = [("us", 1e-3), ("ms", 1), ("s", 1e3), ("m", 6e4)]
            for (unit, scale) in units where s.hasSuffix(unit) { return (Double(s.dropLast(unit.count)) ?? 0) * scale }
            return 0
        }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.first == "Requests/sec:", fields.count > 1 { r.rps = Double(fields[1]) ?? 0 }
            if fields.count >= 2, fields[1] == "requests", fields[2] == "in" { r.requests = Double(fields[0]) ?? 0 }
            if fields.first == "50%", fields.count > 1 { r.p50Ms = milliseconds(fields[1]) }
            if fields.first == "99%", fields.count > 1 { r.p99Ms = milliseconds(fields[1]) }
            if line.contains("Non-2xx or 3xx responses:"), let n = fields.last.flatMap({ Int($0) }) { r.errors += n }
            if line.contains("Socket errors:") {
                r.errors += fields.compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }.reduce(0, +)
            }
        }
        return r
    }

    /// Waits for the service's "listening on HOST:PORT" line.
    func readPort(_ handle: FileHandle) throws -> Int {
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let chunk = handle.availableData
            guard !chunk.isEmpty else { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on") }),
                let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            {
                return port
            }
        }
        throw ValidationError("the service did not start: \(text)")
    }

    /// The sum and count of the store's query-duration histogram, from the service's /metrics.
    func storeQuerySeconds(_ base: String) throws -> (seconds: Double, count: Double) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["curl", "-sf", base + "/metrics"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        var seconds = 0.0, count = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix("hybridstore_query_duration_seconds_") {
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            if line.hasPrefix("hybridstore_query_duration_seconds_sum") { seconds += value }
            if line.hasPrefix("hybridstore_query_duration_seconds_count") { count += value }
        }
        return (seconds, count)
    }
}

/// User plus system CPU seconds of this process.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
        usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// User plus system CPU seconds of the children this process has waited for.
func childCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
        usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// User plus system CPU seconds of another process, from /proc.
func serviceCPUSeconds(_ pid: Int32) throws -> Double {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    // Fields after the command name (which may hold spaces) end with ')'; utime and stime are fields 14 and 15.
    guard let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
}
