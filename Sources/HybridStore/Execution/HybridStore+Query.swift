import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// The `k` rows nearest to `vector` among those matching `filter`, nearest first, with the `returning`
    /// columns hydrated from SQLite in one statement (none requested: no SQLite access).
    ///
    /// The planner estimates how many rows match and picks exact scan, filtered graph or post-filter, with
    /// a fallback to exact when a plan finds fewer than k rows although more match.
    /// - Throws: `dimensionMismatch`, `nonFiniteVector`, `invalidArgument` (k < 1, recall target outside
    ///   (0, 1]), `invalidFilter` (unknown column, type mismatch), `unknownColumn`, `unknownCollection`, `sqlite`.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) throws(HybridStoreError) -> [SearchHit] {
        try query(
            collection, near: vector, k: k, where: filter,
            options: QueryOptions(recallTarget: recallTarget, searchEffort: searchEffort),
            returning: columns, explain: false
        ).hits
    }

    /// As `search`, with every option of a query (`QueryOptions`: tiers, cold effort, a forced strategy…).
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        options: QueryOptions, returning columns: [String] = []
    ) throws(HybridStoreError) -> [SearchHit] {
        try query(collection, near: vector, k: k, where: filter, options: options, returning: columns, explain: false)
            .hits
    }

    /// As `search`, with a filter in the string syntax (`"tenant = 'acme' AND year >= 2020"`).
    /// - Throws: also `invalidFilter` with the offset of a parse error.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filterText: String,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) throws(HybridStoreError) -> [SearchHit] {
        try search(
            collection, near: vector, k: k, where: try parseFilter(filterText), searchEffort: searchEffort,
            recallTarget: recallTarget, returning: columns)
    }

    /// Runs the query and reports the plan, the estimated and actual matches, the work and time per phase.
    public func explain(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        options: QueryOptions = QueryOptions(), returning columns: [String] = []
    )
        throws(HybridStoreError) -> Explanation
    {
        try query(collection, near: vector, k: k, where: filter, options: options, returning: columns, explain: true)
            .explanation
    }

    /// The full query: hits and what it did. `explain` also counts the actual matches.
    public func query(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter?, options: QueryOptions,
        returning columns: [String] = [], explain: Bool = false
    )
        throws(HybridStoreError) -> SearchResult
    {
        try query(
            collection, near: vector, k: k, where: filter, options: options, returning: columns, explain: explain,
            tenant: nil)
    }

    /// `query`, optionally restricted to one tenant's rows (its filter ANDed with `tenant column = name`),
    /// counted against its query quota and metered for its usage.
    ///
    /// The answer is that of one committed state: the read's pinned snapshot (`view`, or one pinned here when the
    /// query reads SQLite or a writer is publishing), with memory's view of rows changed meanwhile corrected to
    /// it (see `ChangeEpochs`); otherwise the state memory reflects, which no writer is changing.
    func query(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter?, options: QueryOptions,
        returning columns: [String], explain: Bool, tenant: String?, view: ReadView? = nil
    )
        throws(HybridStoreError) -> SearchResult
    {
        func run(_ view: ReadView?, admit: Bool) throws(HybridStoreError) -> SearchResult? {
            try runQuery(
                collection, near: vector, k: k, filter: filter, options: options, returning: columns,
                explain: explain, tenant: tenant, admit: admit, view: view)
        }
        if let view, let answer = try run(view, admit: true) { return answer }
        // Optimistic: a query that reads memory alone reruns only if memory was being published while it searched;
        // one that also reads SQLite (columns, cold blocks, a filter SQLite evaluates) runs so while no transaction
        // is committing or publishing, and reruns if one began.
        let s = try state(collection)
        let readsSQLite =
            !columns.isEmpty || !s.lock.read({ s.cold.isEmpty })
            || filter.map { f in !s.lock.read { s.columns.covers(f) } } ?? false
        let optimistic = !readsSQLite || epochs.quiet != nil
        if optimistic, let answer = try run(nil, admit: true) { return answer }
        // Against a pinned snapshot, with memory's view of rows changed meanwhile corrected to it.
        return try withPinnedRead { (view) throws(HybridStoreError) in
            guard let answer = try run(view, admit: !optimistic) else {
                throw HybridStoreError(.sqlite, "a pinned read was asked to restart")
            }
            return answer
        }
    }

    /// One run of a query (`QueryExecution`); nil when it ran without a snapshot and a writer committed or
    /// published meanwhile (run it again with one).
    private func runQuery(
        _ collection: CollectionRef, near vector: [Float], k: Int, filter: Filter?, options: QueryOptions,
        returning columns: [String], explain: Bool, tenant: String?, admit: Bool, view: ReadView?
    )
        throws(HybridStoreError) -> SearchResult?
    {
        let request = QueryRequest(
            collection: collection, vector: vector, k: k, filter: filter, options: options,
            columns: columns, explain: explain, tenant: tenant)
        var execution = try QueryExecution(request, store: self, admit: admit, view: view)
        return try execution.run()
    }

    /// Rows matching `filter` in SQLite (parameterised; used for columns not held in memory).
    func rowsMatching(
        _ filter: Filter, _ s: CollectionState, on reader: Connection? = nil
    ) throws(HybridStoreError) -> [Int64] {
        let condition = try compiled(filter, s)
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        return try withReader { c in
            let statement = try c.prepareOnce(s.table.rowsWhere(condition.text))
            try statement.bind(condition.arguments)
            var rows: [Int64] = []
            while try statement.step() { rows.append(statement.int64(0)) }
            return rows
        }
    }

    /// The filter that restricts a collection to one tenant's rows.
    /// - Throws: `wrongTenant` when the collection has no tenant column.
    func tenantFilter(_ tenant: String, _ s: CollectionState) throws(HybridStoreError) -> Filter {
        guard let column = s.schema.tenantColumn else {
            throw HybridStoreError(
                .wrongTenant, "collection `\(s.name)` has no tenant column, so it cannot be read as tenant `\(tenant)`",
                context: ["collection": s.name, "tenant": tenant])
        }
        return .compare(column: column, .equal, .text(tenant))
    }

    /// A validated filter, ANDed with the tenant's restriction when scoped; nil = every row.
    func scopedFilter(_ filter: Filter?, tenant: String?, _ s: CollectionState) throws(HybridStoreError) -> Filter? {
        let user = try filter.map { f throws(HybridStoreError) in try validated(f.normalized, s) }
        guard let tenant else { return user }
        let scope = try tenantFilter(tenant, s)
        return user.map { Filter.and([scope, $0]).normalized } ?? scope
    }

    /// The ids of the rows matching a filter, found by SQLite (in row order).
    /// - Throws: `invalidFilter`, `unknownCollection`, `sqlite`.
    public func ids(in collection: CollectionRef, where filter: Filter) throws(HybridStoreError) -> [RowID] {
        try ids(in: collection, where: filter, tenant: nil)
    }

    func ids(in collection: CollectionRef, where filter: Filter?, tenant: String?) throws(HybridStoreError) -> [RowID] {
        let s = try state(collection)
        let condition =
            try scopedFilter(filter, tenant: tenant, s).map { f throws(HybridStoreError) in try compiled(f, s) }
            ?? SQLCondition(text: "1", arguments: [])
        return try withReader { c in
            let statement = try c.prepareOnce(s.table.rowsAndIDs(where: condition.text))
            try statement.bind(condition.arguments)
            var ids: [RowID] = []
            while try statement.step() {
                switch statement.column(1) {
                case .integer(let v): ids.append(.int(v))
                case .text(let t): ids.append(.string(t))
                default: break
                }
            }
            return ids
        }
    }

    /// The number of rows matching a filter, counted by SQLite.
    /// - Throws: `invalidFilter`, `unknownCollection`, `sqlite`.
    public func count(_ collection: CollectionRef, where filter: Filter) throws(HybridStoreError) -> Int {
        try count(collection, where: filter, tenant: nil)
    }

    func count(
        _ collection: CollectionRef, where filter: Filter?, tenant: String?, on reader: Connection? = nil
    )
        throws(HybridStoreError) -> Int
    {
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        let s = try state(collection)
        let condition =
            try scopedFilter(filter, tenant: tenant, s).map { f throws(HybridStoreError) in try compiled(f, s) }
            ?? SQLCondition(text: "1", arguments: [])
        return try withReader { c in
            let statement = try c.prepareOnce(s.table.countWhere(condition.text))
            try statement.bind(condition.arguments)
            guard try statement.step(), case .integer(let n) = statement.column(0) else { return 0 }
            return Int(n)
        }
    }

    /// Parses the string syntax into a filter, as an `invalidFilter` error on failure.
    public func parseFilter(_ text: String) throws(HybridStoreError) -> Filter {
        do {
            return try Filter(parsing: text)
        } catch {
            var context = ["filter": text]
            if let offset = error.offset { context["offset"] = "\(offset)" }
            throw HybridStoreError(.invalidFilter, "invalid filter: \(error.description)", context: context)
        }
    }

    func validated(_ filter: Filter, _ s: CollectionState) throws(HybridStoreError) -> Filter {
        do {
            try filter.validate { name in
                s.schema.column(name).map { FilterColumnType(rawValue: $0.spec.type.rawValue) ?? .blob }
            }
        } catch {
            throw HybridStoreError(
                .invalidFilter, "collection `\(s.name)`: \(error.message)",
                context: ["collection": s.name, "filter": filter.description])
        }
        return filter
    }

    func compiled(_ filter: Filter, _ s: CollectionState) throws(HybridStoreError) -> SQLCondition {
        do {
            return try filter.sql(
                identifier: { name in s.schema.column(name).map { s.table.columnName($0.index) } },
                isBoolean: { name in s.schema.column(name)?.spec.type == .boolean })
        } catch {
            throw HybridStoreError(
                .invalidFilter, "collection `\(s.name)`: \(error.message)", context: ["collection": s.name])
        }
    }

    func checkQueryVector(_ vector: [Float], _ s: CollectionState) throws(HybridStoreError) {
        let dim = s.schema.vector.dimensions
        guard vector.count == dim else {
            throw HybridStoreError(
                .dimensionMismatch,
                "collection `\(s.name)`: query vector expects \(dim) dimensions, got \(vector.count)",
                context: ["collection": s.name, "expected": "\(dim)", "actual": "\(vector.count)"])
        }
        if let problem = vectorProblem(vector, metric: s.schema.vector.metric) {
            throw HybridStoreError(
                .nonFiniteVector, "collection `\(s.name)`: query vector rejected: \(problem.message)",
                context: ["collection": s.name])
        }
    }
}

/// A predicate that reads the collection's columns, which the collection's read lock guards for the whole
/// search; the search runs on the calling thread only.
func unsafeSendable(_ body: @escaping (UInt32) -> Bool) -> @Sendable (UInt32) -> Bool {
    // SAFETY: the closure is called only by the synchronous search it is passed to, under the lock.
    nonisolated(unsafe) let body = body
    return { unsafe body($0) }
}

func nowNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Cores available, read once (Foundation reads cgroup files on every `activeProcessorCount`).
let cores = ProcessInfo.processInfo.activeProcessorCount
func ms(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
