import Foundation
import HNSW
import QueryPlanner

/// One search result: the row's id, its distance (see `Metric`), and the requested columns.
/// A query's answer: the hits, nearest first, and what the query did (`explanation`; its filter and actual
/// matches are rendered only when the query was run to explain).
public struct SearchResult: Sendable {
    public var hits: [SearchHit]
    public var explanation: Explanation
}

public struct SearchHit: Sendable, Equatable, ColumnValues {
    public var id: RowID
    public var distance: Float
    public var values: [String: Value]
}

/// Something that carries a row's columns by name (`SearchHit`, `RetrievalHit`, `Row`), read by type: each
/// accessor is nil when the column was not returned, is NULL, or holds another type (`double` widens integers).
public protocol ColumnValues {
    var values: [String: Value] { get }
}

extension ColumnValues {
    public func int(_ column: String) -> Int64? { values[column]?.integerValue }
    public func double(_ column: String) -> Double? { values[column]?.realValue }
    public func string(_ column: String) -> String? { values[column]?.textValue }
    public func bool(_ column: String) -> Bool? { values[column]?.booleanValue }
    public func bytes(_ column: String) -> [UInt8]? { values[column]?.blobValue }
    /// Whether the column was returned and is NULL.
    public func isNull(_ column: String) -> Bool { values[column] == .null }
}

extension HybridStore {
    /// Reads rows by id, in the order given; ids that do not exist are left out.
    /// - Parameters:
    ///   - columns: columns to return; nil returns all.
    ///   - includeVector: also return each row's stored vector.
    /// - Throws: `unknownColumn`, `typeMismatch` (an id of the wrong kind), `unknownCollection`, `sqlite`.
    /// - Complexity: one SQL statement.
    public func get(
        _ ids: [RowID], from collection: CollectionRef, returning columns: [String]? = nil,
        includeVector: Bool = false
    ) throws(HybridStoreError) -> [Row] {
        try get(ids, from: collection, returning: columns, includeVector: includeVector, tenant: nil)
    }

    /// `get`, keeping only the rows of `tenant` when given.
    func get(
        _ ids: [RowID], from collection: CollectionRef, returning columns: [String]?, includeVector: Bool,
        tenant: String?, on reader: Connection? = nil
    ) throws(HybridStoreError) -> [Row] {
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        let s = try state(collection)
        let positions =
            try columns.map { names throws(HybridStoreError) in try columnPositions(names, s) }
            ?? Array(s.schema.columns.indices)
        // Scoped: the tenant column is read too (last), checked, and left out of the row unless asked for.
        var read = positions
        if let tenant {
            guard let t = s.schema.tenantPosition else { _ = try tenantFilter(tenant, s); return [] }
            read.append(t)
        }
        for id in ids where id.kind != s.schema.id {
            throw HybridStoreError(
                .typeMismatch, "collection `\(s.name)` has \(s.schema.id) ids, got \(id.kind) id \(id)",
                context: ["collection": s.name, "id": id.description])
        }
        guard !ids.isEmpty else { return [] }
        // A few ids: one indexed lookup each. Many: one statement over a JSON array, which SQLite's JSON
        // functions cannot carry text holding NUL through (it would come back cut), so such ids are looked up
        // one by one too.
        let perID =
            ids.count <= 32 || ids.contains { if case .string(let t) = $0 { t.utf8.contains(0) } else { false } }
        let byID = try withReader { c -> [RowID: Row] in
            // One read transaction: a cold row's vector comes from its block as of the same state as the row.
            try c.transaction(immediate: false) { () throws -> [RowID: Row] in
                var found: [Row] = []
                var numbers: [Int64] = []
                func take(_ statement: Statement) throws {
                    while try statement.step() {
                        var row = readRow(statement, positions: read, vector: includeVector, s)
                        if let tenant, let column = s.schema.tenantColumn {
                            guard row.values[column] == .text(tenant) else { continue }
                            if !positions.contains(s.schema.tenantPosition!) { row.values[column] = nil }
                        }
                        found.append(row)
                        numbers.append(statement.int64(0))
                    }
                    statement.reset()
                }
                if perID {
                    let statement = try c.statement(s.table.selectOneByID(read, vector: includeVector))
                    for id in Set(ids) {
                        statement.reset()
                        try statement.bind(id.value, at: 1)
                        try take(statement)
                    }
                } else {
                    let statement = try c.statement(s.table.selectByID(read, vector: includeVector))
                    try statement.bind(.text(jsonArray(ids.map(\.value))), at: 1)
                    try take(statement)
                }
                if includeVector { try fillColdVectors(&found, numbers: numbers, s, c) }
                return Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            }
        }
        return ids.compactMap { byID[$0] }
    }

