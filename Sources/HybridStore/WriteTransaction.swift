import Foundation
import HNSW
import QueryPlanner

/// The writes of one `HybridStore.write { tx in … }` closure: one SQLite transaction. Each call validates
/// its item first and throws a typed error naming the item and the column; a throw from the closure rolls
/// the whole transaction back, so the store (database and index) is exactly as before.
///
/// In a collection with a tenant column every write is charged to the tenants whose rows it changes (rows
/// and bytes per tier, rows written and deleted), in this same transaction, and checked against their quotas
/// just before COMMIT. A transaction from `store.tenant(name).write` is scoped: it reaches only that tenant's
/// rows, and its inserts get the tenant's name in the tenant column.
///
/// Valid only inside its closure, on the closure's thread.
public final class WriteTransaction {
    let store: HybridStore
    let connection: Connection
    /// The tenant this transaction is scoped to, or nil.
    let tenant: String?
    /// What this transaction changes of each tenant's usage; charged by `finish()`.
    var charges: [String: TenantCharge] = [:]
    /// Final effect per collection and row, applied to the index after COMMIT.
    var effects: [Int64: [Int64: Effect]] = [:]
    var changeCount = 0
    /// Updates of derived state other than the index (the in-memory cold tier), run after COMMIT: before the
    /// index is updated (rows arriving in the cold tier, so they are visible there before they leave the
    /// graph) and after it (blocks replaced, so moved rows are in the graph before they leave the cold tier).
    /// Readers in between may see a row in both tiers; the merge keeps it once.
    var beforePublish: [() -> Void] = []
    var onCommit: [() -> Void] = []
    /// Cold blocks no longer referenced once this transaction commits, deleted in a transaction of their own
    /// after the in-memory tier stopped naming them (so no reader is left with a block it cannot read).
    var garbageBlocks: [Int64] = []

    /// What a row's writes in this transaction amount to, for the derived state.
    struct Effect {
        var deleted = false
        /// A new vector (and the row's id), when one was written.
        var vector: [Float]?
        var id: RowID?
        /// New values of filterable columns, by name.
        var values: [String: Value] = [:]
        /// The cold block the row was in before this transaction, when it was cold (for the in-memory tier).
        var coldBlock: Int64?
        /// A searchable column was written (the row's length for keyword ranking changes).
        var text = false
    }

    /// Per tenant, the deltas of one transaction.
    struct TenantCharge {
        var hotRows: Int64 = 0, hotBytes: Int64 = 0, coldRows: Int64 = 0, coldBytes: Int64 = 0
        var rowsWritten: Int64 = 0, rowsDeleted: Int64 = 0, bytesWritten: Int64 = 0
        var hasFlows: Bool { rowsWritten != 0 || rowsDeleted != 0 || bytesWritten != 0 }
    }

    /// What one row counts for its tenant.
    struct RowAccount {
        var tenant: String
        var bytes: Int64
        var cold: Bool
    }

    init(store: HybridStore, connection: Connection, tenant: String? = nil) {
        self.store = store
        self.connection = connection
        self.tenant = tenant
    }

    /// Inserts a new row.
    /// - Throws: `duplicateID`, `dimensionMismatch`, `nonFiniteVector`, `unknownColumn`, `typeMismatch`,
    ///   `missingValue`, `unknownCollection`.
    public func insert(
        _ id: RowID, into collection: CollectionRef, vector: [Float], values: [String: Value] = [:]
    )
        throws(HybridStoreError)
    {
        let s = try store.state(collection)
        try checkID(id, s)
        try checkVector(vector, s, id: id)
        let row = try checkedValues(try scoped(values, s, id: id, forInsert: true), s, id: id, forInsert: true)
        if let existing = try existingRow(id, s) {
            // Scoped, the same words whoever holds the id: nothing here says whether another tenant does.
            _ = existing
            throw HybridStoreError(
                .duplicateID,
                tenant == nil
                    ? "collection `\(s.name)`: id \(id) already exists; use upsert to replace it"
                    : "collection `\(s.name)`: id \(id) is not available; use another id, or upsert to replace a row of yours",
                context: ["collection": s.name, "id": id.description])
        }
        try insertRow(id, vector: vector, columns: row, s)
    }

