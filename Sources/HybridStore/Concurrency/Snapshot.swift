import QueryPlanner

/// One committed state of the store, for several reads that must agree: every search, keyword or hybrid
/// retrieval, get and count through it sees the same rows and the same index, while writers go on committing
/// (they are neither blocked nor seen). Lent by `HybridStore.read { }` (or a tenant scope's, whose snapshot
/// sees only the tenant's rows); valid only inside that closure.
///
/// Holding one keeps a read transaction open (SQLite keeps the pages it sees; a long-held snapshot delays the
/// log's checkpoint) and the change records of writes since (a few bytes per changed row).
public struct Snapshot: ~Copyable {
    let store: HybridStore
    let view: ReadView
    let tenant: String?

    /// The change-log sequence of the state seen (grows with every committed change).
    public var sequence: Int64 { view.seq }

    /// `search` in this state (see `HybridStore.search`).
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) throws(HybridStoreError) -> [SearchHit] {
        try query(
            collection, near: vector, k: k, where: filter,
            options: QueryOptions(recallTarget: recallTarget, searchEffort: searchEffort), returning: columns
        ).hits
    }

    /// `query` in this state.
    public func query(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter?, options: QueryOptions,
        returning columns: [String] = [], explain: Bool = false
    )
        throws(HybridStoreError) -> SearchResult
    {
        try store.query(
            collection, near: vector, k: k, where: filter, options: options, returning: columns,
            explain: explain, tenant: tenant, view: view)
    }

    /// Keyword or hybrid retrieval in this state (both arms, one after the other).
    public func retrieve(
        _ collection: CollectionRef, text: TextQuery, near vector: [Float]?, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, depth: Int? = nil, options: QueryOptions = QueryOptions(),
        returning columns: [String] = [], explain: Bool = false
    )
        throws(HybridStoreError) -> (hits: [RetrievalHit], explanation: RetrievalExplanation)
    {
        try store.retrieve(
            collection, text: text, near: vector, k: k, where: filter, fusion: fusion, depth: depth,
            options: options, returning: columns, explain: explain, tenant: tenant, view: view)
    }

    /// `get` in this state.
    public func get(
        _ ids: [RowID], from collection: CollectionRef, returning columns: [String]? = nil,
        includeVector: Bool = false
    ) throws(HybridStoreError) -> [Row] {
        try store.get(
            ids, from: collection, returning: columns, includeVector: includeVector, tenant: tenant,
            on: view.connection)
    }

    /// The rows (matching `filter`, when given) in this state.
    public func count(_ collection: CollectionRef, where filter: Filter? = nil) throws(HybridStoreError) -> Int {
        try store.count(collection, where: filter, tenant: tenant, on: view.connection)
    }
}

extension HybridStore {
    /// Runs `body` with a snapshot: several reads that see one committed state while writers go on.
    /// - Throws: what `body` throws when it is a `HybridStoreError`, any other error of `body`'s wrapped as
    ///   `aborted` (in `underlying`), or `sqlite` when no read transaction can be opened.
    public func read<R>(_ body: (borrowing Snapshot) throws -> R) throws(HybridStoreError) -> R {
        try read(tenant: nil, body)
    }

    func read<R>(tenant: String?, _ body: (borrowing Snapshot) throws -> R) throws(HybridStoreError) -> R {
        var outcome: Result<R, HybridStoreError>! = nil
        try withPinnedRead { (view) throws(HybridStoreError) in
            do {
                outcome = .success(try body(Snapshot(store: self, view: view, tenant: tenant)))
            } catch {
                outcome = .failure(HybridStoreError(thrownBy: error, in: "read"))
            }
        }
        return try outcome.get()
    }

    /// `read` on a reader thread of the store (see the async API).
    public func read<R: Sendable>(_ body: @escaping @Sendable (borrowing Snapshot) throws -> R) async throws -> R {
        try await onReaderThread { [self] _ in try read(body) }
    }
}

extension TenantScope {
    /// A snapshot of the tenant's rows: as `HybridStore.read`, every read through it restricted to the tenant.
    public func read<R>(_ body: (borrowing Snapshot) throws -> R) throws(HybridStoreError) -> R {
        try store.read(tenant: name, body)
    }

    /// `read` on a reader thread of the store.
    public func read<R: Sendable>(_ body: @escaping @Sendable (borrowing Snapshot) throws -> R) async throws -> R {
        let (store, name) = (store, name)
        return try await store.onReaderThread { _ in try store.read(tenant: name, body) }
    }
}