    /// The number of rows in a collection.
    /// - Throws: `unknownCollection`, `sqlite`.
    public func count(_ collection: CollectionRef) throws(HybridStoreError) -> Int {
        let s = try state(collection)
        return try withReader { c in
            guard case .integer(let n)? = try c.statement(s.table.count).scalar() else { return 0 }
            return Int(n)
        }
    }

    // MARK: - Helpers

    func columnPositions(_ names: [String], _ s: CollectionState) throws(HybridStoreError) -> [Int] {
        var positions: [Int] = []
        for name in names {
            guard let (position, _) = s.schema.column(name) else {
                throw HybridStoreError(
                    .unknownColumn, "collection `\(s.name)` has no column `\(name)`",
                    context: ["collection": s.name, "column": name])
            }
            positions.append(position)
        }
        return positions
    }

    /// Hydrates rows by internal row number: a rowid lookup each for a handful (a query's k), else one
    /// statement with `json_each` over a JSON array.
    /// `reader`: a connection the caller holds (in a transaction), else one from the pool.
    func hydrate(
        _ rows: [Int64], positions: [Int], _ s: CollectionState, on reader: Connection? = nil
    )
        throws(HybridStoreError) -> [Int64: Row]
    {
        guard !rows.isEmpty else { return [:] }
        func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
            if let reader { return try sqliteWork("reading", { try body(reader) }) }
            return try self.withReader(body)
        }
        if rows.count <= 32 {
            // A rowid lookup each through one cached statement: cheaper than one statement over `row IN (…)`,
            // for which SQLite builds and sorts an ephemeral index of the list (8 rows: 3.4 vs 4.2 µs in C).
            return try withReader { c in
                let statement = try c.statement(s.table.hydrateRow(positions))
                defer { statement.reset() }
                var result: [Int64: Row] = [:]
                for row in rows {
                    statement.reset()
                    try statement.bind(.integer(row), at: 1)
                    if try statement.step() { result[row] = readRow(statement, positions: positions, vector: false, s) }
                }
                return result
            }
        }
        let json = "[" + rows.map(String.init).joined(separator: ",") + "]"
        return try withReader { c in
            let statement = try c.statement(s.table.hydrateByRow(positions))
            defer { statement.reset() }
            try statement.bind(.text(json), at: 1)
            var result: [Int64: Row] = [:]
            while try statement.step() {
                result[statement.int64(0)] = readRow(statement, positions: positions, vector: false, s)
            }
            return result
        }
    }

    /// Reads `row, id, [vector,] c…` from the current result row.
    func readRow(_ statement: Statement, positions: [Int], vector: Bool, _ s: CollectionState) -> Row {
        let id: RowID =
            switch statement.column(1) {
            case .integer(let v): .int(v)
            case .text(let t): .string(t)
            default: .string("")
            }
        var values: [String: Value] = [:]
        let first: Int32 = vector ? 3 : 2
        for (i, position) in positions.enumerated() {
            let spec = s.schema.columns[position]
            var value = statement.column(first + Int32(i))
            if spec.type == .boolean, case .integer(let v) = value { value = .boolean(v != 0) }
            values[spec.name] = value
        }
        let floats: [Float]? =
            unsafe vector
            ? statement.withBlob(2) { raw in
                (0..<raw.count / 4).map {
                    unsafe Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))
                }
            } : nil
        return Row(id: id, values: values, vector: floats)
    }

    /// A JSON array of integer and text values, for binding to `json_each`.
    func jsonArray(_ values: [Value]) -> String {
        let items: [Any] = values.map { v -> Any in
            switch v {
            case .integer(let i): return i
            case .text(let t): return t
            default: return NSNull()
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: items)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