    /// Inserts a row, or replaces an existing row's vector (when given) and the given columns (others keep
    /// their values).
    /// - Throws: as `insert`, and `missingValue` when a new row has no vector.
    public func upsert(
        _ id: RowID, into collection: CollectionRef, vector: [Float]?, values: [String: Value] = [:]
    )
        throws(HybridStoreError)
    {
        let s = try store.state(collection)
        try checkID(id, s)
        if let vector { try checkVector(vector, s, id: id) }
        guard let (existing, cold, owner) = try existingRow(id, s) else {
            guard let vector else {
                throw HybridStoreError(
                    .missingValue, "collection `\(s.name)`: id \(id) is new, so it needs a vector",
                    context: ["collection": s.name, "id": id.description])
            }
            let row = try checkedValues(try scoped(values, s, id: id, forInsert: true), s, id: id, forInsert: true)
            try insertRow(id, vector: vector, columns: row, s)
            return
        }
        if tenant != nil && owner != tenant {
            throw HybridStoreError(
                .duplicateID, "collection `\(s.name)`: id \(id) is not available; use another id",
                context: ["collection": s.name, "id": id.description])
        }
        let row = try checkedValues(try scoped(values, s, id: id, forInsert: false), s, id: id, forInsert: false)
        var carried: [String: Value] = [:]
        var coldBlock: Int64?
        let before = try account(s, existing)
        try sql {
            if vector != nil && cold {
                // A cold row given a vector returns to the hot tier; its other filter values come along.
                coldBlock = try connection.statement(SQL.deleteColdRow).scalar([.integer(s.number), .integer(existing)])
                    .flatMap(integerValue)
                let filterable = s.schema.columns.indices.filter { s.schema.columns[$0].filterable }
                carried = try store.rowValues(existing, positions: filterable, s, connection)
            }
            if let vector {
                let statement = try connection.statement(s.table.updateVector)
                try statement.bind(.integer(existing), at: 1)
                unsafe try vector.withUnsafeBufferPointer { unsafe try statement.bind(floats: $0, at: 2) }
                while try statement.step() {}
                statement.reset()
            }
            for (position, value) in row where value != nil {
                try connection.statement(s.table.updateColumn(position)).run([.integer(existing), value!])
            }
            try log(s, row: existing, op: vector == nil ? .values : .vector)
        }
        try charge(before: before, after: try account(s, existing), written: true)
        if !carried.isEmpty { effects[s.number, default: [:]][existing, default: Effect()].values = carried }
        if let coldBlock { effects[s.number, default: [:]][existing, default: Effect()].coldBlock = coldBlock }
        record(s, existing, vector: vector, id: id, values: row)
    }

    /// Sets columns of an existing row; its vector and other columns are unchanged.
    /// - Throws: `notFound`, `unknownColumn`, `typeMismatch`, `missingValue` (null into a non-null column).
    public func update(_ id: RowID, in collection: CollectionRef, values: [String: Value]) throws(HybridStoreError) {
        let s = try store.state(collection)
        try checkID(id, s)
        let row = try checkedValues(try scoped(values, s, id: id, forInsert: false), s, id: id, forInsert: false)
        guard let (existing, cold, owner) = try existingRow(id, s), tenant == nil || owner == tenant else {
            throw HybridStoreError(
                .notFound, "collection `\(s.name)`: no id \(id) to update",
                context: ["collection": s.name, "id": id.description])
        }
        let before = try account(s, existing)
        try sql {
            if cold, effects[s.number]?[existing]?.coldBlock == nil,
                let block = try connection.statement(SQL.coldBlockOfRow).scalar([
                    .integer(s.number), .integer(existing),
                ]).flatMap(integerValue)
            {
                effects[s.number, default: [:]][existing, default: Effect()].coldBlock = block
            }
            for (position, value) in row where value != nil {
                try connection.statement(s.table.updateColumn(position)).run([.integer(existing), value!])
            }
            try log(s, row: existing, op: .values)
        }
        try charge(before: before, after: try account(s, existing), written: true)
        record(s, existing, vector: nil, id: id, values: row)
    }

