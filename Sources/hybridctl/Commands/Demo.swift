import ArgumentParser
import Foundation
import HNSW
import HybridStore

extension HybridCtl {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build a demo store from generated articles and run hybrid queries, wide to very narrow.",
            discussion: "Prints each query's results, the plan it used, recall against an exact scan, and timings.")

        @Option(help: "Rows to generate.") var rows = 100_000
        @Option(help: "Vector dimensions.") var dim = 64
        @Option(help: "Keep the demo store in this directory (default: a temporary one, removed at the end).")
        var store: String?
        @Option(help: "Random seed.") var seed: UInt64 = 7

        func validate() throws {
            guard rows >= 100 else { throw ValidationError("--rows must be at least 100") }
            guard (2...1024).contains(dim) else { throw ValidationError("--dim must be 2…1024") }
        }

        static let categories = ["science", "sports", "politics", "tech", "health", "travel", "food", "finance"]
        static let tenants = [
            "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell",
            "cyberdyne", "soylent", "oscorp",
        ]
        static let words = [
            "galaxies", "playoffs", "elections", "compilers", "vaccines", "islands", "pastry", "bonds",
            "neutrinos", "marathons", "treaties", "databases", "sleep", "railways", "spices", "markets",
        ]

        /// An article's text: its topic's word, common filler, and a knowledge-base code (the exact, rare kind
        /// of term that keyword search finds and embeddings blur).
        static func body(topic: Int, id: Int, _ rng: inout DemoRandom) -> String {
            let filler = [
                "report", "update", "analysis", "notes", "review", "guide", "study", "brief", "summary", "outlook",
            ]
            return "\(words[topic % words.count]) "
                + (0..<6).map { _ in filler[rng.int(filler.count)] }.joined(separator: " ")
                + " ref KB\(100_000 + id % 20_000)"
        }

        func run() throws {
            let path = store ?? FileManager.default.temporaryDirectory.path + "/hybridctl-demo-\(getpid())"
            if store == nil { try? FileManager.default.removeItem(atPath: path) }
            defer { if store == nil { try? FileManager.default.removeItem(atPath: path) } }
            do {
                try demo(path)
            } catch let error as HybridStoreError {
                fail(error.message)
            }
        }

        private func demo(_ path: String) throws {
            var rng = DemoRandom(seed: seed)
            var configuration = Configuration()
            configuration.checkpointEveryChanges = 0
            let hs = try HybridStore(directory: path, create: true, configuration: configuration)
            defer { hs.close() }
            if (try? hs.collection("articles")) != nil {
                fail("demo: the store at \(path) already has `articles`; use an empty directory")
            }
            let articles = try hs.createCollection(
                "articles",
                schema: Schema(
                    vector: VectorSpec(dimensions: dim, metric: .cosine), id: .integer,
                    columns: [
                        .text("title"), .text("category", nullable: false, filterable: true),
                        .text("tenant", nullable: false, filterable: true), .integer("year", filterable: true),
                        .real("price", filterable: true), .boolean("in_stock", filterable: true),
                        .text("body", searchable: true),
                    ],
                    tenantColumn: "tenant"))

            // 48 topics in 8 categories; an article is a noisy copy of its topic's direction.
            let topics = (0..<48).map { _ in (0..<dim).map { _ in rng.gaussian() } }
            print("HybridStore demo: \(rows) articles, \(dim)-d cosine embeddings, store \(path)")
            let started = Date()
            var batch: [(Int, [Float], [String: Value])] = []
            func flush() throws {
                try hs.write { tx in
                    for (id, v, values) in batch {
                        try tx.insert(.int(Int64(id)), into: articles, vector: v, values: values)
                    }
                }
                batch.removeAll(keepingCapacity: true)
            }
            for id in 0..<rows {
                let topic = rng.int(48)
                let category = rng.unit() < 0.9 ? topic % 8 : rng.int(8)
                let tenant = min(Int(Double(Self.tenants.count) * pow(rng.unit(), 2.2)), Self.tenants.count - 1)
                let vector = topics[topic].map { $0 + 0.55 * rng.gaussian() }
                batch.append(
                    (
                        id, vector,
                        [
                            "title": .text(
                                "Article \(id) on \(Self.words[topic % Self.words.count]) (\(Self.categories[category]))"
                            ),
                            "category": .text(Self.categories[category]), "tenant": .text(Self.tenants[tenant]),
                            "year": .integer(Int64(2000 + rng.int(26))),
                            "price": .real((pow(rng.unit(), 2) * 100 * 100).rounded() / 100),
                            "in_stock": .boolean(rng.unit() < 0.7),
                            "body": .text(Self.body(topic: topic, id: id, &rng)),
                        ]
                    ))
                if batch.count == 10_000 { try flush() }
            }
            try flush()
            try hs.checkpoint()
            print(
                String(
                    format: "imported and indexed %d rows in %.1f s (SQLite + HNSW, %@ kernels)\n", rows,
                    Date().timeIntervalSince(started), KernelLevel.best.description))

            let queries: [(String, String?)] = [
                ("everything, no filter", nil),
                ("recent articles", "year >= 2010"),
                ("cheap science", "category = 'science' AND price < 20"),
                ("one tenant's stock", "tenant = 'initech' AND in_stock = TRUE"),
                ("needle in a haystack", "tenant = 'oscorp' AND year BETWEEN 2021 AND 2022 AND price < 10"),
                ("anti-correlated", "category = 'finance' AND tenant IN ('wayne', 'wonka')"),
            ]
            var recallSum = 0.0
            for (i, (title, whereText)) in queries.enumerated() {
                let q = topics[rng.int(8) * 6].map { $0 + 0.3 * rng.gaussian() }
                let filter = try whereText.map { try hs.parseFilter($0) }
                let columns = ["title", "tenant", "year", "price"]
                _ = try hs.query(articles, near: q, k: 10, where: filter, options: QueryOptions(), returning: columns)
                let t0 = Date()
                let result = try hs.query(
                    articles, near: q, k: 10, where: filter, options: QueryOptions(),
                    returning: columns, explain: false)
                let (hits, explanation) = (result.hits, result.explanation)
                let millis = Date().timeIntervalSince(t0) * 1000
                let e = try hs.explain(articles, near: q, k: 10, where: filter)
                let exact = try hs.query(
                    articles, near: q, k: 10, where: filter,
                    options: QueryOptions(strategy: .exact)
                ).hits
                let truth = Set(exact.map(\.id))
                let recall =
                    truth.isEmpty ? 1 : Double(Set(hits.map(\.id)).intersection(truth).count) / Double(truth.count)
                recallSum += recall
                let matches = e.actualMatches ?? rows
                print("[\(i + 1)/\(queries.count)] \(title): \(whereText ?? "(no filter)")")
                print(
                    "  plan \(explanation.ran.rawValue)" + (explanation.plan.effort.map { " ef \($0)" } ?? "")
                        + (explanation.fallback.map { " then \($0.rawValue)" } ?? "")
                        + String(
                            format: " · matches est %.0f actual %d (%.3f%%)", explanation.plan.estimatedMatches,
                            matches,
                            100 * Double(matches) / Double(rows))
                        + String(
                            format: " · %.2f ms · %d distances · recall@10 vs exact %.2f", millis,
                            explanation.distanceComputations, recall))
                for (rank, hit) in hits.prefix(3).enumerated() {
                    let v = hit.values
                    print(
                        String(format: "  %d. #%@  d=%.4f  ", rank + 1, hit.id.description, hit.distance)
                            + "\(Render.text(v["title"] ?? .null)) · \(Render.text(v["tenant"] ?? .null)) · "
                            + "\(Render.text(v["year"] ?? .null)) · "
                            + String(format: "$%.2f", v["price"]?.doubleValue ?? 0))
                }
                if hits.count > 3 { print("  … \(hits.count - 3) more") }
                if hits.isEmpty { print("  (no rows match)") }
            }
            print(String(format: "\nmean recall@10 against exact search: %.3f", recallSum / Double(queries.count)))

            // Keyword search (BM25 over the searchable body, FTS5 in the same database) and a hybrid query that
            // fuses it with the vector search by reciprocal rank, under a filter.
            let code = "KB\(100_000 + 4_242)"
            let (keywordHits, keywordPlan) = try hs.retrieve(
                articles, text: TextQuery(code), near: nil, k: 5, returning: ["title"],
                explain: true)
            print(
                "\nkeyword search \"\(code)\": \(keywordHits.count) rows (\(keywordHits.map(\.id.description).joined(separator: ", "))), "
                    + String(
                        format: "%.2f ms (the first keyword query also loads every row's length); ",
                        keywordPlan.keyword.milliseconds)
                    + keywordPlan.keyword.plan)
            let topic = 4_242 % 48
            let near = topics[topic].map { $0 + 0.3 * rng.gaussian() }
            let hybridText = "\(Self.words[topic % Self.words.count]) \(code)"
            let t = Date()
            let (hybridHits, hybridPlan) = try hs.retrieve(
                articles, text: TextQuery(hybridText), near: near, k: 5,
                where: try hs.parseFilter("year >= 2005"), returning: ["title"],
                explain: true)
            print(
                "hybrid \"\(hybridText)\" near an embedding of the topic \(Self.words[topic % Self.words.count]), year >= 2005 "
                    + String(format: "(%.1f ms, %@): ", Date().timeIntervalSince(t) * 1000, hybridPlan.fusion))
            for (rank, hit) in hybridHits.prefix(3).enumerated() {
                let arms = [hit.vectorRank.map { "vector #\($0)" }, hit.keywordRank.map { "keyword #\($0)" }].compactMap
                { $0 }
                print(
                    "  \(rank + 1). #\(hit.id) \(Render.text(hit.values["title"] ?? .null)) (\(arms.joined(separator: ", ")))"
                )
            }

            // The same collection as one tenant's own table: a scoped handle, metered.
            let oscorp = try hs.tenant("oscorp")
            let q = topics[rng.int(48)].map { $0 + 0.3 * rng.gaussian() }
            let trick = "tenant = 'acme' OR year >= 2000"
            let result = try oscorp.query(
                articles, near: q, k: 5, where: try hs.parseFilter(trick), options: QueryOptions(),
                returning: ["tenant"])
            let (mine, plan) = (result.hits, result.explanation)
            let usage = try oscorp.usage()
            print(
                "\nas tenant oscorp (store.tenant(\"oscorp\")), filter \"\(trick)\": \(mine.count) rows, "
                    + "all oscorp's: \(mine.allSatisfy { $0.values["tenant"] == .text("oscorp") }), plan \(plan.plan.strategy.rawValue)"
            )
            print(
                "oscorp's usage: \(usage.rows) rows, \(usage.bytes) bytes, \(usage.queries) query, "
                    + "\(usage.vectorsScored) vectors scored")
            if store != nil {
                print(
                    """
                    The store is kept at \(path). Try:
                      hybridctl query --store \(path) articles --like 42 -k 5 --where "year >= 2020" --select title,year
                      hybridctl explain --store \(path) articles --like 42 --where "tenant = 'acme' AND price < 5"
                      hybridctl query --store \(path) articles --text "KB104242 bonds" --like 42 -k 5 --select title
                    """)
            }
        }
    }
}

/// Seeded draws for the demo data.
struct DemoRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func unit() -> Double { Double(generator.next() >> 11) / Double(1 << 53) }
    mutating func int(_ n: Int) -> Int { Int(generator.next() % UInt64(n)) }
    mutating func gaussian() -> Float {
        let u = max(unit(), 1e-12), v = unit()
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }
}

extension Value {
    var doubleValue: Double? {
        switch self {
        case .real(let v): v
        case .integer(let v): Double(v)
        default: nil
        }
    }
}
