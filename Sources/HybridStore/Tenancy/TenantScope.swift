import Foundation
import QueryPlanner
import Synchronization

/// A handle on one tenant: every read, search, count, update and delete through it reaches only the rows
/// whose tenant column holds its name, whatever filter or ids it is given, and inserts through it get that
/// name. Queries through it are metered for the tenant and count against its query quota.
///
/// Cheap to create (no I/O); the tenant itself comes into being with its first write or `createTenant`.
public struct TenantScope: Sendable {
    public let store: HybridStore
    public let name: String

    /// A write transaction scoped to the tenant (see `HybridStore.write`).
    /// - Throws: as `HybridStore.write`; also `wrongTenant` (a collection without a tenant column, or a
    ///   value for the tenant column other than this tenant), `quotaExceeded`.
    public func write<R>(_ body: (WriteTransaction) throws -> R) throws(HybridStoreError) -> R {
        do { return try store.write(tenant: name, body) } catch { throw HybridStoreError(thrownBy: error, in: "write") }
    }

    /// Nearest rows of this tenant (see `HybridStore.search`).
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

    /// As `search`, with a filter in the string syntax.
    public func search(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filterText: String,
        searchEffort: Int? = nil, recallTarget: Double = 0.95,
        returning columns: [String] = []
    ) throws(HybridStoreError) -> [SearchHit] {
        try search(
            collection, near: vector, k: k, where: try store.parseFilter(filterText), searchEffort: searchEffort,
            recallTarget: recallTarget, returning: columns)
    }

    /// The full query, restricted to this tenant (see `HybridStore.query`).
    public func query(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter?, options: QueryOptions,
        returning columns: [String] = [], explain: Bool = false
    )
        throws(HybridStoreError) -> SearchResult
    {
        try store.query(
            collection, near: vector, k: k, where: filter, options: options, returning: columns,
            explain: explain, tenant: name)
    }

    /// The tenant's rows that best match the keywords (BM25 from the tenant's own rows: its scores reveal
    /// nothing of other tenants' text; see `HybridStore.search(_:text:k:where:returning:)`).
    public func search(
        _ collection: CollectionRef, text: TextQuery, k: Int, where filter: Filter? = nil,
        returning columns: [String] = []
    ) throws(HybridStoreError) -> [RetrievalHit] {
        try retrieve(collection, text: text, near: nil, k: k, where: filter, returning: columns).hits
    }

    /// Hybrid retrieval over the tenant's rows: both arms restricted to them.
    public func search(
        _ collection: CollectionRef, near vector: [Float], text: TextQuery, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, returning columns: [String] = []
    ) throws(HybridStoreError)
        -> [RetrievalHit]
    {
        try retrieve(collection, text: text, near: vector, k: k, where: filter, fusion: fusion, returning: columns).hits
    }

    /// Keyword or hybrid retrieval restricted to this tenant (see `HybridStore.retrieve`).
    public func retrieve(
        _ collection: CollectionRef, text: TextQuery, near vector: [Float]?, k: Int, where filter: Filter? = nil,
        fusion: Fusion = .standard, depth: Int? = nil, options: QueryOptions = QueryOptions(),
        returning columns: [String] = [], explain: Bool = false
    )
        throws(HybridStoreError) -> (hits: [RetrievalHit], explanation: RetrievalExplanation)
    {
        try store.retrieve(
            collection, text: text, near: vector, k: k, where: filter, fusion: fusion, depth: depth,
            options: options, returning: columns, explain: explain, tenant: name)
    }

    /// `explain` restricted to this tenant: the plan follows the tenant's size.
    public func explain(
        _ collection: CollectionRef, near vector: [Float], k: Int, where filter: Filter? = nil,
        options: QueryOptions = QueryOptions(), returning columns: [String] = []
    )
        throws(HybridStoreError) -> Explanation
    {
        try query(collection, near: vector, k: k, where: filter, options: options, returning: columns, explain: true)
            .explanation
    }

    /// This tenant's rows among `ids`, in the order given.
    public func get(
        _ ids: [RowID], from collection: CollectionRef, returning columns: [String]? = nil,
        includeVector: Bool = false
    ) throws(HybridStoreError) -> [Row] {
        try store.get(ids, from: collection, returning: columns, includeVector: includeVector, tenant: name)
    }

    /// This tenant's rows in a collection.
    public func count(_ collection: CollectionRef) throws(HybridStoreError) -> Int {
        try store.count(collection, where: nil, tenant: name)
    }

    /// This tenant's rows matching a filter.
    public func count(_ collection: CollectionRef, where filter: Filter) throws(HybridStoreError) -> Int {
        try store.count(collection, where: filter, tenant: name)
    }

    /// The ids of this tenant's rows matching a filter (all of them with nil), in row order.
    public func ids(in collection: CollectionRef, where filter: Filter? = nil) throws(HybridStoreError) -> [RowID] {
        try store.ids(in: collection, where: filter, tenant: name)
    }

    /// Deletes this tenant's rows among `ids` (others' ids are skipped).
    @discardableResult
    public func delete(_ ids: [RowID], from collection: CollectionRef) throws(HybridStoreError) -> Int {
        try sqliteWork("deleting rows of tenant `\(name)`") { try write { tx in try tx.delete(ids, from: collection) } }
    }

    /// This tenant's usage (see `HybridStore.usage(tenant:since:)`).
    public func usage(since: Date? = nil) throws(HybridStoreError) -> TenantUsage {
        try store.usage(tenant: name, since: since)
    }
}