    /// Deletes rows by id; ids that do not exist are skipped.
    /// - Returns: how many rows were deleted.
    /// - Throws: `typeMismatch` (an id of the wrong kind), `unknownCollection`.
    @discardableResult
    public func delete(_ ids: [RowID], from collection: CollectionRef) throws(HybridStoreError) -> Int {
        let s = try store.state(collection)
        try checkScope(s)
        var deleted = 0
        for id in ids {
            try checkID(id, s)
            guard let (existing, cold, owner) = try existingRow(id, s), tenant == nil || owner == tenant else {
                continue
            }
            let before = try account(s, existing)
            try charge(before: before, after: nil, written: false)
            let block = try sql { () throws -> Int64? in
                try connection.statement(s.table.deleteRow).run([.integer(existing)])
                let block =
                    cold
                    ? try connection.statement(SQL.deleteColdRow).scalar([.integer(s.number), .integer(existing)])
                        .flatMap(integerValue) : nil
                try log(s, row: existing, op: .delete)
                return block
            }
            effects[s.number, default: [:]][existing] = Effect(
                deleted: true, coldBlock: block ?? effects[s.number]?[existing]?.coldBlock)
            deleted += 1
        }
        return deleted
    }

    // MARK: - Helpers

    private func sql<R>(_ body: () throws -> R) throws(HybridStoreError) -> R {
        try sqliteWork("writing", body)
    }

    /// Merges a write into the row's effect: a vector replaces the vector, values overwrite values.
    private func record(_ s: CollectionState, _ row: Int64, vector: [Float]?, id: RowID, values: [Int: Value?]) {
        var effect = effects[s.number]?[row] ?? Effect()
        if let vector {
            effect.vector = vector
            effect.id = id
        }
        for (position, value) in values {
            let spec = s.schema.columns[position]
            if spec.filterable, let value { effect.values[spec.name] = value }
            if spec.searchable { effect.text = true }
        }
        effects[s.number, default: [:]][row] = effect
    }

    func logChange(_ s: CollectionState, row: Int64, op: SQL.Op) throws { try log(s, row: row, op: op) }

    private func log(_ s: CollectionState, row: Int64, op: SQL.Op) throws {
        try connection.statement(SQL.appendChange).run([.integer(s.number), .integer(row), .integer(op.rawValue)])
        changeCount += 1
    }

    /// The row number of an id, whether it is in the cold tier, and its tenant, in one lookup.
    private func existingRow(
        _ id: RowID, _ s: CollectionState
    ) throws(HybridStoreError)
        -> (row: Int64, cold: Bool, tenant: String?)?
    {
        try sql {
            let statement = try connection.statement(s.table.rowForID)
            defer { statement.reset() }
            try statement.bind(id.value, at: 1)
            guard try statement.step() else { return nil }
            let owner: String? = if case .text(let t) = statement.column(2) { t } else { nil }
            return (statement.int64(0), statement.int64(1) != 0, owner)
        }
    }

    // MARK: - Tenants

    /// A scoped transaction reaches only collections with a tenant column.
    private func checkScope(_ s: CollectionState) throws(HybridStoreError) {
        guard let tenant, s.schema.tenantColumn == nil else { return }
        throw HybridStoreError(
            .wrongTenant, "collection `\(s.name)` has no tenant column, so tenant `\(tenant)` cannot write to it",
            context: ["collection": s.name, "tenant": tenant])
    }

    /// The values a write may set: in a scoped transaction the tenant column is the scope's (set on insert,
    /// and no other value allowed); any tenant name written must be a valid one.
    private func scoped(
        _ values: [String: Value], _ s: CollectionState, id: RowID, forInsert: Bool
    )
        throws(HybridStoreError) -> [String: Value]
    {
        try checkScope(s)
        guard let column = s.schema.tenantColumn else { return values }
        var values = values
        if let tenant {
            if let given = values[column], given != .text(tenant) {
                throw HybridStoreError(
                    .wrongTenant,
                    "collection `\(s.name)`, id \(id): tenant `\(tenant)` cannot set `\(column)` to \(given)",
                    context: ["collection": s.name, "id": id.description, "tenant": tenant, "column": column])
            }
            if forInsert { values[column] = .text(tenant) }
        }
        if case .text(let name)? = values[column] { try HybridStore.checkTenantName(name) }
        return values
    }

    /// What a row counts for its tenant now (nil: no tenant column, or no such row).
    func account(_ s: CollectionState, _ row: Int64) throws(HybridStoreError) -> RowAccount? {
        guard s.schema.tenantColumn != nil else { return nil }
        return try sql {
            let statement = try connection.statement(s.table.accountRow)
            defer { statement.reset() }
            try statement.bind(.integer(row), at: 1)
            guard try statement.step(), case .text(let tenant) = statement.column(0) else { return nil }
            return RowAccount(tenant: tenant, bytes: statement.int64(1), cold: statement.int64(2) != 0)
        }
    }

