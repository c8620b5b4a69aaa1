import CKernels
import Foundation
import HNSW
import QueryPlanner

/// Where a row's vector lives.
public enum Tier: String, Sendable, Codable, CaseIterable {
    /// Full precision, in RAM, in the graph.
    case hot
    /// Compressed in blocks inside the database; only per-block summaries in RAM.
    case cold
}

/// What a cold step did (for `explain`).
struct ColdStepReport {
    var blocksProbed = 0
    var bytesDecompressed = 0
    var candidates = 0
    /// Matching rows ranked by code before any block was chosen (0 when blocks were chosen by centroid).
    var rowsRanked = 0
    /// Rows of the blocks chosen by centroid, ranked by code so that only blocks holding one that can still be
    /// among the k nearest are opened (0 when blocks were chosen by code).
    var rowsReranked = 0
    /// Milliseconds spent ranking blocks and planning which to read (before any block is read).
    var planMs = 0.0
}

extension HybridStore {
    /// Rows per cold block: a two-level k-means of the moved rows (groups of ~2,048, then leaves of this
    /// size) makes blocks of similar vectors small enough that a query decodes little beyond what it scores,
    /// and a block is the unit the cold step ranks (by centroid), reads and decodes. 16 rather than 64: the
    /// codes pick single rows to score, so a smaller block wastes less per read, for ~40 more bytes of summary
    /// a row and slightly more on disk; unfiltered queries rank more centroids. (Measured: Benchmarks/README.md,
    /// "Measurements behind constants", `coldBlockRows`.)
    public static let coldBlockRows = 16
    /// Rows per first-level k-means group.
    static let coldGroupRows = 2048

    /// Moves the rows matching `filter` (all rows when nil) to `tier`, in one transaction with the change
    /// log: to cold, their vectors leave the graph and RAM for LZ4 blocks of similar vectors inside the
    /// database; to hot, they return to the graph. Rows already in that tier are left alone. A crash at any
    /// point leaves every row in exactly one tier.
    /// - Parameter codec: how new cold blocks store vectors (`.float16ShuffledLZ4` halves them, lossy).
    /// - Returns: how many rows moved.
    /// - Throws: `invalidFilter`, `unknownCollection`, `corruptFile` (a cold block that does not decode), `sqlite`.
    @discardableResult
    public func tier(
        _ collection: CollectionRef, where filter: Filter? = nil, to tier: Tier,
        codec: ColdCodec = .bitShuffledLZ4
    ) throws(HybridStoreError) -> Int {
        let s = try state(collection)
        let condition =
            try filter.map { f throws(HybridStoreError) in try compiled(try validated(f.normalized, s), s) }
            ?? SQLCondition(text: "1", arguments: [])
        let moved = try sqliteWork("moving rows of `\(s.name)` to the \(tier) tier") {
            try write { tx in
                tier == .cold ? try moveToCold(s, condition, codec: codec, tx) : try moveToHot(s, condition, tx)
            }
        }
        // The index keeps freed slots for reuse; when most of it left for the cold tier, build it afresh
        // from the hot rows so the RAM is returned.
        if tier == .cold {
            let (live, capacity) = s.read { index, _ in (index.count, index.nodeCapacity) }
            if capacity >= 1024 && live * 2 < capacity {
                try rebuild(s, reason: "compacting after a move to the cold tier")
            }
        }
        return moved
    }

    /// Sets (or clears, with nil) the collection's tier policy: at every checkpoint, hot rows matching the
    /// filter move to the cold tier (e.g. `updated_at < 1700000000`). Stored in the database.
    /// - Throws: `invalidFilter`, `unknownCollection`, `sqlite`.
    public func setTierPolicy(_ collection: CollectionRef, coldWhere filter: Filter?) throws(HybridStoreError) {
        let s = try state(collection)
        let text = try filter.map { f throws(HybridStoreError) in try validated(f.normalized, s).description }
        try sqliteWork("setting the tier policy of `\(s.name)`") {
            try withWriter { c, _ in
                try c.statement(SQL.writeMeta).run([.text("tier_policy:\(s.number)"), text.map { .text($0) } ?? .null])
            }
        }
    }

    /// Applies every collection's tier policy (called by `checkpoint()`, before the snapshots).
    func applyTierPolicies() throws {
        for s in catalog.withLock({ Array($0.values) }) {
            let policy = try withWriter { c, _ -> String? in
                guard case .text(let text)? = try c.statement(SQL.readMeta).scalar([.text("tier_policy:\(s.number)")])
                else { return nil }
                return text
            }
            if let policy { try tier(s.handle, where: try parseFilter(policy), to: .cold) }
        }
    }

