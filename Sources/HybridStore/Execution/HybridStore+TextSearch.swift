import Foundation
import Synchronization
import HNSW
import QueryPlanner

/// How a hybrid query merges its keyword and vector candidates into one ranking.
public enum Fusion: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Reciprocal-rank fusion: a row scores Σ 1 / (k + its rank in each arm that found it), ranks from 1.
    /// Needs no score calibration between the arms; k = 60 is the standard constant.
    case reciprocalRank(k: Int)
    /// A weighted sum of each arm's score scaled to [0, 1] over its candidates (distance: nearest 1, farthest
    /// 0; BM25: best 1, worst 0), `vector` for the vector arm and 1 − `vector` for the keyword arm; an arm
    /// that did not find a row gives it 0.
    case weighted(vector: Double)

    /// Reciprocal-rank fusion with k = 60.
    public static let standard = Fusion.reciprocalRank(k: 60)

    public var description: String {
        switch self {
        case .reciprocalRank(let k): "reciprocal rank (k \(k))"
        case .weighted(let w): String(format: "weighted (vector %.2f, keyword %.2f)", w, 1 - w)
        }
    }
}

/// One row of a keyword or hybrid search.
public struct RetrievalHit: Sendable, Equatable, ColumnValues {
    public var id: RowID
    /// The ranking score, higher first: the fused score of a hybrid search, BM25 of a keyword-only one.
    public var score: Double
    /// The distance to the query vector, when the vector arm found the row.
    public var distance: Float?
    /// The row's BM25 (positive, higher is a better match), when the keyword arm found it.
    public var keywordScore: Double?
    /// The row's rank (from 1) in each arm that found it.
    public var vectorRank: Int?
    public var keywordRank: Int?
    public var values: [String: Value]
}

/// What a keyword or hybrid search did: each arm's plan, candidates and time, and the fusion.
public struct RetrievalExplanation: Sendable, Codable, Equatable, CustomStringConvertible {
    public struct KeywordArm: Sendable, Codable, Equatable {
        /// How the arm ran (FTS5 MATCH, the filter, the statistics BM25 used).
        public var plan: String
        /// Candidates asked for.
        public var depth: Int
        /// Candidates found (≤ depth).
        public var candidates: Int
        /// Rows matching the keywords and the filter (explain only).
        public var matches: Int?
        /// The corpus BM25 scored against: "collection" or "tenant <name>", with its rows.
        public var statistics: String
        public var milliseconds: Double
    }

    public var collection: String
    public var k: Int
    public var text: String
    public var filter: String?
    public var keyword: KeywordArm
    /// The vector arm's own explanation (nil for a keyword-only search).
    public var vector: Explanation?
    public var vectorMilliseconds: Double?
    public var fusion: String
    /// Rows found by both arms among the candidates.
    public var overlap: Int
    public var results: Int
    public var scopedToTenant: String?

