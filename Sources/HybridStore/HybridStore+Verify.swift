import HNSW
import QueryPlanner

/// What `verify()` found in one collection.
public struct CollectionReport: Sendable, Equatable {
    public var name: String
    /// Rows in SQLite.
    public var rows: Int
    /// Rows in SQLite with a well-formed vector (hot rows; cold ones keep theirs in blocks).
    public var vectors: Int
    /// Live nodes in the index.
    public var indexNodes: Int
    /// Every disagreement between SQLite and the derived state, one line each.
    public var mismatches: [String]
    /// Live index nodes no search can reach (HNSW's pruning can drop a node's last in-link, as in hnswlib);
    /// not a data mismatch: `checkpoint()` reconnects them.
    public var unreachableNodes: Int = 0
}

/// What `verify()` found.
public struct VerifyReport: Sendable, Equatable {
    public var collections: [CollectionReport]
    /// Tenants whose recorded rows or bytes per tier differ from what their rows add up to, one line each.
    public var tenantMismatches: [String] = []
    public var isConsistent: Bool { collections.allSatisfy(\.mismatches.isEmpty) && tenantMismatches.isEmpty }
}

extension HybridStore {
    /// Compares every collection's rows in SQLite with its index and id table: each row's vector must be in
    /// the index under its row number with the same components (normalised for cosine) and map back to its
    /// id; the index must hold nothing else; the graph's invariants must hold. Writers wait meanwhile.
    /// - Throws: `sqlite`, `corruptFile`.
    /// - Complexity: O(rows × dimensions).
    public func verify() throws(HybridStoreError) -> VerifyReport {
        try sqliteWork("verifying") {
            try withWriter { c, _ in
                var reports: [CollectionReport] = []
                try foldUsageLog(c)
                let states = catalog.withLock { Array($0.values) }.sorted { $0.name < $1.name }
                for s in states { reports.append(try verify(s, c)) }
                return VerifyReport(collections: reports, tenantMismatches: try verifyTenants(states, c))
            }
        }
    }

    /// Recounts every tenant's rows and bytes per tier from its rows and compares them with `hs_tenants`.
    private func verifyTenants(_ states: [CollectionState], _ c: Connection) throws -> [String] {
        var counted: [String: [Int64]] = [:]
        for s in states where s.schema.tenantColumn != nil {
            let statement = try c.prepareOnce(s.table.tenantTotals)
            while try statement.step() {
                guard case .text(let name) = statement.column(0) else { continue }
                var totals = counted[name] ?? [0, 0, 0, 0]
                for i in 0..<4 { totals[i] += statement.int64(Int32(i + 1)) }
                counted[name] = totals
            }
        }
        var problems: [String] = []
        let recorded = try c.statement(SQL.allTenants)
        defer { recorded.reset() }
        var seen = Set<String>()
        while try recorded.step() {
            guard case .text(let name) = recorded.column(0) else { continue }
            seen.insert(name)
            let have = (5...8).map { recorded.int64(Int32($0)) }
            let want = counted[name] ?? [0, 0, 0, 0]
            if have != want {
                problems.append(
                    "tenant `\(name)`: recorded hot rows/bytes, cold rows/bytes \(have), its rows add up to \(want)")
            }
        }
        for name in counted.keys.sorted() where !seen.contains(name) {
            problems.append("tenant `\(name)` has rows but no usage record")
        }
        return problems
    }

