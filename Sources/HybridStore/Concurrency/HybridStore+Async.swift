import Foundation
import QueryPlanner

/// The async API: the same calls as the synchronous one, run on threads the store owns — a bounded pool of
/// reader threads (`Configuration.readerThreads`) and one writer thread — so that a server's tasks never
/// block the cooperative pool on SQLite or a graph search.
///
/// Cancelling the calling task stops a query between its steps (planning, hot search, fallback, cold step,
/// hydration; a hybrid query also between its arms) and the call throws `CancellationError`. A read or write
/// cancelled before it started throws the same and does nothing; a write that has started runs to its
/// COMMIT or rollback (a transaction is never half done). Every other failure is the `HybridStoreError` the
/// synchronous call throws.
extension HybridStore {
    // MARK: - Reads

    /// `search` (see the synchronous one), on a reader thread.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) async throws -> [SearchHit] {
        try await query(
            collection, near: vector, k: k, where: filter,
            options: QueryOptions(recallTarget: recallTarget, searchEffort: searchEffort),
            returning: columns
        ).hits
    }

    /// `search(_:near:k:where:options:returning:)` (see the synchronous one), on a reader thread.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        options: QueryOptions, returning columns: [String] = []
    ) async throws -> [SearchHit] {
        try await query(collection, near: vector, k: k, where: filter, options: options, returning: columns).hits
    }

    /// `search` with a filter in the string syntax, on a reader thread.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filterText: String,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) async throws -> [SearchHit] {
        try await search(
            collection, near: vector, k: k, where: try parseFilter(filterText), searchEffort: searchEffort,
            recallTarget: recallTarget, returning: columns)
    }

    /// `query` (hits and, when `explain`, what it did), on a reader thread; cancellable between its steps.
    public func query(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter?, options: QueryOptions,
        returning columns: [String] = [], explain: Bool = false
    )
        async throws -> SearchResult
    {
        try await onReaderThread { [self] flag in
            var options = options
            options.cancellation = flag
            return try query(
                collection, near: vector, k: k, where: filter, options: options, returning: columns,
                explain: explain)
        }
    }

    /// Keyword-only search (BM25), on a reader thread.
    public func search(
        _ collection: CollectionRef, text: TextQuery, k: Int, where filter: Filter? = nil,
        returning columns: [String] = []
    ) async throws -> [RetrievalHit] {
        try await retrieve(collection, text: text, near: nil, k: k, where: filter, returning: columns).hits
    }

    /// Hybrid retrieval (keyword and vector arms, fused), on a reader thread.
    public func search(
        _ collection: CollectionRef, near vector: [Float], text: TextQuery, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, returning columns: [String] = []
    ) async throws -> [RetrievalHit] {
        try await retrieve(
            collection, text: text, near: vector, k: k, where: filter, fusion: fusion, returning: columns
        ).hits
    }

    /// `retrieve` with every knob, on a reader thread; cancellable between its arms and steps.
    public func retrieve(
        _ collection: CollectionRef, text: TextQuery, near vector: [Float]?, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, depth: Int? = nil, options: QueryOptions = QueryOptions(),
        returning columns: [String] = [], explain: Bool = false
    )
        async throws -> (hits: [RetrievalHit], explanation: RetrievalExplanation)
    {
        try await onReaderThread { [self] flag in
            var options = options
            options.cancellation = flag
            return try retrieve(
                collection, text: text, near: vector, k: k, where: filter, fusion: fusion, depth: depth,
                options: options, returning: columns, explain: explain)
        }
    }

    /// `get`, on a reader thread.
    public func get(
        _ ids: [RowID], from collection: CollectionRef, returning columns: [String]? = nil,
        includeVector: Bool = false
    ) async throws -> [Row] {
        try await onReaderThread { [self] _ in
            try get(ids, from: collection, returning: columns, includeVector: includeVector)
        }
    }

    /// `count`, on a reader thread.
    public func count(_ collection: CollectionRef) async throws -> Int {
        try await onReaderThread { [self] _ in try count(collection) }
    }

    /// `count(where:)`, on a reader thread.
    public func count(_ collection: CollectionRef, where filter: Filter) async throws -> Int {
        try await onReaderThread { [self] _ in try count(collection, where: filter) }
    }

    // MARK: - Writes

    /// `write` on the writer thread: `body` runs there inside the transaction (it must not await). Cancelled
    /// before it starts: nothing is written and the call throws `CancellationError`.
    public func write<R: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> R) async throws -> R {
        try await onWriterThread { [self] _ in try write(body) }
    }

    /// `tier` on the writer thread.
    @discardableResult
    public func tier(
        _ collection: CollectionRef, where filter: Filter? = nil, to tier: Tier,
        codec: ColdCodec = .bitShuffledLZ4
    ) async throws -> Int {
        try await onWriterThread { [self] _ in try self.tier(collection, where: filter, to: tier, codec: codec) }
    }

    /// `checkpoint` on the writer thread.
    public func checkpoint() async throws {
        try await onWriterThread { [self] _ in try checkpoint() }
    }

    // MARK: - Threads

    /// Runs `body` on a reader thread; cancelling the calling task raises the flag `body` is given.
    package func onReaderThread<R: Sendable>(
        _ body: @escaping @Sendable (CancellationFlag) throws -> R
    ) async throws -> R {
        try await run(on: pools().readers, write: false, body)
    }

    /// Runs `body` on the writer thread (one at a time, in order of submission).
    package func onWriterThread<R: Sendable>(
        _ body: @escaping @Sendable (CancellationFlag) throws -> R
    ) async throws -> R {
        try await run(on: pools().writer, write: true, body)
    }

    private func pools() -> (readers: WorkerPool, writer: WorkerPool) {
        workerPools.withLock { pools in
            if pools.readers == nil {
                pools.readers = WorkerPool(
                    name: "hybridstore-reader", threads: configuration.readerThreads ?? max(2, cores))
                pools.writer = WorkerPool(name: "hybridstore-writer", threads: 1)
            }
            return (pools.readers!, pools.writer!)
        }
    }

    private func run<R: Sendable>(
        on pool: WorkerPool, write: Bool, _ body: @escaping @Sendable (CancellationFlag) throws -> R
    )
        async throws -> R
    {
        try Task.checkCancellation()
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
                pool.submit { [observer] in
                    guard !flag.isCancelled else {
                        observer?.cancelled(write: write)
                        return continuation.resume(throwing: CancellationError())
                    }
                    do {
                        continuation.resume(returning: try body(flag))
                    } catch let error as HybridStoreError where error.code == .cancelled {
                        observer?.cancelled(write: write)
                        continuation.resume(throwing: CancellationError())
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            flag.cancel()
        }
    }
}