    public var description: String {
        var lines = ["collection \(collection), k \(k), text \"\(text)\"", "filter: \(filter ?? "(none)")"]
        lines.append(
            "keyword arm: \(keyword.plan); depth \(keyword.depth), \(keyword.candidates) candidates"
                + (keyword.matches.map { " of \($0) matching rows" } ?? "")
                + "; BM25 statistics of the \(keyword.statistics)"
                + String(format: "; %.3f ms", keyword.milliseconds))
        if let vector {
            lines.append(
                "vector arm (depth \(vector.k)" + (vector.k > k ? ", graph effort for the first \(k)" : "")
                    + (vectorMilliseconds.map { String(format: ", %.3f ms", $0) } ?? "") + "):")
            lines += vector.description.split(separator: "\n").map { "  " + $0 }
            lines.append("fusion: \(fusion); \(overlap) candidates found by both arms; \(results) results")
        } else {
            lines.append("ranking: BM25; \(results) results")
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// What the keyword arm found.
struct KeywordArmResult: Sendable {
    var rows: [(row: Int64, id: RowID, bm25: Double, values: [String: Value])]
    var plan: String
    var statistics: String
    var matches: Int?
    var milliseconds = 0.0
}

/// A scope's corpus statistics for BM25, valid while the change log has not moved past `sequence`.
struct TextStatistics: Sendable {
    var sequence: Int64
    var rows: Int64
    var tokens: Double
}

extension HybridStore {
    /// The `k` rows that best match the keywords `text` (BM25 over the searchable columns) among those
    /// matching `filter`, best first.
    /// - Throws: `invalidArgument` (k < 1, no searchable column), `invalidFilter` (the filter, or a text query
    ///   in FTS5 syntax that does not parse, with its offset), `unknownColumn`, `unknownCollection`, `sqlite`.
    public func search(
        _ collection: CollectionRef, text: TextQuery, k: Int, where filter: Filter? = nil,
        returning columns: [String] = []
    ) throws(HybridStoreError) -> [RetrievalHit] {
        try retrieve(collection, text: text, near: nil, k: k, where: filter, returning: columns).hits
    }

    /// Hybrid retrieval: the keyword arm (BM25) and the vector arm (the planner's usual plans, both tiers)
    /// each find candidates under the same filter, then `fusion` ranks them together.
    public func search(
        _ collection: CollectionRef, near vector: [Float], text: TextQuery, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, returning columns: [String] = []
    ) throws(HybridStoreError)
        -> [RetrievalHit]
    {
        try retrieve(collection, text: text, near: vector, k: k, where: filter, fusion: fusion, returning: columns).hits
    }

    /// Keyword or hybrid retrieval with every knob, and (when `explain`) what each arm did.
    /// - Parameters:
    ///   - vector: nil for keyword-only.
    ///   - depth: candidates per arm (nil: k alone keyword-only; max(2k, 20) for each arm of a hybrid).
    ///   - options: the vector arm's options (recall target, tiers, cold effort).
    public func retrieve(
        _ collection: CollectionRef, text: TextQuery, near vector: [Float]?, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, depth: Int? = nil, options: QueryOptions = QueryOptions(),
        returning columns: [String] = [], explain: Bool = false
    )
        throws(HybridStoreError) -> (hits: [RetrievalHit], explanation: RetrievalExplanation)
    {
        try retrieve(
            collection, text: text, near: vector, k: k, where: filter, fusion: fusion, depth: depth,
            options: options, returning: columns, explain: explain, tenant: nil)
    }

    func retrieve(
        _ collection: CollectionRef, text: TextQuery, near vector: [Float]?, k: Int, where filter: Filter?,
        fusion: Fusion, depth: Int?, options: QueryOptions, returning columns: [String], explain: Bool,
        tenant: String?, view: ReadView? = nil
    )
        throws(HybridStoreError) -> (hits: [RetrievalHit], explanation: RetrievalExplanation)
    {
        let started = nowNanos()
        let s = try state(collection)
        guard k >= 1 else {
            throw HybridStoreError(.invalidArgument, "k must be at least 1, got \(k)", context: ["k": "\(k)"])
        }
        if let depth, depth < 1 {
            throw HybridStoreError(
                .invalidArgument, "depth must be at least 1, got \(depth)", context: ["depth": "\(depth)"])
        }
        if case .reciprocalRank(let c) = fusion, c < 0 {
            throw HybridStoreError(.invalidArgument, "reciprocal-rank fusion needs k ≥ 0, got \(c)")
        }
        if case .weighted(let w) = fusion, !(0...1).contains(w) {
            throw HybridStoreError(.invalidArgument, "the vector weight must be in [0, 1], got \(w)")
        }
        guard !s.schema.searchablePositions.isEmpty else {
            throw HybridStoreError(
                .invalidArgument,
                "collection `\(s.name)` has no searchable column: mark a text column searchable first",
                context: ["collection": s.name])
        }
        let textQuery = try compiledText(text, s)
        let positions = try columnPositions(columns, s)
        let scope = try scopedFilter(filter, tenant: tenant, s)
        let condition = try scope.map { f throws(HybridStoreError) in try compiled(f, s) }
        let rowLimit = max(1, s.lock.read { s.index.count + s.cold.liveRows })
        let k = min(k, rowLimit)
        let armDepth = min(depth ?? (vector == nil ? k : max(2 * k, 20)), max(rowLimit, 1), 10_000)
        try options.checkCancelled()

        @Sendable func timedKeywordArm() throws(HybridStoreError) -> KeywordArmResult {
            let t = nowNanos()
            var r = try keywordArm(
                s, textQuery, condition: condition, tenant: tenant, depth: armDepth, positions: positions,
                reader: view?.connection, countMatches: explain)
            r.milliseconds = ms(since: t)
            return r
        }
        typealias VectorArm = (hits: [SearchHit], explanation: Explanation, ms: Double)
        let keyword: KeywordArmResult
        var vectorOutcome: VectorArm? = nil
        // The vector arm returns `armDepth` candidates at the effort the target asks for the first k (fusion ranks
        // them all; the promise is the first k's).
        var vectorOptions = options
        vectorOptions.effortK = k
        if let vector, let view {
            // In a snapshot: both arms on its one connection, one after the other.
            let t = nowNanos()
            let r = try query(
                collection, near: vector, k: armDepth, where: filter, options: vectorOptions,
                returning: columns, explain: explain, tenant: tenant, view: view)
            vectorOutcome = (r.hits, r.explanation, ms(since: t))
            keyword = try timedKeywordArm()
        } else if let vector {
            // The arms run at once: the one that has lately taken longer on this collection here, the other on
            // the store's arm thread (or here after the first, if that thread is busy with another query's). Under
            // a tenant the vector arm admits the query against the quota and meters it.
            let vectorResult = Locked<Result<VectorArm, HybridStoreError>?>(nil)
            let keywordResult = Locked<Result<KeywordArmResult, HybridStoreError>?>(nil)
            let runVector: @Sendable () -> Void = { [self, vectorOptions] in
                let t = nowNanos()
                let result = Result { () throws(HybridStoreError) -> VectorArm in
                    let r = try query(
                        collection, near: vector, k: armDepth, where: filter, options: vectorOptions,
                        returning: columns, explain: explain, tenant: tenant)
                    return (r.hits, r.explanation, ms(since: t))
                }
                vectorResult.withLock { $0 = result }
            }
            let runKeyword: @Sendable () -> Void = {
                let result = Result { () throws(HybridStoreError) -> KeywordArmResult in try timedKeywordArm() }
                keywordResult.withLock { $0 = result }
            }
            let keywordLonger = s.armCosts.withLock { $0.keyword >= $0.vector }
            let (here, there) = keywordLonger ? (runKeyword, runVector) : (runVector, runKeyword)
            runArms(here: here, there: there)
            vectorOutcome = try vectorResult.withLock { $0! }.get()
            keyword = try keywordResult.withLock { $0! }.get()
        } else {
            // Keyword-only: one arm, on this thread; admitted against a tenant's query quota first.
            if let tenant { try admitQuery(tenant) }
            keyword = try timedKeywordArm()
        }
        try options.checkCancelled()
        let keywordMs = keyword.milliseconds
        let vectorHits = vectorOutcome?.hits ?? []
        let vectorExplanation = explain ? vectorOutcome?.explanation : nil
        let vectorMs = vectorOutcome?.ms
        if let vectorMs {
            s.armCosts.withLock { costs in  // moving averages, for which arm runs on the calling thread
                costs.keyword += 0.1 * (keywordMs - costs.keyword)
                costs.vector += 0.1 * (vectorMs - costs.vector)
            }
        }
        if vector == nil, let tenant { meterQuery(tenant, scored: 0) }

        var explanation = RetrievalExplanation(
            collection: s.name, k: k, text: text.description,
            filter: filter.map { explain ? $0.description : "(not rendered: explain off)" },
            keyword: .init(
                plan: keyword.plan, depth: armDepth, candidates: keyword.rows.count, matches: keyword.matches,
                statistics: keyword.statistics, milliseconds: keywordMs),
            vector: vectorExplanation, vectorMilliseconds: vectorMs,
            fusion: vector == nil ? "none" : fusion.description,
            overlap: 0, results: 0, scopedToTenant: tenant)

        var hits: [RetrievalHit]
        if vector == nil {
            hits = keyword.rows.prefix(k).enumerated().map { i, r in
                RetrievalHit(
                    id: r.id, score: r.bm25, distance: nil, keywordScore: r.bm25, vectorRank: nil, keywordRank: i + 1,
                    values: r.values)
            }
        } else {
            let fused = fuse(
                vector: vectorHits.map { ($0.id, Double($0.distance)) }, keyword: keyword.rows.map { ($0.id, $0.bm25) },
                fusion: fusion)
            explanation.overlap = fused.count { $0.vector != nil && $0.keyword != nil }
            hits = fused.prefix(k).map { f in
                let v = f.vector.map { vectorHits[$0] }
                let w = f.keyword.map { keyword.rows[$0] }
                return RetrievalHit(
                    id: f.id, score: f.score, distance: v?.distance, keywordScore: w?.bm25,
                    vectorRank: f.vector.map { $0 + 1 }, keywordRank: f.keyword.map { $0 + 1 },
                    values: v?.values ?? w?.values ?? [:])
            }
        }
        explanation.results = hits.count
        if let observer {
            observer.query(
                collection: s.name, plan: vector == nil ? "keyword" : "hybrid", nanos: nowNanos() - started,
                details: "keyword \(String(format: "%.2f", keywordMs)) ms"
                    + (vectorMs.map { ", vector \(String(format: "%.2f", $0)) ms" } ?? ""))
        }
        return (hits, explanation)
    }

    /// Runs `here` on this thread and `there` beside it on the store's arm thread, and returns when both have run.
    /// Whichever thread comes first takes `there`: if the arm thread is still busy (another query's arm) or
    /// asleep when `here` is done, this thread runs `there` itself, so a query never waits in a queue behind
    /// others'. The arm thread spins between jobs for up to twice the recent gap between hybrid queries (at most
    /// 1 ms; `WorkerPool`), so while they keep coming the hand-over takes about a microsecond, where a thread
    /// woken from sleep (`DispatchQueue.async`, as before) started its arm 20–45 µs later.
    func runArms(here: () -> Void, there: @escaping @Sendable () -> Void) {
        let job = ArmJob(there)
        let pool = armPool.withLock { pool in
            if pool == nil { pool = WorkerPool(name: "hybridstore-arm", threads: 1, maxSpinNanos: 1_000_000) }
            return pool!
        }
        pool.submit { job.runUnlessTaken() }
        here()
        if job.take() {
            there()
            return
        }
        // The arm thread has it and is running it: wait briefly on the flag, then sleep.
        let deadline = nowNanos() + 200_000
        while !job.finished, nowNanos() < deadline { sched_yield() }
        if !job.finished { job.done.wait() }
    }

    /// The query as FTS5 reads it, with the searchable columns' names in the index.
    func compiledText(_ text: TextQuery, _ s: CollectionState) throws(HybridStoreError) -> CompiledTextQuery {
        do {
            return try text.compiled { name in
                s.schema.column(name).flatMap { $0.spec.searchable ? s.table.columnName($0.index) : nil }
            }
        } catch {
            throw HybridStoreError(
                .invalidFilter, "invalid text query: \(error.description)",
                context: ["collection": s.name, "text": text.text, "offset": "\(error.offset)"])
        }
    }

    /// The keyword arm: the best `depth` rows by BM25 among those matching the keywords and the condition, ranked
    /// in SQLite by `hs_bm25` (FTS5's BM25, rows' lengths from memory). Unscoped, BM25 uses FTS5's statistics of
    /// the whole collection (as `bm25()`); scoped to a tenant, the tenant's own rows, tokens and per-phrase
    /// document counts, so a score says nothing of other tenants' text.
    private func keywordArm(
        _ s: CollectionState, _ query: CompiledTextQuery, condition: SQLCondition?, tenant: String?,
        depth: Int, positions: [Int], reader: Connection?, countMatches: Bool
    )
        throws(HybridStoreError) -> KeywordArmResult
    {
        // A plain words query over the whole collection ranks from the posting lists in memory when it can.
        if condition == nil, tenant == nil, reader == nil, let words = query.words,
            let ranked = try keywordArmFromPostings(s, words: words, depth: depth, positions: positions)
        {
            var result = ranked
            if !countMatches { result.matches = nil }
            return result
        }
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        return try withReader { c in
            // One read transaction when several statements must agree (a tenant's statistics and its search, or
            // the explained match count); a lone statement is its own.
            func consistent<R>(_ body: () throws -> R) throws -> R {
                tenant != nil || countMatches ? try c.transaction(immediate: false, body) : try body()
            }
            return try consistent {
                // `hs_bm25`: FTS5's BM25 with rows' lengths from memory; unscoped, over FTS5's statistics of the
                // collection (as `bm25()`), scoped, over the tenant's own.
                var score = "hs_bm25(\(s.table.textName), ?)"
                var scoreArguments: [Value] = []
                var statistics = "collection"
                if let tenant {
                    let totals = try tenantTextStatistics(s, tenant: tenant, c)
                    var counts: [Value] = []
                    let count = try c.statement(s.table.tenantTextMatches)
                    for phrase in query.phrases {
                        counts.append(try count.scalar([.text(phrase), .text(tenant)]) ?? .integer(0))
                    }
                    score = "hs_bm25(\(s.table.textName), ?, ?, ?" + String(repeating: ", ?", count: counts.count) + ")"
                    scoreArguments =
                        [.integer(totals.rows), .real(totals.rows > 0 ? totals.tokens / Double(totals.rows) : 0)]
                        + counts
                    statistics = "tenant \(tenant) (\(totals.rows) rows)"
                }
                try loadTextLengths(s, c)
                let sql = s.table.keywordSearch(score: score, condition: condition?.text, positions: positions)
                let statement = try condition == nil ? c.statement(sql) : c.prepareOnce(sql)
                defer { statement.reset() }
                // Lengths first (the score's first parameter), then the rest in order.
                try statement.bind(
                    scoreArguments + [.text(query.match)] + (condition?.arguments ?? []) + [.integer(Int64(depth))],
                    from: 2)
                // Under the collection's shared lock: the writer updates the lengths under its exclusive side.
                var rows = try s.lock.read { () throws(SQLiteError) in
                    try s.textLengths.bind(to: statement, at: 1)
                    return try keywordRows(statement, positions: positions, s)
                }
                rows.sort { $0.bm25 > $1.bm25 || ($0.bm25 == $1.bm25 && $0.row < $1.row) }
                var matches: Int? = nil
                if countMatches {
                    let counting = try c.prepareOnce(s.table.keywordMatchCount(condition: condition?.text))
                    if case .integer(let n)? = try counting.scalar([.text(query.match)] + (condition?.arguments ?? []))
                    {
                        matches = Int(n)
                    }
                }
                let plan =
                    "FTS5 MATCH of \(query.phrases.count) phrase\(query.phrases.count == 1 ? "" : "s"), ranked by BM25 in SQLite (row lengths from memory)"
                    + (condition == nil ? "" : ", the filter checked per match by a row lookup")
                return KeywordArmResult(rows: rows, plan: plan, statistics: statistics, matches: matches)
            }
        }
    }

    /// The keyword arm from the collection's posting lists (`TextPostings`): every row holding a word scored by
    /// FTS5's BM25 with FTS5's corpus totals (its averages record) and each word's document count, then the best
    /// `depth` rows' ids and columns read by row. Nil when the lists cannot rank the query (see
    /// `TextPostings.top`), or cannot be loaded now (the writer is busy): the caller ranks in SQLite.
    private func keywordArmFromPostings(
        _ s: CollectionState, words: [String], depth: Int, positions: [Int]
    ) throws(HybridStoreError) -> KeywordArmResult? {
        guard words.count <= 16 else { return nil }
        if !s.lock.read({ s.textPostings != nil }) {
            guard loadTextPostings(s) else { return nil }
        }
        return try withReader { c -> KeywordArmResult? in
            try loadTextLengths(s, c)
            guard case .blob(let record)? = try c.statement(s.table.textTotals).scalar(),
                let totals = fts5Totals(record)
            else { return nil }
            let found = try s.lock.read { () throws -> (rows: [Int64], scores: [Double], matches: Int)? in
                try s.textPostings?.top(
                    words: words, tokenizer: s.schema.tokenizer.fts5Option, on: c, rows: totals.rows,
                    tokens: totals.tokens, lengths: s.textLengths, depth: depth)
            }
            guard let found else { return nil }
            var hydrated: [Int64: (id: RowID, values: [String: Value])] = [:]
            if !found.rows.isEmpty {
                let statement = try c.statement(s.table.hydrateByRow(positions))
                try statement.bind([.text("[" + found.rows.map(String.init).joined(separator: ",") + "]")])
                defer { statement.reset() }
                while try statement.step() {
                    hydrated[statement.int64(0)] = (rowID(statement.column(1)), columnValues(statement, positions, s))
                }
            }
            // A row deleted since the lists last changed is not there to read: it is left out.
            let rows = zip(found.rows, found.scores).compactMap { row, score in
                hydrated[row].map { (row: row, id: $0.id, bm25: score, values: $0.values) }
            }
            return KeywordArmResult(
                rows: rows,
                plan:
                    "posting lists in memory of \(words.count) word\(words.count == 1 ? "" : "s"), every match ranked by BM25 (FTS5's formula and statistics)",
                statistics: "collection", matches: found.matches)
        }
    }

    /// Loads the collection's row lengths from FTS5's size records on its first keyword query.
    private func loadTextLengths(_ s: CollectionState, _ c: Connection) throws(SQLiteError) {
        guard !s.lock.read({ s.textLengths.isLoaded }) else { return }
        let load = try c.prepareOnce(s.table.textLengths)
        try s.lock.write { () throws(SQLiteError) in
            if !s.textLengths.isLoaded { try s.textLengths.load(from: load) }
        }
    }

    /// Loads a collection's posting lists holding the store's writer, so no commit lands between reading the
    /// rows and the lists taking over (the writer brings them up to each later commit). False when the writer
    /// is busy (this query ranks in SQLite; a later one loads) or loading failed.
    private func loadTextPostings(_ s: CollectionState) -> Bool {
        func load(_ c: Connection) throws {
            guard s.lock.read({ s.textPostings == nil }) else { return }
            let fresh = TextPostings()
            let statement = try c.prepareOnce(s.table.searchableText)
            try fresh.index(
                statement, columns: s.schema.searchablePositions.count, tokenizer: s.schema.tokenizer.fts5Option,
                on: c)
            s.lock.write { if s.textPostings == nil { s.textPostings = fresh } }
        }
        if mode == .readWrite {
            _ = writer.withLockIfAvailable { state -> Bool in
                guard let c = state.connection else { return false }
                return (try? load(c)) != nil
            }
        } else {
            _ = try? withReader { c in try load(c) }
        }
        return s.lock.read { s.textPostings != nil }
    }

    /// The keyword statement's rows: row, id, BM25 (made positive: higher is better), the returned columns.
    private func keywordRows(
        _ statement: Statement, positions: [Int], _ s: CollectionState
    ) throws(SQLiteError)
        -> [(row: Int64, id: RowID, bm25: Double, values: [String: Value])]
    {
        var rows: [(row: Int64, id: RowID, bm25: Double, values: [String: Value])] = []
        while try statement.step() {
            let id = rowID(statement.column(1))
            let values = columnValues(statement, positions, s, from: 3)
            let bm25: Double =
                switch statement.column(2) {
                case .real(let v): -v
                case .integer(let v): -Double(v)
                default: 0
                }
            rows.append((statement.int64(0), id, bm25, values))
        }
        return rows
    }

    /// An id as the rows table holds it.
    private func rowID(_ value: Value) -> RowID {
        switch value {
        case .integer(let v): .int(v)
        case .text(let t): .string(t)
        default: .string("")
        }
    }

    /// The returned columns of a statement's current row, from column `first` on.
    private func columnValues(
        _ statement: Statement, _ positions: [Int], _ s: CollectionState, from first: Int32 = 2
    ) -> [String: Value] {
        var values: [String: Value] = [:]
        for (i, position) in positions.enumerated() {
            let spec = s.schema.columns[position]
            var value = statement.column(first + Int32(i))
            if spec.type == .boolean, case .integer(let v) = value { value = .boolean(v != 0) }
            values[spec.name] = value
        }
        return values
    }

    /// A tenant's rows and their tokens, from a cache kept while the change log stands still (every write
    /// appends to it), else counted from the rows and FTS5's size records.
    private func tenantTextStatistics(_ s: CollectionState, tenant: String, _ c: Connection) throws -> TextStatistics {
        guard case .integer(let sequence)? = try c.statement(SQL.lastSeq).scalar() else {
            throw HybridStoreError(.corruptFile, "the change log has no sequence")
        }
        if let cached = s.textStatistics.withLock({ $0[tenant] }), cached.sequence == sequence { return cached }
        let statement = try c.statement(s.table.tenantTextTotals)
        statement.reset()
        try statement.bind([.text(tenant)])
        defer { statement.reset() }
        var result = TextStatistics(sequence: sequence, rows: 0, tokens: 0)
        if try statement.step() {
            result.rows = statement.int64(0)
            if case .real(let t) = statement.column(1) { result.tokens = t }
        }
        s.textStatistics.withLock { cache in
            if cache.count >= 4_096 { cache.removeAll() }
            cache[tenant] = result
        }
        return result
    }
}

/// A candidate of a hybrid query: its place in each arm that found it (from 0) and its fused score.
struct FusedCandidate: Equatable {
    var id: RowID
    /// Its index among the vector arm's hits, the keyword arm's rows (the first, if an arm found it twice).
    var vector: Int?
    var keyword: Int?
    var score: Double
    var bestRank: Int { min(vector ?? .max, keyword ?? .max) }
}

/// Fuses two ranked candidate lists (vector: ascending distance; keyword: descending BM25), best first; ties
/// by the better rank in either arm, then by id.
///
/// The lists are a query's candidates (tens of rows), so rows found by both arms are matched by sorting all
/// candidates by id rather than hashing: a `Dictionary` keyed by `RowID` cost about 20 µs per hybrid query
/// here (a seeded hash per insert and per lookup, and lookups inside the sort's comparator), a quarter of a
/// vector query's time.
func fuse(
    vector: [(id: RowID, distance: Double)], keyword: [(id: RowID, bm25: Double)], fusion: Fusion
)
    -> [FusedCandidate]
{
    // Each arm's contribution to each candidate's score, in the order they are summed: the vector arm's first.
    var vectorScores = [Double](repeating: 0, count: vector.count)
    var keywordScores = [Double](repeating: 0, count: keyword.count)
    switch fusion {
    case .reciprocalRank(let c):
        for i in vector.indices { vectorScores[i] = 1 / Double(c + i + 1) }
        for i in keyword.indices { keywordScores[i] = 1 / Double(c + i + 1) }
    case .weighted(let weight):
        if let lo = vector.lazy.map(\.distance).min(), let hi = vector.lazy.map(\.distance).max() {
            for (i, v) in vector.enumerated() {
                vectorScores[i] = weight * (hi > lo ? (hi - v.distance) / (hi - lo) : 1)
            }
        }
        if let lo = keyword.lazy.map(\.bm25).min(), let hi = keyword.lazy.map(\.bm25).max() {
            for (i, w) in keyword.enumerated() {
                keywordScores[i] = (1 - weight) * (hi > lo ? (w.bm25 - lo) / (hi - lo) : 1)
            }
        }
    }
    // Every candidate of both arms, by id, then vector before keyword, then rank; runs of one id merge.
    var entries: [(id: RowID, arm: Int, rank: Int)] = []
    entries.reserveCapacity(vector.count + keyword.count)
    for (i, v) in vector.enumerated() { entries.append((v.id, 0, i)) }
    for (i, w) in keyword.enumerated() { entries.append((w.id, 1, i)) }
    entries.sort { a, b in
        if a.id != b.id { return idOrder(a.id, b.id) }
        return (a.arm, a.rank) < (b.arm, b.rank)
    }
    var fused: [FusedCandidate] = []
    fused.reserveCapacity(entries.count)
    for e in entries {
        if fused.last?.id != e.id { fused.append(FusedCandidate(id: e.id, vector: nil, keyword: nil, score: 0)) }
        let last = fused.count - 1
        if e.arm == 0 {
            fused[last].score += vectorScores[e.rank]
            if fused[last].vector == nil { fused[last].vector = e.rank }
        } else {
            fused[last].score += keywordScores[e.rank]
            if fused[last].keyword == nil { fused[last].keyword = e.rank }
        }
    }
    fused.sort { a, b in
        if a.score != b.score { return a.score > b.score }
        let ra = a.bestRank, rb = b.bestRank
        if ra != rb { return ra < rb }
        return idOrder(a.id, b.id)
    }
    return fused
}

/// A total order of ids: integers before strings, integers by value, strings by their UTF-8 bytes.
func idOrder(_ a: RowID, _ b: RowID) -> Bool {
    switch (a, b) {
    case (.int(let x), .int(let y)): x < y
    case (.int, .string): true
    case (.string, .int): false
    case (.string(let x), .string(let y)): x.utf8.lexicographicallyPrecedes(y.utf8)
    }
}

/// One arm handed to the arm thread: taken by whichever thread gets to it first, run once.
package final class ArmJob: Sendable {
    private let taken = Atomic<Bool>(false)
    private let finishedFlag = Atomic<Bool>(false)
    /// Signalled once the arm thread has run the job.
    let done = DispatchSemaphore(value: 0)
    private let body: @Sendable () -> Void

    package init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    /// Whether this call took the job (false: another thread already had).
    package func take() -> Bool {
        taken.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    package var finished: Bool { finishedFlag.load(ordering: .acquiring) }

    /// Runs the job here unless another thread took it.
    package func runUnlessTaken() {
        guard take() else { return }
        body()
        finishedFlag.store(true, ordering: .releasing)
        done.signal()
    }
}