    private func moveToCold(
        _ s: CollectionState, _ condition: SQLCondition, codec: ColdCodec, _ tx: WriteTransaction
    )
        throws -> Int
    {
        let c = tx.connection
        let dim = s.schema.vector.dimensions
        let statement = try c.prepareOnce(s.table.hotRowsWhere(condition.text))
        try statement.bind(condition.arguments)
        var rows: [Int64] = []
        var vectors: [Float] = []
        while try statement.step() {
            rows.append(statement.int64(0))
            unsafe statement.withBlob(1) { unsafe appendFloats($0, to: &vectors) }
        }
        guard !rows.isEmpty else { return 0 }
        // Their filterable values, from the in-memory columns (the writer mutex is held: they are current).
        let values: [[String: Value]] = s.query { index, columns, _ in
            rows.map { row in index.node(forLabel: UInt64(row)).map { columns.values(of: $0) } ?? [:] }
        }
        let cosine = s.schema.vector.metric == .cosine
        var space = vectors  // the space distances are measured in: normalised for cosine
        if cosine {
            unsafe space.withUnsafeMutableBufferPointer { all in
                for i in 0..<rows.count {
                    unsafe normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim..<(i + 1) * dim]))
                }
            }
        }
        var added: [ColdRewrite.Added] = []
        for members in partition(space, count: rows.count, dim: dim) {
            let (centroid, radius) = centre(of: members, in: space, dim: dim)
            let block = ColdBlock(
                rows: members.map { rows[$0] }, dimensions: dim,
                vectors: members.flatMap { vectors[$0 * dim..<($0 + 1) * dim] })
            let centroidBytes = unsafe centroid.withUnsafeBytes { unsafe [UInt8]($0) }
            try c.statement(SQL.insertColdBlock).run([
                .integer(s.number), .blob(centroidBytes), .real(Double(radius)),
                .integer(Int64(members.count)), .blob(block.encoded(codec: codec)),
            ])
            let id = c.lastInsertRowID
            for row in block.rows {
                try tx.chargeTierMove(s, row, toCold: true)
                try c.statement(SQL.insertColdRow).run([.integer(s.number), .integer(row), .integer(id)])
                try c.statement(s.table.updateVector).run([.integer(row), .blob([])])
                try tx.logChange(s, row: row, op: .delete)
                tx.effects[s.number, default: [:]][row] = WriteTransaction.Effect(deleted: true)
            }
            added.append(
                (
                    id, centroid, radius, block.rows,
                    Dictionary(uniqueKeysWithValues: members.map { (rows[$0], values[$0]) }),
                    members.flatMap { space[$0 * dim..<($0 + 1) * dim] }
                ))
        }
        tx.beforePublish.append {
            s.lock.write {
                for b in added {
                    s.cold.add(
                        block: b.id, centroid: b.centroid, radius: b.radius, rows: b.rows, values: b.values,
                        vectors: b.space)
                }
                s.cold.settle()
            }
        }
        return rows.count
    }

    private func moveToHot(_ s: CollectionState, _ condition: SQLCondition, _ tx: WriteTransaction) throws -> Int {
        let c = tx.connection
        let statement = try c.prepareOnce(s.table.coldRowsWhere(condition.text))
        try statement.bind(condition.arguments)
        var byBlock: [Int64: Set<Int64>] = [:]
        while try statement.step() { byBlock[statement.int64(1), default: []].insert(statement.int64(0)) }
        guard !byBlock.isEmpty else { return 0 }
        var rewrite = ColdRewrite()
        for (blockID, leaving) in byBlock.sorted(by: { $0.key < $1.key }) {
            try rewriteColdBlock(s, blockID, leaving: leaving, tx, &rewrite)
        }
        rewrite.publish(s, tx)
        return rewrite.moved
    }

    /// Rewrites blocks that are mostly dead positions (deleted or updated cold rows leave their old vectors
    /// in the block until then) without them, and drops blocks with no live row: one transaction per
    /// collection, run by `checkpoint()`.
    /// - Returns: how many blocks were rewritten or dropped.
    @discardableResult
    func compactColdTier() throws -> Int {
        var total = 0
        for s in catalog.withLock({ Array($0.values) }) {
            func sparse() -> [Int64] {
                s.lock.read { s.cold.blocks.filter { $0.corrupt == nil && $0.live * 2 < $0.count }.map(\.id) }
            }
            guard !sparse().isEmpty else { continue }
            total += try write { tx in
                // Again under the writer mutex: a write in between may have replaced some of them.
                let blocks = sparse()
                var rewrite = ColdRewrite()
                for id in blocks { try rewriteColdBlock(s, id, leaving: [], tx, &rewrite) }
                rewrite.publish(s, tx)
                return blocks.count
            }
        }
        return total
    }

    /// What block rewrites in one transaction change in the in-memory tier after COMMIT.
    struct ColdRewrite {
        var moved = 0
        var dropped: [Int64] = []
        /// A new block: its summary, rows, live rows' filterable values and vectors in the metric's space.
        typealias Added = (
            id: Int64, centroid: [Float], radius: Float, rows: [Int64], values: [Int64: [String: Value]],
            space: [Float]
        )
        var added: [Added] = []

        func publish(_ s: CollectionState, _ tx: WriteTransaction) {
            let (dropped, added) = (dropped, added)
            tx.garbageBlocks += dropped
            tx.onCommit.append {
                s.lock.write {
                    for id in dropped { s.cold.remove(block: id) }
                    for b in added {
                        s.cold.add(
                            block: b.id, centroid: b.centroid, radius: b.radius, rows: b.rows, values: b.values,
                            vectors: b.space)
                    }
                }
            }
        }
    }

    /// Returns the rows of `leaving` in a cold block to the hot tier and writes the rows that stay (stale
    /// positions dropped) to a new block in the same codec; the old block is deleted once the in-memory tier
    /// has switched. A block is never rewritten in place, so a query that read the in-memory tier before this
    /// commit and the database after it never pairs an old position list with new contents.
    private func rewriteColdBlock(
        _ s: CollectionState, _ blockID: Int64, leaving: Set<Int64>, _ tx: WriteTransaction,
        _ rewrite: inout ColdRewrite
    ) throws {
        let c = tx.connection
        let dim = s.schema.vector.dimensions
        let filterable = s.schema.columns.indices.filter { s.schema.columns[$0].filterable }
        let codec = try codecOf(blockID, s, c) ?? .bitShuffledLZ4
        let block = try readColdBlock(s, blockID, c)
        let valid = try coldRows(of: blockID, s, c)
        // The leaving rows' ids and filterable values, in one statement for the block.
        var returning: [Int64: Row] = [:]
        let leavingHere = block.rows.filter { leaving.contains($0) }
        if !leavingHere.isEmpty {
            let statement = try c.statement(s.table.hydrateByRow(filterable))
            defer { statement.reset() }
            try statement.bind(.text(jsonArray(leavingHere.map { .integer($0) })), at: 1)
            while try statement.step() {
                returning[statement.int64(0)] = readRow(statement, positions: filterable, vector: false, s)
            }
        }
        var staying: [Int] = []
        for (i, row) in block.rows.enumerated() {
            if leaving.contains(row) {
                try tx.chargeTierMove(s, row, toCold: false)
                let vector = Array(block.vectors[i * dim..<(i + 1) * dim])
                unsafe try vector.withUnsafeBufferPointer { buffer in
                    let update = try c.statement(s.table.updateVector)
                    try update.bind(.integer(row), at: 1)
                    unsafe try update.bind(floats: buffer, at: 2)
                    while try update.step() {}
                    update.reset()
                }
                _ = try c.statement(SQL.deleteColdRow).scalar([.integer(s.number), .integer(row)])
                try tx.logChange(s, row: row, op: .vector)
                tx.effects[s.number, default: [:]][row] = WriteTransaction.Effect(
                    deleted: false, vector: vector, id: returning[row]?.id ?? .string(""),
                    values: returning[row]?.values ?? [:],
                    coldBlock: blockID)
                rewrite.moved += 1
            } else if valid.contains(row) {
                staying.append(i)
            }
        }
        // The old block stays in the database until the in-memory tier no longer names it (see
        // `WriteTransaction.garbageBlocks`); no row refers to it from this COMMIT on.
        rewrite.dropped.append(blockID)
        guard !staying.isEmpty else { return }
        let kept = ColdBlock(
            rows: staying.map { block.rows[$0] }, dimensions: dim,
            vectors: staying.flatMap { block.vectors[$0 * dim..<($0 + 1) * dim] })
        var space = kept.vectors
        if s.schema.vector.metric == .cosine {
            unsafe space.withUnsafeMutableBufferPointer { all in
                for i in 0..<kept.rows.count {
                    unsafe normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim..<(i + 1) * dim]))
                }
            }
        }
        let (centroid, radius) = centre(of: Array(kept.rows.indices), in: space, dim: dim)
        unsafe try c.statement(SQL.insertColdBlock).run([
            .integer(s.number), .blob(centroid.withUnsafeBytes { unsafe [UInt8]($0) }), .real(Double(radius)),
            .integer(Int64(kept.rows.count)), .blob(kept.encoded(codec: codec)),
        ])
        let id = c.lastInsertRowID
        for row in kept.rows {
            try c.statement(SQL.moveColdRow).run([.integer(s.number), .integer(row), .integer(id)])
        }
        let values = s.lock.read {
            Dictionary(uniqueKeysWithValues: kept.rows.map { ($0, s.cold.values(of: $0, block: blockID) ?? [:]) })
        }
        rewrite.added.append((id, centroid, radius, kept.rows, values, space))
    }
}