    private func verify(_ s: CollectionState, _ c: Connection) throws -> CollectionReport {
        var problems: [String] = []
        let dim = s.schema.vector.dimensions
        // Cold rows: each must be in the block its entry names, and the block must decode.
        var coldBlockOf: [Int64: Int64] = [:]
        let coldStatement = try c.prepareOnce(SQL.coldRowsOfCollection)
        try coldStatement.bind(.integer(s.number), at: 1)
        while try coldStatement.step() { coldBlockOf[coldStatement.int64(0)] = coldStatement.int64(1) }
        var blockRows: [Int64: Set<Int64>] = [:]
        for block in Set(coldBlockOf.values).sorted() {
            do {
                blockRows[block] = Set(try readColdBlock(s, block, c).rows)
            } catch {
                problems.append("cold block \(block): \(error.message)")
                blockRows[block] = []
            }
        }
        var coldSeen = 0
        var rows = 0, vectors = 0
        var seen = Set<UInt64>()
        var unreachable = 0
        let statement = try c.statement(s.table.allRowsWithVectors)
        defer { statement.reset() }
        try s.read { index, idOf in
            while try statement.step() {
                rows += 1
                let row = UInt64(statement.int64(0))
                var stored = unsafe statement.withBlob(2) { unsafe floats(from: $0) }
                if stored.isEmpty {
                    coldSeen += 1
                    if let block = coldBlockOf[Int64(row)] {
                        if blockRows[block]?.contains(Int64(row)) != true {
                            problems.append("cold row \(row) is not in its block \(block)")
                        }
                    } else {
                        problems.append("row \(row) has no vector and no cold block")
                    }
                    if index.node(forLabel: row) != nil { problems.append("cold row \(row) is also in the index") }
                    continue
                }
                if coldBlockOf[Int64(row)] != nil { problems.append("hot row \(row) also has a cold entry") }
                guard stored.count == dim, stored.allSatisfy(\.isFinite) else {
                    problems.append("row \(row): stored vector has \(stored.count) components or a non-finite one")
                    continue
                }
                vectors += 1
                seen.insert(row)
                guard let node = index.node(forLabel: row), let inIndex = index.vector(forLabel: row) else {
                    problems.append("row \(row) (id \(statement.column(1))) is missing from the index")
                    continue
                }
                if s.schema.vector.metric == .cosine {
                    unsafe stored.withUnsafeMutableBufferPointer { unsafe normalize($0) }
                }
                if zip(stored, inIndex).contains(where: { abs($0 - $1) > 1e-5 * max(1, abs($0)) }) {
                    problems.append("row \(row): the index holds a different vector")
                }
                let expected: RowID? =
                    switch statement.column(1) {
                    case .integer(let v): .int(v)
                    case .text(let t): .string(t)
                    default: nil
                    }
                if idOf(node) != expected {
                    problems.append(
                        "row \(row): node \(node) maps to id \(idOf(node).map(\.description) ?? "none"), expected \(expected.map(\.description) ?? "none")"
                    )
                }
            }
            for label in index.labels() where !seen.contains(label) {
                problems.append("the index holds row \(label), which the database does not have")
            }
            for line in index.checkInvariants() {
                if line.contains("unreachable from the entry point") {
                    unreachable = Int(line.prefix { $0.isNumber }) ?? 1
                } else {
                    problems.append("index: \(line)")
                }
            }
        }
        if coldSeen != coldBlockOf.count {
            problems.append("\(coldBlockOf.count - coldSeen) cold entries name rows the database does not have")
        }
        // The in-memory cold tier (derived) must hold exactly the cold rows, in the blocks the database names.
        let strays = s.lock.read { () -> [String] in
            var out: [String] = []
            if s.cold.liveRows != coldBlockOf.count {
                out.append("the in-memory cold tier holds \(s.cold.liveRows) rows, the database \(coldBlockOf.count)")
            }
            for block in s.cold.blocks {
                for position in 0..<block.count where s.cold.rowOfSlot[Int(block.slot(position))] >= 0 {
                    let row = s.cold.rowOfSlot[Int(block.slot(position))]
                    if coldBlockOf[row] != block.id {
                        out.append("the in-memory cold tier places row \(row) in block \(block.id)")
                    }
                }
            }
            return Array(out.prefix(10))
        }
        problems += strays
        problems += try verifyText(s, c)
        let nodes = s.read { index, _ in index.count }
        return CollectionReport(
            name: s.name, rows: rows, vectors: vectors, indexNodes: nodes, mismatches: problems,
            unreachableNodes: unreachable)
    }

    /// The keyword index against the rows: one size record per row, and FTS5's own check that every row's
    /// searchable text is indexed as its tokens and nothing else is (re-tokenizing the rows).
    private func verifyText(_ s: CollectionState, _ c: Connection) throws -> [String] {
        guard !s.schema.searchablePositions.isEmpty else { return [] }
        var problems: [String] = []
        let counts = try c.prepareOnce(s.table.textRecordCount)
        if try counts.step(), counts.int64(0) != counts.int64(1) {
            problems.append("the keyword index holds \(counts.int64(0)) rows, the database \(counts.int64(1))")
        }
        let triggers = try c.prepareOnce(s.table.textTriggerCount)
        if try triggers.step(), triggers.int64(0) != 3 {
            problems.append("the keyword index has \(triggers.int64(0)) of its 3 triggers: writes would not reach it")
        }
        do {
            try c.execute(s.table.checkText)
        } catch {
            problems.append("the keyword index disagrees with the rows (FTS5 integrity check: \(error.message))")
        }
        return problems
    }

    /// Rebuilds every collection's keyword index from its rows (after `verify` found it disagreeing), in one
    /// transaction each. Returns the collections rebuilt.
    /// - Throws: `readOnly`, `sqlite`.
    @discardableResult
    public func repairKeywordIndexes() throws(HybridStoreError) -> [String] {
        try sqliteWork("rebuilding keyword indexes") {
            try withWriter { c, _ in
                var rebuilt: [String] = []
                for s in catalog.withLock({ Array($0.values) }).sorted(by: { $0.name < $1.name })
                where !s.schema.searchablePositions.isEmpty {
                    try c.transaction(immediate: true) {
                        try c.execute(s.table.dropText)
                        try c.execute(s.table.createText!)
                        try c.execute(s.table.rebuildText)
                    }
                    c.evictStatements(containing: s.table.textName)
                    s.lock.write {
                        s.textLengths.reset()
                        s.textPostings = nil
                    }
                    s.textStatistics.withLock { $0.removeAll() }
                    rebuilt.append(s.name)
                }
                return rebuilt
            }
        }
    }
}