    /// Charges a row's move between tiers to its tenant (its rows and bytes change tier, nothing is written).
    func chargeTierMove(_ s: CollectionState, _ row: Int64, toCold: Bool) throws(HybridStoreError) {
        guard var before = try account(s, row) else { return }
        before.cold = !toCold
        var after = before
        after.cold = toCold
        try charge(before: before, after: after, written: false)
    }

    /// Charges the change of one row from `before` to `after` (either nil: inserted or deleted) to the
    /// tenants involved; `written` counts it as a row written.
    func charge(before: RowAccount?, after: RowAccount?, written: Bool) throws(HybridStoreError) {
        if let before {
            var c = charges[before.tenant] ?? TenantCharge()
            if before.cold {
                c.coldRows -= 1; c.coldBytes -= before.bytes
            } else {
                c.hotRows -= 1; c.hotBytes -= before.bytes
            }
            if after == nil && written == false { c.rowsDeleted += 1 }
            charges[before.tenant] = c
        }
        if let after {
            var c = charges[after.tenant] ?? TenantCharge()
            if after.cold {
                c.coldRows += 1; c.coldBytes += after.bytes
            } else {
                c.hotRows += 1; c.hotBytes += after.bytes
            }
            if written { c.rowsWritten += 1; c.bytesWritten += after.bytes }
            charges[after.tenant] = c
        }
    }

    /// Charges the transaction's usage to its tenants: checks the row and byte quotas of tenants that have
    /// them (against their committed totals, kept in memory while writers are serialized) and appends one
    /// usage-log row per tenant — sequential writes, so a transaction touching thousands of tenants does not
    /// rewrite thousands of pages; the log is folded into the tenants' rows at checkpoints and before usage
    /// is read. Called by `write` inside the transaction, just before COMMIT: a quota exceeded throws, and
    /// the transaction rolls back. A write that lowers a tenant's rows or bytes passes even over a (lowered)
    /// quota.
    func finish() throws(HybridStoreError) {
        guard !charges.isEmpty else { return }
        let bucket = store.usageBucket(Int64(Date().timeIntervalSince1970))
        let ordered = charges.sorted { $0.key < $1.key }
        let gauges = store.meter.withLock { m in ordered.map { m.quotaGauges[$0.key] } }
        for ((name, c), gauge) in zip(ordered, gauges) {
            let rowsAdded = c.hotRows + c.coldRows, bytesAdded = c.hotBytes + c.coldBytes
            if let gauge {
                if let max = gauge.maxRows, rowsAdded > 0, gauge.rows + rowsAdded > max {
                    throw HybridStore.quotaError(
                        tenant: name, quota: "rows", limit: max, current: gauge.rows, adding: rowsAdded)
                }
                if let max = gauge.maxBytes, bytesAdded > 0, gauge.bytes + bytesAdded > max {
                    throw HybridStore.quotaError(
                        tenant: name, quota: "bytes", limit: max, current: gauge.bytes, adding: bytesAdded)
                }
            }
            try sql {
                try connection.statement(SQL.appendUsage).run([
                    .text(name), .integer(bucket), .integer(c.hotRows), .integer(c.hotBytes), .integer(c.coldRows),
                    .integer(c.coldBytes), .integer(c.rowsWritten), .integer(c.rowsDeleted), .integer(c.bytesWritten),
                ])
            }
        }
        let committed = charges
        onCommit.append { [store] in store.chargesCommitted(committed) }
    }

    private func insertRow(
        _ id: RowID, vector: [Float], columns: [Int: Value?], _ s: CollectionState
    )
        throws(HybridStoreError)
    {
        try sql {
            let statement = try connection.statement(s.table.insert)
            try statement.bind(id.value, at: 1)
            unsafe try vector.withUnsafeBufferPointer { unsafe try statement.bind(floats: $0, at: 2) }
            for position in s.schema.columns.indices {
                try statement.bind((columns[position] ?? nil) ?? .null, at: Int32(position + 3))
            }
            while try statement.step() {}
            statement.reset()
            let row = connection.lastInsertRowID
            try log(s, row: row, op: .vector)
            record(s, row, vector: vector, id: id, values: columns)
            try charge(before: nil, after: insertedAccount(columns, s), written: true)
        }
    }