extension TenantScope {
    /// `write` scoped to the tenant, on the store's writer thread.
    public func write<R: Sendable>(_ body: @escaping @Sendable (WriteTransaction) throws -> R) async throws -> R {
        let (store, name) = (store, name)
        return try await store.onWriterThread { _ in try store.write(tenant: name, body) }
    }

    /// The tenant's nearest rows, on a reader thread.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) async throws -> [SearchHit] {
        try await query(
            collection, near: vector, k: k, where: filter,
            options: QueryOptions(recallTarget: recallTarget, searchEffort: searchEffort), returning: columns
        ).hits
    }

    /// The full query restricted to the tenant, on a reader thread; cancellable between its steps.
    public func query(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter?, options: QueryOptions,
        returning columns: [String] = [], explain: Bool = false
    )
        async throws -> SearchResult
    {
        let (store, name) = (store, name)
        return try await store.onReaderThread { flag in
            var options = options
            options.cancellation = flag
            return try store.query(
                collection, near: vector, k: k, where: filter, options: options, returning: columns,
                explain: explain, tenant: name)
        }
    }

    /// Keyword or hybrid retrieval restricted to the tenant, on a reader thread.
    public func retrieve(
        _ collection: CollectionRef, text: TextQuery, near vector: [Float]?, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, depth: Int? = nil, options: QueryOptions = QueryOptions(),
        returning columns: [String] = [], explain: Bool = false
    )
        async throws -> (hits: [RetrievalHit], explanation: RetrievalExplanation)
    {
        let (store, name) = (store, name)
        return try await store.onReaderThread { flag in
            var options = options
            options.cancellation = flag
            return try store.retrieve(
                collection, text: text, near: vector, k: k, where: filter, fusion: fusion,
                depth: depth, options: options, returning: columns, explain: explain, tenant: name)
        }
    }

    /// The tenant's rows among `ids`, on a reader thread.
    public func get(
        _ ids: [RowID], from collection: CollectionRef, returning columns: [String]? = nil,
        includeVector: Bool = false
    ) async throws -> [Row] {
        let (store, name) = (store, name)
        return try await store.onReaderThread { _ in
            try store.get(ids, from: collection, returning: columns, includeVector: includeVector, tenant: name)
        }
    }

    /// The tenant's rows (matching `filter`, when given), on a reader thread.
    public func count(_ collection: CollectionRef, where filter: Filter? = nil) async throws -> Int {
        let (store, name) = (store, name)
        return try await store.onReaderThread { _ in try store.count(collection, where: filter, tenant: name) }
    }

    /// The tenant's usage, on a reader thread.
    public func usage(since: Date? = nil) async throws -> TenantUsage {
        let (store, name) = (store, name)
        return try await store.onReaderThread { _ in try store.usage(tenant: name, since: since) }
    }
}
