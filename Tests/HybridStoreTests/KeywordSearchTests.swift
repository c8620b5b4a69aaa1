import Foundation
import Testing
import HybridStore

/// Keyword search over searchable columns (FTS5 in the same database), alone and fused with the vector arm:
/// rankings checked against a plain FTS5 table and a reference fusion, under filters and tenants, through
/// updates, deletes, tier moves and reopening.
@Suite struct KeywordSearchTests {
    static let schema = Schema(
        vector: VectorSpec(dimensions: 8, metric: .l2, connectivity: 8, constructionEffort: 64),
        id: .string,
        columns: [
            .text("tenant", nullable: false, filterable: true), .integer("year", filterable: true),
            .text("body", searchable: true), .text("title", searchable: true), .text("note"),
        ],
        tenantColumn: "tenant")

    static let vocabulary = [
        "error", "disk", "network", "timeout", "0x80070005", "kernel", "panic", "retry", "socket",
        "memory", "leak", "driver", "update", "install", "failed", "succeeded", "user", "admin",
    ]

    static func tenantOf(_ i: Int) -> String { ["acme", "globex", "initech"][i % 3] }

    /// Documents of 3–14 words drawn with a skew (early words are common, later ones rare).
    static func documents(_ count: Int, seed: UInt64) -> [(body: String, title: String)] {
        var rng = SplitMix64(seed: seed)
        func word() -> String {
            let u = Double.random(in: 0..<1, using: &rng)
            return vocabulary[min(vocabulary.count - 1, Int(u * u * Double(vocabulary.count)))]
        }
        return (0..<count).map { _ in
            let body = (0..<Int.random(in: 3...14, using: &rng)).map { _ in word() }.joined(separator: " ")
            let title = (0..<Int.random(in: 1...3, using: &rng)).map { _ in word() }.joined(separator: " ")
            return (body, title)
        }
    }

    struct Fixture {
        let tmp: TemporaryStore
        let store: HybridStore
        let collection: CollectionRef
        let docs: [(body: String, title: String)]
        let vectors: [[Float]]
    }