    /// What a row being inserted counts for its tenant, from the values bound (the same sizes as
    /// `SQL.Table.bytesExpression`, which `account` and `verify` read back): no SQLite round trip per row.
    private func insertedAccount(_ columns: [Int: Value?], _ s: CollectionState) -> RowAccount? {
        guard let position = s.schema.tenantPosition, case .text(let tenant)?? = columns[position] else { return nil }
        var bytes = Int64(4 * s.schema.vector.dimensions)
        for case let value?? in columns.values {
            switch value {
            case .null: break
            case .integer, .real, .boolean: bytes += 8
            case .text(let t): bytes += Int64(t.utf8.count)
            case .blob(let b): bytes += Int64(b.count)
            }
        }
        return RowAccount(tenant: tenant, bytes: bytes, cold: false)
    }

    private func checkID(_ id: RowID, _ s: CollectionState) throws(HybridStoreError) {
        guard id.kind == s.schema.id else {
            throw HybridStoreError(
                .typeMismatch, "collection `\(s.name)` has \(s.schema.id) ids, got \(id.kind) id \(id)",
                context: [
                    "collection": s.name, "id": id.description,
                    "expected": s.schema.id.rawValue, "actual": id.kind.rawValue,
                ])
        }
    }

    private func checkVector(_ vector: [Float], _ s: CollectionState, id: RowID) throws(HybridStoreError) {
        let dim = s.schema.vector.dimensions
        guard vector.count == dim else {
            throw HybridStoreError(
                .dimensionMismatch,
                "collection `\(s.name)`, id \(id): vector expects \(dim) dimensions, got \(vector.count)",
                context: [
                    "collection": s.name, "id": id.description, "expected": "\(dim)",
                    "actual": "\(vector.count)",
                ])
        }
        if let problem = vectorProblem(vector, metric: s.schema.vector.metric) {
            throw HybridStoreError(
                .nonFiniteVector, "collection `\(s.name)`, id \(id): vector rejected: \(problem.message)",
                context: ["collection": s.name, "id": id.description])
        }
    }

    /// Checks values against the schema. Returns position → value (nil = not given). For inserts, every
    /// non-null column must be given.
    private func checkedValues(
        _ values: [String: Value], _ s: CollectionState, id: RowID, forInsert: Bool
    )
        throws(HybridStoreError) -> [Int: Value?]
    {
        var result: [Int: Value?] = [:]
        for (name, value) in values {
            guard let (position, spec) = s.schema.column(name) else {
                throw HybridStoreError(
                    .unknownColumn, "collection `\(s.name)`, id \(id): no column `\(name)`",
                    context: ["collection": s.name, "id": id.description, "column": name])
            }
            result[position] = try coerce(value, to: spec, s, id: id)
        }
        if forInsert {
            for (position, spec) in s.schema.columns.enumerated() where !spec.nullable && result[position] == nil {
                throw HybridStoreError(
                    .missingValue,
                    "collection `\(s.name)`, id \(id): column `\(spec.name)` is not nullable and has no value",
                    context: ["collection": s.name, "id": id.description, "column": spec.name])
            }
        }
        return result
    }

    private func coerce(
        _ value: Value, to spec: ColumnSpec, _ s: CollectionState, id: RowID
    ) throws(HybridStoreError)
        -> Value
    {
        let converted: Value? =
            switch (spec.type, value) {
            case (_, .null): spec.nullable ? .null : nil
            case (.integer, .integer), (.real, .real), (.text, .text), (.boolean, .boolean), (.blob, .blob): value
            case (.real, .integer(let v)): .real(Double(v))
            default: nil
            }
        guard let converted, !(spec.type == .real && converted.number.map { !$0.isFinite } == true) else {
            let code: HybridStoreError.Code = value == .null ? .missingValue : .typeMismatch
            let got = value.number.map { $0.isFinite ? value.typeName : "\($0), which is not finite" } ?? value.typeName
            throw HybridStoreError(
                code,
                "collection `\(s.name)`, id \(id): column `\(spec.name)` is \(spec.nullable ? "" : "non-null ")\(spec.type.rawValue), got \(got)",
                context: [
                    "collection": s.name, "id": id.description, "column": spec.name,
                    "expected": spec.type.rawValue, "actual": value.typeName,
                ])
        }
        return converted
    }
}

extension Value {
    var typeName: String {
        switch self {
        case .integer: "integer"
        case .real: "real"
        case .text: "text"
        case .boolean: "boolean"
        case .blob: "blob"
        case .null: "null"
        }
    }
}

/// The integer a column value holds, if it is one.
func integerValue(_ value: Value) -> Int64? {
    if case .integer(let v) = value { return v }
    return nil
}
