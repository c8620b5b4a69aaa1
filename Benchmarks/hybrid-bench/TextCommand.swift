import ArgumentParser
import Foundation
import HNSW
import HybridStore

/// `hybrid-bench text`: keyword search (FTS5 + BM25) and hybrid retrieval against the vector search and a
/// bare FTS5 query on the same database, and the import cost of a searchable column.
struct TextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text",
        abstract:
            "Keyword and hybrid search: latency against vector-only and bare FTS5, and import cost of a searchable column.",
        discussion: """
            Uses the dataset's text column (--field) if it has one; otherwise generates one per row, seeded: the
            row's category word (correlated with the vectors, like the category itself) and 12 words drawn from a
            Zipf(1.07) vocabulary of 20,000 words. Keyword queries are two words of mid frequency (ranks 30–3,000),
            one per query vector.
            """)

    @Option(help: "Dataset directory (FORMAT.md).") var dataset: String
    @Option(help: "Results JSON file to write.") var out: String?
    @Option(help: "The dataset's text column (default: generate one).") var field: String?
    @Option(help: "Use only the first N queries.") var queries: Int?
    @Option(name: .short) var k = 10
    @Option(help: "Timed passes over the queries (the median of each query's times is kept).") var passes = 3

    struct Results: Codable {
        var program = "hybrid-bench"
        var mode = "text"
        var dataset: String
        var rows: Int
        var queries: Int
        var k: Int
        var generated_text: Bool
        var import_seconds_plain: Double
        var import_seconds_searchable: Double
        var import_ratio: Double
        var p50_ms: [String: Double]
        var p99_ms: [String: Double]
        /// Each query's six kinds in a row (vector, keyword, the three FTS5 references, hybrid).
        var hybrid_over_vector_p50: Double
        /// Vector, keyword and hybrid searches taking turns over consecutive queries (a service's stream).
        var hybrid_over_vector_p50_mixed: Double
        /// Each kind as a steady stream of its own queries.
        var hybrid_over_vector_p50_steady: Double
        var keyword_over_bare_fts5_p50: Double
        var mean_keyword_candidates: Double
        var mean_overlap: Double
        /// Within explained hybrid queries: each arm's time, and the whole query's.
        var mean_hybrid_arm_ms: [String: Double]
    }

    func run() throws {
        var data = try Dataset.load(dataset)
        let count = data.meta.count
        var generated = false
        var vocabularyWeights: [Double] = []
        if let field {
            guard data.columns.byName[field] != nil else { throw BenchError("the dataset has no column `\(field)`") }
        } else {
            generated = true
            var rng = SplitMix64(seed: 2026)
            vocabularyWeights = (1...20_000).map { 1 / pow(Double($0), 1.07) }
            let sampler = ZipfSampler(weights: vocabularyWeights)
            let category = data.columns.byName["category"]
            data.columns.byName["text"] = (0..<count).map { row in
                var words = (0..<12).map { _ in "w\(sampler.draw(&rng))" }
                if let c = category?[row], case .text(let name) = c { words.insert("topic" + name, at: 0) }
                if let c = category?[row], case .integer(let n) = c { words.insert("topic\(n)", at: 0) }
                return .text(words.joined(separator: " "))
            }
            data.columns.order.append("text")
        }
        let textColumn = field ?? "text"
        let queryCount = min(queries ?? data.meta.queryCount, data.meta.queryCount)
        var rng = SplitMix64(seed: 7)
        let queryTexts: [String] = (0..<queryCount).map { _ in
            if generated {
                return (0..<2).map { _ in "w\(Int.random(in: 30...3_000, using: &rng))" }.joined(separator: " ")
            }
            // A dataset's own text: two words of a random row's text.
            let row = Int.random(in: 0..<count, using: &rng)
            guard case .text(let t)? = data.columns.byName[textColumn]?[row] else { return "the" }
            let words = t.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
            return words.isEmpty ? "the" : (0..<2).map { _ in words.randomElement(using: &rng)! }.joined(separator: " ")
        }

        var configuration = Configuration()
        configuration.checkpointEveryChanges = 0
        func importInto(searchable: Bool) throws -> (String, Double) {
            let path = FileManager.default.temporaryDirectory.path + "/hybrid-bench-text-\(searchable)-\(getpid())"
            try? FileManager.default.removeItem(atPath: path)
            var schema = StoreImport.inferSchema(data, connectivity: 16, efConstruction: 200)
            if let i = schema.columns.firstIndex(where: { $0.name == textColumn }) {
                schema.columns[i].filterable = false
                schema.columns[i].searchable = searchable
            }
            let hs = try HybridStore(directory: path, create: true, configuration: configuration)
            defer { hs.close() }
            let t = nowNanoseconds()
            _ = try StoreImport.run(data, into: hs, name: "bench", schema: schema)
            try hs.checkpoint()
            return (path, seconds(since: t))
        }
        let (plainPath, plainSeconds) = try importInto(searchable: false)
        try? FileManager.default.removeItem(atPath: plainPath)
        let (path, searchableSeconds) = try importInto(searchable: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        log(
            String(
                format: "import: %.2f s plain, %.2f s with a searchable column (×%.2f)", plainSeconds,
                searchableSeconds,
                searchableSeconds / plainSeconds))

        let hs = try HybridStore(directory: path, configuration: configuration)
        defer { hs.close() }
        let c = try hs.collection("bench")
        // A bare FTS5 query on the same database: FTS5's own ranking, nothing around it.
        let bare = try Connection(path: path + "/store.sqlite", create: false, readOnly: true)
        let bareSQL =
            "SELECT rowid, bm25(hs_text_1) FROM hs_text_1 WHERE hs_text_1 MATCH ?1 ORDER BY bm25(hs_text_1) LIMIT ?2"
        // The same, also reading each hit's id (what any answer needs): the floor of the keyword arm's SQL.
        let bareIDsSQL =
            "SELECT m.rowid, t.id FROM (SELECT rowid, bm25(hs_text_1) AS s FROM hs_text_1 WHERE hs_text_1 MATCH ?1 ORDER BY s LIMIT ?2) m JOIN hs_rows_1 t ON t.row = m.rowid"
        let storeSQL =
            "SELECT m.row, t.id, m.score FROM (SELECT rowid AS row, bm25(hs_text_1) AS score FROM hs_text_1 WHERE hs_text_1 MATCH ? ORDER BY score, rowid LIMIT ?) m JOIN hs_rows_1 t ON t.row = m.row"
        let dim = data.meta.dim
        func vector(_ q: Int) -> [Float] { Array(data.queries[q * dim..<(q + 1) * dim]) }
        /// Query `q` as one of the kinds the store answers (`vector`, `keyword`, `hybrid`).
        func search(_ kind: String, _ q: Int) throws {
            switch kind {
            case "vector": _ = try hs.search(c, near: vector(q), k: k)
            case "keyword": _ = try hs.search(c, text: TextQuery(queryTexts[q]), k: k)
            default: _ = try hs.search(c, near: vector(q), text: TextQuery(queryTexts[q]), k: k)
            }
        }
        func match(_ text: String) -> String {
            text.split(separator: " ").map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(
                separator: " OR ")
        }

        var times: [String: [[UInt64]]] = [
            "vector": [], "keyword": [], "bare_fts5": [], "bare_fts5_ids": [], "store_sql": [], "hybrid": [],
        ]
        var candidates = 0.0, overlap = 0.0
        var armMs: [String: Double] = ["keyword": 0, "vector": 0, "total": 0]
        for q in 0..<queryCount {
            var perKind: [String: [UInt64]] = [:]
            for _ in 0..<passes {
                var t = nowNanoseconds()
                _ = try hs.search(c, near: vector(q), k: k)
                perKind["vector", default: []].append(nowNanoseconds() - t)
                t = nowNanoseconds()
                _ = try hs.search(c, text: TextQuery(queryTexts[q]), k: k)
                perKind["keyword", default: []].append(nowNanoseconds() - t)
                t = nowNanoseconds()
                let statement = try bare.statement(bareSQL)
                try statement.bind([.text(match(queryTexts[q])), .integer(Int64(k))])
                var n = 0
                while try statement.step() { n += 1 }
                statement.reset()
                perKind["bare_fts5", default: []].append(nowNanoseconds() - t)
                t = nowNanoseconds()
                let withIDs = try bare.statement(bareIDsSQL)
                try withIDs.bind([.text(match(queryTexts[q])), .integer(Int64(k))])
                while try withIDs.step() { n += 1 }
                withIDs.reset()
                perKind["bare_fts5_ids", default: []].append(nowNanoseconds() - t)
                t = nowNanoseconds()
                let storeStatement = try bare.statement(storeSQL)
                try storeStatement.bind([.text(match(queryTexts[q])), .integer(Int64(k))])
                while try storeStatement.step() { n += 1 }
                storeStatement.reset()
                perKind["store_sql", default: []].append(nowNanoseconds() - t)
                t = nowNanoseconds()
                _ = try hs.search(c, near: vector(q), text: TextQuery(queryTexts[q]), k: k)
                perKind["hybrid", default: []].append(nowNanoseconds() - t)
            }
            for (kind, values) in perKind { times[kind]!.append(values) }
            let t = nowNanoseconds()
            let (_, e) = try hs.retrieve(c, text: TextQuery(queryTexts[q]), near: vector(q), k: k)
            armMs["total"]! += Double(nowNanoseconds() - t) / 1e6
            armMs["keyword"]! += e.keyword.milliseconds
            armMs["vector"]! += e.vectorMilliseconds ?? 0
            candidates += Double(e.keyword.candidates)
            overlap += Double(e.overlap)
        }
        // The three kinds a service answers, mixed: consecutive queries take the kinds in turn (query q's search
        // in round r is kind (q + r) mod 3), so each kind follows each other kind and no search follows another
        // for the same query. Above, each hybrid query follows three bare FTS5 queries (the references, ~0.5 ms
        // each at 200k rows, which evict the caches) and each vector query follows the hybrid query for the same
        // vector (its graph search still in the caches): that order says more about the references than about
        // a service's stream.
        let mixedKinds = ["vector", "keyword", "hybrid"]
        for kind in mixedKinds { times[kind + "_mixed"] = [[UInt64]](repeating: [], count: queryCount) }
        for round in 0..<(passes * mixedKinds.count) {
            for q in 0..<queryCount {
                let kind = mixedKinds[(q + round) % mixedKinds.count]
                let t = nowNanoseconds()
                try search(kind, q)
                times[kind + "_mixed"]![q].append(nowNanoseconds() - t)
            }
        }
        // The same kinds again, each as a steady stream (one kind back to back, as a service answering one kind
        // of query sees them): in the first order, every hybrid query follows five others, the arm thread has gone
        // to sleep (more than 1 ms since the last hybrid query) and bare FTS5's rankings have evicted the caches.
        let gapMicros = UInt32(ProcessInfo.processInfo.environment["HB_GAP_US"] ?? "0") ?? 0
        for kind in ["vector", "keyword", "hybrid"] {
            var perQuery = [[UInt64]](repeating: [], count: queryCount)
            for _ in 0..<passes {
                for q in 0..<queryCount {
                    if gapMicros > 0 { usleep(gapMicros) }
                    let t = nowNanoseconds()
                    try search(kind, q)
                    perQuery[q].append(nowNanoseconds() - t)
                }
            }
            times[kind + "_steady"] = perQuery
        }
        // Each query's median over the passes, then p50/p99 over queries.
        func stats(_ kind: String) -> (Double, Double) {
            let medians = times[kind]!.map { $0.sorted()[$0.count / 2] }.sorted()
            func at(_ p: Double) -> Double {
                Double(medians[min(medians.count - 1, Int(p * Double(medians.count)))]) / 1e6
            }
            return (at(0.5), at(0.99))
        }
        var p50: [String: Double] = [:], p99: [String: Double] = [:]
        for kind in times.keys { (p50[kind], p99[kind]) = stats(kind) }
        let results = Results(
            dataset: data.meta.name, rows: count, queries: queryCount, k: k, generated_text: generated,
            import_seconds_plain: plainSeconds, import_seconds_searchable: searchableSeconds,
            import_ratio: searchableSeconds / plainSeconds, p50_ms: p50, p99_ms: p99,
            hybrid_over_vector_p50: p50["hybrid"]! / p50["vector"]!,
            hybrid_over_vector_p50_mixed: p50["hybrid_mixed"]! / p50["vector_mixed"]!,
            hybrid_over_vector_p50_steady: p50["hybrid_steady"]! / p50["vector_steady"]!,
            keyword_over_bare_fts5_p50: p50["keyword"]! / p50["bare_fts5"]!,
            mean_keyword_candidates: candidates / Double(queryCount), mean_overlap: overlap / Double(queryCount),
            mean_hybrid_arm_ms: armMs.mapValues { $0 / Double(queryCount) })
        for kind in [
            "vector", "keyword", "bare_fts5", "bare_fts5_ids", "store_sql", "hybrid", "vector_mixed", "keyword_mixed",
            "hybrid_mixed", "vector_steady", "keyword_steady", "hybrid_steady",
        ] {
            log(String(format: "%-15@ p50 %.3f ms, p99 %.3f ms", kind, p50[kind]!, p99[kind]!))
        }
        log(
            "hybrid arms (mean ms): "
                + armMs.sorted { $0.key < $1.key }.map {
                    String(format: "%@ %.3f", $0.key, $0.value / Double(queryCount))
                }.joined(separator: ", "))
        log(
            String(
                format:
                    "hybrid / vector p50 %.2f after the references, %.2f mixed, %.2f steady (target ≤ 2), keyword / bare FTS5 p50 %.2f (target ≤ 1.2), import ×%.2f (target ≤ 1.5)",
                results.hybrid_over_vector_p50, results.hybrid_over_vector_p50_mixed,
                results.hybrid_over_vector_p50_steady,
                results.keyword_over_bare_fts5_p50, results.import_ratio))
        if let out {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: out))
        }
    }
}

/// Draws 1-based ranks with probability proportional to `weights` (binary search over the cumulative sum).
struct ZipfSampler {
    let cumulative: [Double]
    init(weights: [Double]) {
        var sum = 0.0
        cumulative = weights.map {
            sum += $0; return sum
        }
    }
    func draw(_ rng: inout SplitMix64) -> Int {
        let u = Double(rng.next() >> 11) / Double(1 << 53) * cumulative.last!
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo + 1
    }
}