    static func fixture(count: Int = 600, name: String = #function) throws -> Fixture {
        let tmp = TemporaryStore(name)
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: schema)
        let docs = documents(count, seed: 11)
        let vectors = randomVectors(count, dim: 8, seed: 5)
        try store.write { tx in
            for i in 0..<count {
                try tx.insert(
                    .string("d\(i)"), into: c, vector: vectors[i],
                    values: [
                        "tenant": .text(tenantOf(i)), "year": .integer(Int64(2000 + i % 25)),
                        "body": .text(docs[i].body), "title": .text(docs[i].title), "note": .text("note \(i)"),
                    ])
            }
        }
        return Fixture(tmp: tmp, store: store, collection: c, docs: docs, vectors: vectors)
    }

    /// A plain FTS5 table holding `rows` (index into `docs`, rowid = index + 1) and a year column, and the
    /// ranking FTS5's own bm25() gives `match` there (ties by rowid), as (id, BM25 made positive).
    static func reference(
        _ docs: [(body: String, title: String)], rows: [Int], match: String, yearAtLeast: Int64? = nil,
        limit: Int, tokenize: String = "unicode61"
    ) throws -> [(id: String, score: Double)] {
        let path = temporaryPath("hs-fts-ref", suffix: ".sqlite")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let c = try Connection(path: path, create: true)
        try c.execute("CREATE VIRTUAL TABLE ref USING fts5(body, title, year UNINDEXED, tokenize = '\(tokenize)')")
        try c.transaction(immediate: true) {
            let insert = try c.statement("INSERT INTO ref(rowid, body, title, year) VALUES (?1, ?2, ?3, ?4)")
            for i in rows {
                try insert.run([
                    .integer(Int64(i + 1)), .text(docs[i].body), .text(docs[i].title), .integer(Int64(2000 + i % 25)),
                ])
            }
        }
        let query = try c.prepareOnce(
            "SELECT rowid, bm25(ref) FROM ref WHERE ref MATCH ?1"
                + (yearAtLeast == nil ? "" : " AND year >= ?3") + " ORDER BY bm25(ref), rowid LIMIT ?2")
        try query.bind([.text(match), .integer(Int64(limit))] + (yearAtLeast.map { [.integer($0)] } ?? []))
        var out: [(String, Double)] = []
        while try query.step() {
            guard case .real(let score) = query.column(1) else { continue }
            out.append(("d\(query.int64(0) - 1)", -score))
        }
        return out
    }

    static func same(_ hits: [RetrievalHit], _ reference: [(id: String, score: Double)]) -> Bool {
        hits.count == reference.count
            && zip(hits, reference).allSatisfy { h, r in
                h.id == .string(r.id) && abs((h.keywordScore ?? .nan) - r.score) <= 1e-9 * max(1, abs(r.score))
            }
    }

    @Test func keywordRankingEqualsFTS5sOwnBM25() throws {
        let f = try Self.fixture()
        defer { f.tmp.cleanup() }
        // The lists load on the first keyword query, and `statistics` counts their RAM from then on.
        let before = try f.store.statistics(f.collection)
        #expect(before.textBytes == 0)
        _ = try f.store.search(f.collection, text: TextQuery("error"), k: 1)
        let after = try f.store.statistics(f.collection)
        #expect(after.textBytes >= 600 * 4)
        #expect(after.memoryBytes == before.memoryBytes + after.textBytes)
        for (text, match) in [
            ("error", "\"error\""), ("disk 0x80070005", "\"disk\" OR \"0x80070005\""),
            ("panic kernel leak", "\"panic\" OR \"kernel\" OR \"leak\""),
        ] {
            let hits = try f.store.search(f.collection, text: TextQuery(text), k: 25)
            let expected = try Self.reference(f.docs, rows: Array(f.docs.indices), match: match, limit: 25)
            #expect(!expected.isEmpty)
            #expect(Self.same(hits, expected), "\(text)")
            #expect(hits.map(\.score) == hits.map { $0.keywordScore! })
        }
        // Under a filter: the same ranking as the plain table's under the same condition.
        let filtered = try f.store.search(
            f.collection, text: TextQuery("retry socket"), k: 30, where: Column("year") >= 2012)
        let expected = try Self.reference(
            f.docs, rows: Array(f.docs.indices), match: "\"retry\" OR \"socket\"", yearAtLeast: 2012, limit: 30)
        #expect(Self.same(filtered, expected))
        // Text rewritten after the lengths were loaded (by the queries above): the ranking follows the new text.
        var docs = f.docs
        try f.store.write { tx in
            for i in stride(from: 0, to: docs.count, by: 7) {
                docs[i].body =
                    i % 2 == 0 ? "error" : docs[i].body + " error error " + String(repeating: "padding ", count: 30)
                try tx.update(.string("d\(i)"), in: f.collection, values: ["body": .text(docs[i].body)])
            }
        }
        let rewritten = try f.store.search(f.collection, text: TextQuery("error disk"), k: 40)
        #expect(
            Self.same(
                rewritten,
                try Self.reference(docs, rows: Array(docs.indices), match: "\"error\" OR \"disk\"", limit: 40)))
        // FTS5's own syntax, with a column filter by the column's name.
        let syntax = try f.store.search(
            f.collection, text: TextQuery("title:disk NOT body:error", syntax: .fts5), k: 40)
        let expectedSyntax = try Self.reference(
            docs, rows: Array(f.docs.indices), match: "title:disk NOT body:error", limit: 40)
        #expect(!expectedSyntax.isEmpty)
        #expect(Self.same(syntax, expectedSyntax))
    }

    /// Plain words queries rank from the posting lists in memory; they must give FTS5's bm25() ranking whatever
    /// the tokenizer, and keep giving it through updates, deletes, inserts, tier moves and a dropped tenant
    /// after the lists were loaded. A word of several terms (a phrase) is ranked in SQLite, with the same result.
    @Test(arguments: TextTokenizer.allCases)
    func thePostingListsRankAsFTS5ThroughEveryKindOfWrite(tokenizer: TextTokenizer) throws {
        let tmp = TemporaryStore("postings-\(tokenizer)")
        defer { tmp.cleanup() }
        let store = try tmp.open()
        var schema = Self.schema
        schema.tokenizer = tokenizer
        let c = try store.collection("docs", creatingIfMissing: schema)
        var docs = Self.documents(400, seed: 23)
        // Some inflected words, for the stemmer.
        for i in stride(from: 0, to: docs.count, by: 5) { docs[i].body += " errors retrying" }
        let vectors = randomVectors(600, dim: 8, seed: 9)
        var live = Set(docs.indices)
        func insert(_ tx: WriteTransaction, _ i: Int) throws {
            try tx.insert(
                .string("d\(i)"), into: c, vector: vectors[i],
                values: [
                    "tenant": .text(Self.tenantOf(i)), "year": .integer(Int64(2000 + i % 25)),
                    "body": .text(docs[i].body), "title": .text(docs[i].title),
                ])
        }
        try store.write { tx in for i in docs.indices { try insert(tx, i) } }
        let queries =
            tokenizer == .trigram
            ? ["err", "dis ker", "err pan lea soc", "0x8"]
            : ["error", "disk 0x80070005", "panic kernel leak socket", "errors retry", "ERROR Disk"]
        func check(_ stage: String) throws {
            for text in queries {
                let match = text.split(separator: " ").map { "\"\($0)\"" }.joined(separator: " OR ")
                let (hits, explanation) = try store.retrieve(c, text: TextQuery(text), near: nil, k: 30, explain: true)
                let expected = try Self.reference(
                    docs, rows: live.sorted(), match: match, limit: 30, tokenize: tokenizer.fts5Option)
                #expect(!expected.isEmpty, "\(stage): \(text)")
                #expect(Self.same(hits, expected), "\(stage) \(tokenizer): \(text)")
                #expect(explanation.keyword.plan.hasPrefix("posting lists in memory"), "\(explanation.keyword.plan)")
            }
        }
        try check("loaded")
        try store.write { tx in
            for i in stride(from: 1, to: 400, by: 9) {
                docs[i].body = "kernel panic error error " + docs[i].body
                try tx.update(.string("d\(i)"), in: c, values: ["body": .text(docs[i].body)])
            }
            for i in stride(from: 2, to: 400, by: 13) {
                _ = try tx.delete([.string("d\(i)")], from: c)
                live.remove(i)
            }
            for i in 400..<450 {
                docs.append((body: "error socket " + docs[i - 400].body, title: "new"))
                try insert(tx, i)
                live.insert(i)
            }
        }
        try check("after updates, deletes and inserts")
        _ = try store.tier(c, where: Column("year") < 2008, to: .cold)
        try check("after a tier move")
        let dropped = try store.dropTenant("globex")
        #expect(dropped > 0)
        live = live.filter { Self.tenantOf($0) != "globex" }
        try check("after dropping a tenant")
        // A word that is a phrase of two terms: ranked in SQLite, still FTS5's ranking.
        if tokenizer != .trigram {
            let (hits, explanation) = try store.retrieve(
                c, text: TextQuery("kernel-panic"), near: nil, k: 20, explain: true)
            #expect(explanation.keyword.plan.hasPrefix("FTS5 MATCH"))
            #expect(
                Self.same(
                    hits,
                    try Self.reference(
                        docs, rows: live.sorted(), match: "\"kernel-panic\"", limit: 20,
                        tokenize: tokenizer.fts5Option)))
        }
        // Reopened: loaded again from the rows.
        store.close()
        let reopened = try HybridStore(directory: tmp.path)
        let c2 = try reopened.collection("docs")
        let again = try reopened.search(c2, text: TextQuery(queries[1]), k: 30)
        let match = queries[1].split(separator: " ").map { "\"\($0)\"" }.joined(separator: " OR ")
        #expect(
            Self.same(
                again,
                try Self.reference(docs, rows: live.sorted(), match: match, limit: 30, tokenize: tokenizer.fts5Option)))
    }

    @Test func checkpointsMergeTheIndexWithoutChangingARanking() throws {
        let f = try Self.fixture(count: 1_200)
        defer { f.tmp.cleanup() }
        let before = try f.store.search(f.collection, text: TextQuery("timeout retry kernel"), k: 30)
        try f.store.checkpoint()  // 1,200 changes since the index was made: its segments are merged
        let after = try f.store.search(f.collection, text: TextQuery("timeout retry kernel"), k: 30)
        #expect(after == before && !after.isEmpty)
        #expect(
            Self.same(
                after,
                try Self.reference(
                    f.docs, rows: Array(f.docs.indices), match: "\"timeout\" OR \"retry\" OR \"kernel\"", limit: 30)))
        #expect(try f.store.verify().isConsistent)
    }

    @Test func aTenantsScoresComeFromItsOwnRowsAlone() throws {
        let f = try Self.fixture()
        defer { f.tmp.cleanup() }
        let acme = try f.store.tenant("acme")
        let acmeRows = f.docs.indices.filter { Self.tenantOf($0) == "acme" }
        for (text, match) in [
            ("error", "\"error\""), ("disk 0x80070005 leak", "\"disk\" OR \"0x80070005\" OR \"leak\""),
        ] {
            let hits = try acme.search(f.collection, text: TextQuery(text), k: 20)
            // The scores equal BM25 over a table holding only acme's rows: other tenants' rows change nothing.
            let expected = try Self.reference(f.docs, rows: acmeRows, match: match, limit: 20)
            #expect(Self.same(hits, expected), "\(text)")
        }
        // A word only another tenant wrote: acme finds nothing, and its scores do not move.
        let before = try acme.search(f.collection, text: TextQuery("error zebra"), k: 10)
        try f.store.write { tx in
            try tx.insert(
                "g-zebra", into: f.collection, vector: f.vectors[0],
                values: ["tenant": "globex", "body": "zebra zebra error"])
        }
        #expect(try acme.search(f.collection, text: TextQuery("zebra"), k: 10).isEmpty)
        #expect(try acme.search(f.collection, text: TextQuery("error zebra"), k: 10) == before)
        #expect(
            try f.store.tenant("globex").search(f.collection, text: TextQuery("zebra"), k: 10).map(\.id) == ["g-zebra"])
        // Hybrid under a tenant: both arms hold only its rows.
        let hybrid = try acme.search(f.collection, near: f.vectors[1], text: TextQuery("error disk"), k: 30)
        let acmeIDs = Set(acmeRows.map { RowID.string("d\($0)") })
        #expect(hybrid.count == 30 && hybrid.allSatisfy { acmeIDs.contains($0.id) })
    }

    /// Reciprocal-rank and weighted fusion, written out here from the definitions.
    static func referenceFusion(vector: [SearchHit], keyword: [RetrievalHit], fusion: Fusion) -> [RowID] {
        var score: [RowID: Double] = [:]
        var best: [RowID: Int] = [:]
        for (i, h) in vector.enumerated() { best[h.id] = min(best[h.id] ?? .max, i) }
        for (i, h) in keyword.enumerated() { best[h.id] = min(best[h.id] ?? .max, i) }
        switch fusion {
        case .reciprocalRank(let c):
            for (i, h) in vector.enumerated() { score[h.id, default: 0] += 1.0 / Double(c + i + 1) }
            for (i, h) in keyword.enumerated() { score[h.id, default: 0] += 1.0 / Double(c + i + 1) }
        case .weighted(let w):
            let d = vector.map { Double($0.distance) }
            for h in vector {
                score[h.id, default: 0] +=
                    w * (d.max()! > d.min()! ? (d.max()! - Double(h.distance)) / (d.max()! - d.min()!) : 1)
            }
            let b = keyword.map { $0.keywordScore! }
            for h in keyword {
                score[h.id, default: 0] +=
                    (1 - w) * (b.max()! > b.min()! ? (h.keywordScore! - b.min()!) / (b.max()! - b.min()!) : 1)
            }
        }
        return score.keys.sorted { a, b in
            if score[a]! != score[b]! { return score[a]! > score[b]! }
            if best[a]! != best[b]! { return best[a]! < best[b]! }
            return a.description < b.description
        }
    }

    @Test func fusionEqualsTheReference() throws {
        let f = try Self.fixture()
        defer { f.tmp.cleanup() }
        for (q, text, fusion) in [
            (3, "error disk", Fusion.standard), (9, "kernel panic", .reciprocalRank(k: 10)),
            (20, "timeout retry socket", .weighted(vector: 0.7)), (4, "leak", .weighted(vector: 0.2)),
        ] {
            let (hits, explanation) = try f.store.retrieve(
                f.collection, text: TextQuery(text), near: f.vectors[q], k: 10,
                where: Column("year") >= 2005, fusion: fusion, depth: 40,
                options: QueryOptions(searchEffort: 100), explain: true)
            let vector = try f.store.search(
                f.collection, near: f.vectors[q], k: 40, where: Column("year") >= 2005, searchEffort: 100)
            let keyword = try f.store.search(f.collection, text: TextQuery(text), k: 40, where: Column("year") >= 2005)
            #expect(
                hits.map(\.id)
                    == Array(Self.referenceFusion(vector: vector, keyword: keyword, fusion: fusion).prefix(10)),
                "\(fusion)")
            #expect(hits.allSatisfy { $0.distance != nil || $0.keywordScore != nil })
            #expect(explanation.vector != nil && explanation.keyword.candidates == 40)
            #expect(explanation.description.contains("keyword arm") && explanation.description.contains("vector arm"))
        }
    }

    /// Hybrid queries from many threads at once (the store's one arm thread busy, so callers run both arms
    /// themselves) answer as the same queries one at a time; each arm runs once per query.
    @Test func hybridQueriesFromManyThreadsAnswerAsOneAtATime() throws {
        let f = try Self.fixture()
        defer { f.tmp.cleanup() }
        let texts = ["error disk", "kernel panic", "timeout retry socket", "leak", "driver update", "admin user"]
        let options = QueryOptions(searchEffort: 100)
        let (store, collection, vectors) = (f.store, f.collection, f.vectors)
        @Sendable func run(_ i: Int) throws -> [RowID] {
            try store.retrieve(
                collection, text: TextQuery(texts[i % texts.count]), near: vectors[i % 50], k: 10,
                where: Column("year") >= 2003, options: options
            ).hits.map(\.id)
        }
        let alone = try (0..<24).map(run)
        let together = Locked([[RowID]?](repeating: nil, count: 96))
        DispatchQueue.concurrentPerform(iterations: 96) { i in
            let ids = try? run(i % 24)
            together.withLock { $0[i] = ids }
        }
        let answers = together.withLock { $0 }
        for i in 0..<96 { #expect(answers[i] == alone[i % 24], "query \(i % 24)") }
        // An arm job runs once, whichever thread takes it.
        let runs = Locked(0)
        let job = ArmJob { runs.withLock { $0 += 1 } }
        DispatchQueue.concurrentPerform(iterations: 8) { _ in job.runUnlessTaken() }
        #expect(runs.withLock { $0 } == 1 && job.finished && !job.take())
    }

    /// The vector arm of a hybrid query returns `depth` candidates at the graph effort the target asks for the
    /// first k, not for all `depth` (the effort model is linear in k: depth 40 would search at 4× the effort).
    @Test func theVectorArmSearchesAtTheEffortForK() throws {
        let f = try Self.fixture(count: 3000)
        defer { f.tmp.cleanup() }
        let forK = try f.store.query(
            f.collection, near: f.vectors[7], k: 10, where: nil, options: QueryOptions(strategy: .graph),
            explain: true)
        let forDepth = try f.store.query(
            f.collection, near: f.vectors[7], k: 40, where: nil, options: QueryOptions(strategy: .graph),
            explain: true)
        let (_, explanation) = try f.store.retrieve(
            f.collection, text: TextQuery("error disk"), near: f.vectors[7], k: 10, depth: 40,
            options: QueryOptions(strategy: .graph), explain: true)
        let arm = try #require(explanation.vector)
        let (kEffort, depthEffort, armEffort) = (
            try #require(forK.explanation.plan.effort), try #require(forDepth.explanation.plan.effort),
            try #require(arm.plan.effort)
        )
        #expect(depthEffort > 2 * kEffort, "\(depthEffort) \(kEffort)")
        #expect(abs(armEffort - kEffort) <= 1, "\(armEffort) \(kEffort)")
        #expect(arm.results == 40)
        #expect(explanation.description.contains("vector arm (depth 40, graph effort for the first 10"))
    }

    /// The vector arm searches at the effort for k but returns `depth`, so its recall@depth says nothing of the
    /// effort the collection needs: it is not sampled by the recall checks (a plain search of the same store is).
    @Test func theVectorArmIsNotARecallCheckSample() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open {
            $0.recallSampleEvery = 1
            $0.recallChecksPerSecond = 1e6
            $0.recallCheckCPUShare = 1
        }
        let schema = Schema(
            vector: VectorSpec(dimensions: 32, connectivity: 8, constructionEffort: 32), id: .integer,
            columns: [.text("body", searchable: true)])
        let c = try store.collection("docs", creatingIfMissing: schema)
        let docs = Self.documents(20_000, seed: 3)
        let vectors = randomVectors(20_000, dim: 32, seed: 4)
        try store.write { tx in
            for i in 0..<docs.count {
                try tx.insert(.int(Int64(i)), into: c, vector: vectors[i], values: ["body": .text(docs[i].body)])
            }
        }
        let queries = randomVectors(40, dim: 32, seed: 6)
        func samples() throws -> Int { try store.calibration(of: c).samples[0] }
        let before = try samples()
        for q in queries {
            let (_, e) = try store.retrieve(c, text: TextQuery("disk error"), near: q, k: 10, explain: true)
            #expect(e.vector?.plan.strategy == .graph)
            store.waitForBackgroundWork()
        }
        #expect(try samples() == before)
        for q in queries {
            _ = try store.search(c, near: q, k: 10)
            store.waitForBackgroundWork()
        }
        #expect(try samples() > before)
    }

    @Test func userTextIsWordsUnlessFTS5SyntaxIsAskedFor() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let c = try store.collection("docs", creatingIfMissing: Self.schema)
        let texts = [
            "error 0x80070005 in setup", "NEAR the disk: a \"quoted\" word", "e-mail from admin*", "plain words here",
        ]
        try store.write { tx in
            for (i, t) in texts.enumerated() {
                try tx.insert(
                    .string("t\(i)"), into: c, vector: randomVectors(1, dim: 8, seed: UInt64(i))[0],
                    values: ["tenant": "acme", "body": .text(t)])
            }
        }
        // Syntax characters are part of the words: no error, and the words are found.
        for (text, found) in [
            ("\"quoted", true), ("disk: NEAR(", true), ("e-mail", true), ("admin* -setup", true),
            ("0x80070005)", true), ("AND OR NOT", false), ("title:nothing", false),
        ] {
            let hits = try store.search(c, text: TextQuery(text), k: 5)
            #expect(hits.isEmpty != found, "\(text)")
        }
        #expect(try store.search(c, text: TextQuery("e-mail"), k: 5).map(\.id) == ["t2"])
        // FTS5 syntax when asked: phrases, prefixes, NEAR, column filters.
        #expect(try store.search(c, text: TextQuery("\"plain words\"", syntax: .fts5), k: 5).map(\.id) == ["t3"])
        #expect(try store.search(c, text: TextQuery("adm*", syntax: .fts5), k: 5).map(\.id) == ["t2"])
        #expect(try store.search(c, text: TextQuery("NEAR(error setup, 3)", syntax: .fts5), k: 5).map(\.id) == ["t0"])
        // Bad syntax, an unknown or unsearchable column, nothing to search: invalidFilter with the offset.
        for (text, offset) in [
            ("error AND (disk", 15), ("note:disk", 0), ("missing:x", 0), ("disk OR", 7), ("\"open", 0),
        ] {
            do {
                _ = try store.search(c, text: TextQuery(text, syntax: .fts5), k: 5)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.code == .invalidFilter, "\(text)")
                #expect(error.context["offset"] == "\(offset)", "\(text): \(error.message)")
            }
        }
        #expect(errorCode { _ = try store.search(c, text: TextQuery("   "), k: 5) } == .invalidFilter)
        // A collection without searchable columns says so.
        let plain = try store.collection(
            "plain", creatingIfMissing: Schema(vector: VectorSpec(dimensions: 8), columns: [.text("body")]))
        #expect(errorCode { _ = try store.search(plain, text: TextQuery("x"), k: 5) } == .invalidArgument)
        #expect(
            errorCode {
                _ = try store.collection(
                    "bad",
                    creatingIfMissing: Schema(
                        vector: VectorSpec(dimensions: 8),
                        columns: [ColumnSpec(name: "n", type: .integer, searchable: true)]))
            } == .invalidSchema)
    }

    @Test func theIndexFollowsEveryWriteAndSurvivesReopen() throws {
        let f = try Self.fixture(count: 300)
        defer { f.tmp.cleanup() }
        let s = f.store, c = f.collection
        try s.write { tx in
            try tx.update("d1", in: c, values: ["body": "walrus walrus"])
            try tx.upsert("d2", into: c, vector: nil, values: ["body": "walrus"])
            _ = try tx.delete(["d3"], from: c)
            try tx.upsert(
                "new", into: c, vector: f.vectors[4], values: ["tenant": "acme", "body": "walrus and friends"])
        }
        #expect(Set(try s.search(c, text: TextQuery("walrus"), k: 10).map(\.id)) == ["d1", "d2", "new"])
        #expect(try s.search(c, text: TextQuery("walrus"), k: 1).first?.id == "d1")
        // A write that fails rolls the index back with the rows.
        #expect(
            errorCode {
                try s.write { tx in
                    try tx.update("d5", in: c, values: ["body": "narwhal"])
                    try tx.insert("d6", into: c, vector: f.vectors[6], values: ["tenant": "acme"])  // duplicate id
                }
            } == .duplicateID)
        #expect(try s.search(c, text: TextQuery("narwhal"), k: 10).isEmpty)
        // Cold rows stay found by the keyword arm, and the vector arm scores them through the cold step.
        _ = try s.tier(c, where: Column("year") < 2010, to: .cold)
        let coldIDs = try s.ids(in: c, where: Column("year") < 2010)
        let coldHits = try s.search(c, text: TextQuery("error"), k: 300, where: Column("year") < 2010)
        #expect(!coldHits.isEmpty && coldHits.allSatisfy { coldIDs.contains($0.id) })
        let near = try s.search(
            c, near: f.vectors[7], text: TextQuery("error"), k: 5, where: Column("year") < 2010,
            fusion: .weighted(vector: 1))
        #expect(near.first?.id == "d7" && (near.first?.distance ?? 1) < 1e-3)
        #expect(try s.verify().isConsistent)
        s.close()
        let reopened = try HybridStore(directory: f.tmp.path)
        let c2 = try reopened.collection("docs")
        #expect(Set(try reopened.search(c2, text: TextQuery("walrus"), k: 10).map(\.id)) == ["d1", "d2", "new"])
        #expect(try reopened.verify().isConsistent)
        // Dropping the collection drops its index with it.
        try reopened.dropCollection("docs")
        let again = try reopened.collection("docs", creatingIfMissing: Self.schema)
        #expect(try reopened.search(again, text: TextQuery("walrus"), k: 10).isEmpty)
    }

    @Test func anExistingColumnBecomesSearchable() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let schema = Schema(vector: VectorSpec(dimensions: 8), columns: [.text("body"), .text("title")])
        let c = try store.collection("docs", creatingIfMissing: schema)
        let docs = Self.documents(500, seed: 3)
        try store.write { tx in
            for (i, d) in docs.enumerated() {
                try tx.insert(
                    .string("d\(i)"), into: c, vector: randomVectors(1, dim: 8, seed: UInt64(i))[0],
                    values: ["body": .text(d.body), "title": .text(d.title)])
            }
        }
        var reports: [(Int, Int)] = []
        let searchable = try store.makeSearchable(c, columns: ["body", "title"]) { reports.append(($0, $1)) }
        #expect(reports.last.map { $0 == (500, 500) } == true)
        #expect(try store.describe("docs").schema.columns.allSatisfy(\.searchable))
        let hits = try store.search(searchable, text: TextQuery("kernel panic"), k: 15)
        let expected = try Self.reference(docs, rows: Array(docs.indices), match: "\"kernel\" OR \"panic\"", limit: 15)
        #expect(Self.same(hits, expected))
        // New rows are indexed from now on, and the schema survives reopening.
        try store.write { tx in
            try tx.insert("late", into: searchable, vector: [1, 0, 0, 0, 0, 0, 0, 0], values: ["body": "okapi"])
        }
        store.close()
        let reopened = try HybridStore(directory: tmp.path)
        #expect(
            try reopened.search(try reopened.collection("docs"), text: TextQuery("okapi"), k: 3).map(\.id) == ["late"])
        #expect(try reopened.verify().isConsistent)
    }

    @Test func verifyFindsAndRepairRebuildsADisagreeingIndex() throws {
        let f = try Self.fixture(count: 200)
        defer { f.tmp.cleanup() }
        #expect(try f.store.verify().isConsistent)
        // Change a row's text behind the index's back (as a foreign writer without the triggers would).
        let path = f.tmp.path + "/store.sqlite"
        f.store.close()
        do {
            let c = try Connection(path: path, create: false)
            try c.execute("DROP TRIGGER hs_text_1_update")
            try c.execute("UPDATE hs_rows_1 SET c2 = 'tampered text' WHERE row = 5")
        }
        let store = try HybridStore(directory: f.tmp.path)
        let report = try store.verify()
        #expect(!report.isConsistent)
        #expect(report.collections.first?.mismatches.contains { $0.contains("keyword index") } == true)
        #expect(try store.repairKeywordIndexes() == ["docs"])
        #expect(try store.search(try store.collection("docs"), text: TextQuery("tampered"), k: 3).map(\.id) == ["d4"])
    }
}
