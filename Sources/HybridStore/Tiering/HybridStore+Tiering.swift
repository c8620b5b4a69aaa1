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
    /// Matching rows ranked by code (0 when blocks were chosen by centroid).
    var rowsRanked = 0
    /// Milliseconds spent ranking blocks and planning which to read (before any block is read).
    var planMs = 0.0
}

extension HybridStore {
    /// Rows per cold block: a two-level k-means of the moved rows (groups of ~2,048, then leaves of this
    /// size) makes blocks of similar vectors small enough that a query decodes little beyond what it scores,
    /// and a block is the unit the cold step ranks (by centroid), reads and decodes. 16 rather than 64: the
    /// codes pick single rows to score, so a smaller block wastes less per read (synth-200k p50, 64 → 32 → 16
    /// rows: 1 % filter 0.54 → 0.26 → 0.22 ms, 0.1 % 0.20 → 0.10 → 0.083 ms) for ~40 more bytes of summary a
    /// row (float16 centroids keep synth-200k at 0.244× of its all-hot RAM) and 0.887× instead of 0.875× raw
    /// on disk; unfiltered queries rank more centroids (none 0.34 → 0.40 ms from 32 to 16).
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
    public func tier(_ collection: CollectionRef, where filter: Filter? = nil, to tier: Tier,
                     codec: ColdCodec = .bitShuffledLZ4) throws -> Int {
        let s = try state(collection)
        let condition = try filter.map { f throws(HybridStoreError) in try compiled(try validated(f.normalized, s), s) }
            ?? SQLCondition(text: "1", arguments: [])
        let moved = try write { tx in
            tier == .cold ? try moveToCold(s, condition, codec: codec, tx) : try moveToHot(s, condition, tx)
        }
        // The index keeps freed slots for reuse; when most of it left for the cold tier, build it afresh
        // from the hot rows so the RAM is returned.
        if tier == .cold {
            let (live, capacity) = s.read { index, _ in (index.count, index.nodeCapacity) }
            if capacity >= 1024 && live * 2 < capacity { try rebuild(s, reason: "compacting after a move to the cold tier") }
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
                guard case .text(let text)? = try c.statement(SQL.readMeta).scalar([.text("tier_policy:\(s.number)")]) else { return nil }
                return text
            }
            if let policy { try tier(s.handle, where: try parseFilter(policy), to: .cold) }
        }
    }

    private func moveToCold(_ s: CollectionState, _ condition: SQLCondition, codec: ColdCodec, _ tx: WriteTransaction)
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
            statement.withBlob(1) { appendFloats($0, to: &vectors) }
        }
        guard !rows.isEmpty else { return 0 }
        // Their filterable values, from the in-memory columns (the writer mutex is held: they are current).
        let values: [[String: Value]] = s.query { index, columns, _ in
            rows.map { row in index.node(forLabel: UInt64(row)).map { columns.values(of: $0) } ?? [:] }
        }
        let cosine = s.schema.vector.metric == .cosine
        var space = vectors  // the space distances are measured in: normalised for cosine
        if cosine {
            space.withUnsafeMutableBufferPointer { all in
                for i in 0..<rows.count { normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim ..< (i + 1) * dim])) }
            }
        }
        var added: [ColdRewrite.Added] = []
        for members in partition(space, count: rows.count, dim: dim) {
            let (centroid, radius) = centre(of: members, in: space, dim: dim)
            let block = ColdBlock(rows: members.map { rows[$0] }, dimensions: dim,
                                  vectors: members.flatMap { vectors[$0 * dim ..< ($0 + 1) * dim] })
            let centroidBytes = centroid.withUnsafeBytes { [UInt8]($0) }
            try c.statement(SQL.insertColdBlock).run([.integer(s.number), .blob(centroidBytes), .real(Double(radius)),
                                                      .integer(Int64(members.count)), .blob(block.encoded(codec: codec))])
            let id = c.lastInsertRowID
            for row in block.rows {
                try tx.chargeTierMove(s, row, toCold: true)
                try c.statement(SQL.insertColdRow).run([.integer(s.number), .integer(row), .integer(id)])
                try c.statement(s.table.updateVector).run([.integer(row), .blob([])])
                try tx.logChange(s, row: row, op: .delete)
                tx.effects[s.number, default: [:]][row] = WriteTransaction.Effect(deleted: true)
            }
            added.append((id, centroid, radius, block.rows, Dictionary(uniqueKeysWithValues: members.map { (rows[$0], values[$0]) }),
                          members.flatMap { space[$0 * dim ..< ($0 + 1) * dim] }))
        }
        tx.beforePublish.append {
            s.lock.write {
                for b in added { s.cold.add(block: b.id, centroid: b.centroid, radius: b.radius, rows: b.rows, values: b.values, vectors: b.space) }
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
        typealias Added = (id: Int64, centroid: [Float], radius: Float, rows: [Int64], values: [Int64: [String: Value]],
                           space: [Float])
        var added: [Added] = []

        func publish(_ s: CollectionState, _ tx: WriteTransaction) {
            let (dropped, added) = (dropped, added)
            tx.garbageBlocks += dropped
            tx.onCommit.append {
                s.lock.write {
                    for id in dropped { s.cold.remove(block: id) }
                    for b in added {
                        s.cold.add(block: b.id, centroid: b.centroid, radius: b.radius, rows: b.rows, values: b.values, vectors: b.space)
                    }
                }
            }
        }
    }

    /// Returns the rows of `leaving` in a cold block to the hot tier and writes the rows that stay (stale
    /// positions dropped) to a new block in the same codec; the old block is deleted once the in-memory tier
    /// has switched. A block is never rewritten in place, so a query that read the in-memory tier before this
    /// commit and the database after it never pairs an old position list with new contents.
    private func rewriteColdBlock(_ s: CollectionState, _ blockID: Int64, leaving: Set<Int64>, _ tx: WriteTransaction,
                                  _ rewrite: inout ColdRewrite) throws {
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
            while try statement.step() { returning[statement.int64(0)] = readRow(statement, positions: filterable, vector: false, s) }
        }
        var staying: [Int] = []
        for (i, row) in block.rows.enumerated() {
            if leaving.contains(row) {
                try tx.chargeTierMove(s, row, toCold: false)
                let vector = Array(block.vectors[i * dim ..< (i + 1) * dim])
                try vector.withUnsafeBufferPointer { buffer in
                    let update = try c.statement(s.table.updateVector)
                    try update.bind(.integer(row), at: 1)
                    try update.bind(floats: buffer, at: 2)
                    while try update.step() {}
                    update.reset()
                }
                _ = try c.statement(SQL.deleteColdRow).scalar([.integer(s.number), .integer(row)])
                try tx.logChange(s, row: row, op: .vector)
                tx.effects[s.number, default: [:]][row] = WriteTransaction.Effect(
                    deleted: false, vector: vector, id: returning[row]?.id ?? .string(""), values: returning[row]?.values ?? [:],
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
        let kept = ColdBlock(rows: staying.map { block.rows[$0] }, dimensions: dim,
                             vectors: staying.flatMap { block.vectors[$0 * dim ..< ($0 + 1) * dim] })
        var space = kept.vectors
        if s.schema.vector.metric == .cosine {
            space.withUnsafeMutableBufferPointer { all in
                for i in 0..<kept.rows.count { normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim ..< (i + 1) * dim])) }
            }
        }
        let (centroid, radius) = centre(of: Array(kept.rows.indices), in: space, dim: dim)
        try c.statement(SQL.insertColdBlock).run([
            .integer(s.number), .blob(centroid.withUnsafeBytes { [UInt8]($0) }), .real(Double(radius)),
            .integer(Int64(kept.rows.count)), .blob(kept.encoded(codec: codec)),
        ])
        let id = c.lastInsertRowID
        for row in kept.rows { try c.statement(SQL.moveColdRow).run([.integer(s.number), .integer(row), .integer(id)]) }
        let values = s.lock.read {
            Dictionary(uniqueKeysWithValues: kept.rows.map { ($0, s.cold.values(of: $0, block: blockID) ?? [:]) })
        }
        rewrite.added.append((id, centroid, radius, kept.rows, values, space))
    }

    // MARK: - Cold search step

    /// Cold blocks a query opens at most (those holding a live matching row; bounds may stop it sooner):
    /// `coldProbeScale · effort · √blocks`, divided by √selectivity as the filter narrows (the k nearest matches
    /// lie among the k/s nearest rows, which spread over more blocks), all blocks at most.
    static func defaultColdProbes(blocks: Int, selectivity: Double, effort: Double = 1) -> Int {
        let base = coldProbeScale * effort * Double(blocks).squareRoot()
        return min(blocks, max(8, Int((base / max(selectivity, 1e-4).squareRoot()).rounded(.up))))
    }
    /// 1.5: an unfiltered query over synth-200k's 10k cold blocks considers 150 and reaches recall 0.952 over
    /// both tiers, the planner's default target of 0.95 (1.0: 0.945). The blocks considered, not the codes'
    /// margin, bound the broad classes' recall: 300 at ε₀ 1.3 reach 0.968 and still open only ~18.
    static let coldProbeScale = 1.5

    /// The k nearest live cold rows matching `filter`. Candidate blocks: those holding a live matching row,
    /// nearest centroid first, at most `probes` (default `defaultColdProbes`); or, when a filter on in-memory
    /// columns leaves few matching rows, every matching row. Which rows of a block are live and match comes
    /// from memory (blocks with none are not read); a filter on columns that are not filterable is checked
    /// through SQL per block. Unless asked to be exact, the candidate rows are ranked by their codes
    /// (`SignCodes`) and only blocks holding a row whose estimated distance interval can still reach the k
    /// nearest are opened, lowest interval first, stopping when the next cannot beat the k-th best exact
    /// distance found so far (hot or cold). With `probes: .max` the step is exact: every candidate block in
    /// centroid order, skipping (L2, cosine) those whose lower bound — distance to the centroid minus the
    /// radius — cannot beat the k-th best.
    func coldStep(_ s: CollectionState, query: [Float], k: Int, filter: Filter?, condition: SQLCondition?,
                  bound initial: Float?, probes: Int?, effort: Double = 1, reader held: Connection? = nil,
                  report: inout ColdStepReport) throws(HybridStoreError) -> [(row: Int64, distance: Float)] {
        let metric = s.schema.vector.metric
        let dim = s.schema.vector.dimensions
        var q = query
        if metric == .cosine { q.withUnsafeMutableBufferPointer { normalize($0) } }
        let kernel = DistanceKernel(metric: metric)
        func reported(_ d: Float) -> Float { metric == .cosine ? 1 + d : d }
        let started = nowNanos()
        return try s.lock.read { () throws(HybridStoreError) -> [(row: Int64, distance: Float)] in
            let tier = s.cold
            let blocks = tier.blocks  // locals: no exclusivity check per access of the class's arrays
            let blockCount = blocks.count
            guard blockCount > 0 else { return [] }
            // Which slots qualify: live, and matching when the filter's columns are in memory.
            let inMemory = filter.map { tier.columns.covers($0) } ?? true
            let matches: (UInt32) -> Bool
            var selectivity = 1.0
            if let filter, inMemory {
                let estimate = tier.columns.estimate(filter)
                if estimate == 0 && blocks.allSatisfy({ $0.corrupt == nil }) { return [] }
                selectivity = estimate / Double(max(tier.liveRows, 1))
                matches = tier.columns.predicate(filter)
            } else {
                matches = { _ in true }
            }
            /// Blocks the step may open at `effort`: the caller's count, or the store's rule.
            func allowedProbes(_ effort: Double) -> Int {
                min(blockCount, max(1, probes ?? Self.defaultColdProbes(blocks: blockCount, selectivity: selectivity, effort: effort)))
            }
            let maxProbe = allowedProbes(effort)
            let exhaustive = maxProbe >= blockCount
            var plan: [(block: Int, bound: Float, wanted: [Int])] = []
            // Few matching rows for the blocks the step may open (a selective filter): rank every matching row
            // by its code and open only blocks holding one that can still be among the k nearest. Else pick
            // blocks by centroid (then rank their rows by code). Not when asked to be exact (`probes` ≥ all
            // blocks, as opposed to a default that happens to allow every block): the codes' bound holds with
            // high probability, not always.
            // Which way is cheaper is decided at effort 1: effort then scales the work within the way chosen. (The
            // centroid way opens a few dozen of the blocks it may, so a higher effort does not make ranking
            // every matching row worth it: synth-cos-100k's 50 % class at effort 3 ranked all 40k by code,
            // 1.37 ms, where the centroid way at effort 2 took 0.48.)
            let exact = probes.map { $0 >= blockCount } ?? false
            let byCode = !exact && filter != nil && inMemory
                && Double(tier.liveRows) * selectivity <= Double(allowedProbes(1)) * Self.codeRanksPerBlockRead
            if byCode {
                let slots = tier.columns.collect(filter!, predicate: matches)
                report.rowsRanked = slots.count
                plan = codePlan(tier, metric: metric, query: q, slots: slots, keys: nil, k: k, bound: initial,
                                maxProbe: maxProbe, confidence: Self.codeConfidence(effort))
            }
            // Rank blocks by centroid: squared L2 to it (or −dot for inner product).
            let innerProduct = metric == .innerProduct
            let keys = byCode ? [] : q.withUnsafeBufferPointer { tier.keys(query: $0.baseAddress!, innerProduct: innerProduct) }
            /// The nearest any row of block b can be, in reported units (L2 and cosine: the centroid distance
            /// minus the radius; none for inner product). Only asked of the blocks popped.
            let radii = tier.radii, spans = tier.spans
            func lowerBound(_ b: Int) -> Float {
                guard metric != .innerProduct else { return -.infinity }
                let gap = max(0, keys[b].squareRoot() - radii[b])
                return metric == .cosine ? gap * gap / 2 : gap * gap
            }
            var order = NearestFirst(keys: keys, expected: maxProbe + 32)
            // The blocks to open, in centroid order: those holding a live row that matches (as far as memory
            // can tell), up to `maxProbe`. Blocks come nearest centroid first, not lowest bound first: a bound
            // that cannot beat the hot k-th ends an approximate step, but an exhaustive one only skips it.
            // A filter on columns held only in SQLite is checked here, per block, through SQL (so that blocks
            // without a matching row do not take places in the plan).
            let rowOfSlot = tier.rowOfSlot
            let sqlFilter = inMemory ? nil : s.table.coldBlockRowsWhere(condition?.text ?? "1")
            // The blocks picked by centroid, unless the step is exact, are ranked again by their rows' codes
            // below: their live matching rows go straight into one list (slot = the block's base + position).
            let rerank = !byCode && !exact
            var picked = 0
            var candidates: [UInt32] = []
            if rerank { candidates.reserveCapacity(maxProbe * 16) }
            let mayBeCorrupt = tier.corruptBlocks > 0
            func makePlan(_ c: Connection?) throws {
                var wanted: [Int] = []
                wanted.reserveCapacity(64)
                // SAFETY: every slot read is < base + count of its block's span, within rowOfSlot; blocks
                // prefetched are < blockCount, within keys, radii and spans.
                try rowOfSlot.withUnsafeBufferPointer { rowOfSlot in
                try spans.withUnsafeBufferPointer { spanBuffer in
                    while picked < maxProbe, let b = order.next() {
                        // Blocks come in no memory order, and ranking all centroids has just pushed these small
                        // arrays out of cache: fetch a block's entries 8 places ahead, and its rows (whose place
                        // needs its span) 4 places ahead, so that both are here when it comes up.
                        if let far = order.peek(8) {
                            hs_prefetch(spanBuffer.baseAddress! + far)
                            radii.withUnsafeBufferPointer { hs_prefetch($0.baseAddress! + far) }
                            keys.withUnsafeBufferPointer { hs_prefetch($0.baseAddress! + far) }
                        }
                        if let ahead = order.peek(4) { hs_prefetch(rowOfSlot.baseAddress! + Int(spanBuffer[ahead].base)) }
                        let bound = lowerBound(b)
                        if bound > initial ?? .infinity {
                            if exhaustive { continue }
                            break
                        }
                        if mayBeCorrupt, let corrupt = blocks[b].corrupt { throw corrupt }
                        wanted.removeAll(keepingCapacity: true)
                        let (base, count) = spans[b]
                        for position in 0..<Int(count) {
                            let slot = base + UInt32(position)
                            if rowOfSlot[Int(slot)] >= 0 && (!inMemory || matches(slot)) { wanted.append(position) }
                        }
                        if let sqlFilter, let c, !wanted.isEmpty {
                            let statement = try c.prepareOnce(sqlFilter)
                            try statement.bind(.integer(blocks[b].id), at: 1)
                            try statement.bind(condition?.arguments ?? [], from: 2)
                            var rows = Set<Int64>()
                            while try statement.step() { rows.insert(statement.int64(0)) }
                            wanted = wanted.filter { rows.contains(rowOfSlot[Int(base) + $0]) }
                        }
                        guard !wanted.isEmpty else { continue }
                        picked += 1
                        if rerank {
                            for position in wanted { candidates.append(base + UInt32(position)) }
                        } else {
                            plan.append((b, bound, wanted))
                        }
                    }
                }
                }
            }
            if byCode {
                if mayBeCorrupt { for entry in plan { if let corrupt = blocks[entry.block].corrupt { throw corrupt } } }
            } else if sqlFilter == nil {
                try sqliteWork("planning the cold step") { try makePlan(nil) }
            } else if let held {
                try sqliteWork("planning the cold step") { try makePlan(held) }
            } else {
                try withReader { c in try makePlan(c) }
            }
            // The blocks picked by centroid: rank their rows by code too, and open only those holding a row that
            // can still be among the k nearest (the same answers at ~¾ of the reads on synth-200k).
            if rerank && !candidates.isEmpty {
                report.rowsRanked = candidates.count
                plan = codePlan(tier, metric: metric, query: q, slots: candidates, keys: keys, k: k, bound: initial,
                                maxProbe: maxProbe, confidence: Self.codeConfidence(effort))
            }
            report.planMs = Double(nowNanos() - started) / 1e6
            // Worker w opens plan[w], plan[w + W], …, so each reads near blocks first; each keeps its own k best
            // and its own bound. W: `coldReadThreads` (default 1), one for short plans.
            let workers = plan.count < 8 ? 1 : max(1, min(configuration.coldReadThreads ?? 1, plan.count))
            var partial = [ColdWorkerResult](repeating: ColdWorkerResult(), count: workers)
            let counts = Locked((blocks: 0, candidates: 0, bytes: 0))
            let normalizedQuery = q
            func work(_ w: Int) -> ColdWorkerResult {
                var result = ColdWorkerResult()
                do throws(HybridStoreError) {
                    result.best = try probe(stride(from: w, to: plan.count, by: workers).map { plan[$0] }, w)
                } catch {
                    result.error = error
                }
                return result
            }
            func probe(_ share: [(block: Int, bound: Float, wanted: [Int])], _ w: Int) throws(HybridStoreError)
                -> [(row: Int64, distance: Float)]
            {
                var best: [(row: Int64, distance: Float)] = []
                best.reserveCapacity(k + 1)
                func kth() -> Float { min(best.count >= k ? best[k - 1].distance : .infinity, initial ?? .infinity) }
                let reader = ColdBlockReader()
                var decoded: [Float] = []
                var vector = [Float](repeating: 0, count: dim)
                var probed = 0, candidates = 0, bytes = 0
                // One read transaction for the whole share: SQLite's file locks and checks are taken once, not
                // per block (they were ~5 % of a query as syscalls). The first share reads through the caller's
                // connection when it holds one (already in a transaction).
                func inTransaction(_ body: (Connection) throws -> Void) throws(HybridStoreError) {
                    if w == 0, let held { return try sqliteWork("reading the cold tier") { try body(held) } }
                    try withReader { c in try c.transaction(immediate: false) { try body(c) } }
                }
                try inTransaction { c in
                    let blobs = BlobReader(c, table: "hs_cold_blocks", column: "data")
                    defer { blobs.close() }  // before the transaction ends
                    for (b, bound, planned) in share {
                        if bound > kth() {
                            if exhaustive { continue }
                            break
                        }
                        let block = blocks[b]
                        let wanted = planned
                        // Most rows wanted: decompress the whole block and unshuffle it at once (one pass per plane),
                        // not per row; else only the frames holding the wanted rows.
                        let whole = wanted.count * 2 >= block.count
                        // Gone from the database: replaced by a commit whose new blocks this tier does not name yet.
                        guard try loadColdBlock(s, block.id, c, through: blobs, into: reader, positions: whole ? nil : wanted)
                        else { continue }
                        probed += 1
                        bytes += reader.bytesInflated
                        if whole {
                            if decoded.count < reader.rows.count * dim {
                                decoded = [Float](repeating: 0, count: reader.rows.count * dim)
                            }
                            decoded.withUnsafeMutableBufferPointer { reader.vectors(into: $0.baseAddress!) }
                        }
                        // SAFETY: `decoded` holds rows.count × dim floats when `whole`, `vector` dim floats;
                        // neither array is resized inside the closures.
                        decoded.withUnsafeMutableBufferPointer { all in
                        vector.withUnsafeMutableBufferPointer { one in
                            normalizedQuery.withUnsafeBufferPointer { qb in
                                for position in wanted {
                                    let row = rowOfSlot[Int(block.slot(position))]
                                    // The block in the database must be the one the tier describes.
                                    guard position < reader.rows.count, reader.rows[position] == row else { continue }
                                    let v: UnsafeMutableBufferPointer<Float>
                                    if whole {
                                        v = UnsafeMutableBufferPointer(rebasing: all[position * dim ..< (position + 1) * dim])
                                    } else {
                                        reader.vector(at: position, into: one.baseAddress!)
                                        v = one
                                    }
                                    if metric == .cosine { normalize(v) }  // blocks keep the original vectors
                                    let d = reported(kernel(qb.baseAddress!, v.baseAddress!, dim))
                                    candidates += 1
                                    guard best.count < k || d < best[k - 1].distance
                                          || (d == best[k - 1].distance && row < best[k - 1].row) else { continue }
                                    let at = best.firstIndex { d < $0.distance || (d == $0.distance && row < $0.row) }
                                        ?? best.count
                                    best.insert((row, d), at: at)
                                    if best.count > k { best.removeLast() }
                                }
                            }
                        }
                        }
                    }
                }
                counts.withLock {
                    $0.blocks += probed
                    $0.candidates += candidates
                    $0.bytes += bytes
                }
                return best
            }
            if workers == 1 {
                partial[0] = work(0)
            } else {
                partial.withUnsafeMutableBufferPointer { out in
                    // SAFETY: worker w writes only out[w]; everything the workers read is immutable while they
                    // run (the tier under the collection's read lock, the plan, the bounds, the query); each has
                    // its own reader connection, block reader and buffers.
                    let job = ColdWork(run: work, out: out)
                    DispatchQueue.concurrentPerform(iterations: workers) { @Sendable w in job.out[w] = job.run(w) }
                }
            }
            if let error = partial.compactMap(\.error).first { throw error }
            let totals = counts.withLock { $0 }
            report.blocksProbed += totals.blocks
            report.candidates += totals.candidates
            report.bytesDecompressed += totals.bytes
            var best = partial.flatMap(\.best)
            best.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
            best = Array(best.prefix(k))
            // A block that did not decode on open has no rows in memory, so ranking rows by code never meets it.
            // Refuse the answer if such a block could hold a nearer row than the k-th found (its centroid bound;
            // any, for inner product): never an answer that silently skips rows.
            if byCode && tier.corruptBlocks > 0 {
                let kth = min(best.count >= k ? best[k - 1].distance : .infinity, initial ?? .infinity)
                for (b, block) in blocks.enumerated() {
                    guard let corrupt = block.corrupt else { continue }
                    let key = q.withUnsafeBufferPointer { tier.key(b, query: $0.baseAddress!, innerProduct: innerProduct) }
                    let gap = max(0, key.squareRoot() - tier.radii[b])
                    let bound: Float = metric == .innerProduct ? -.infinity : metric == .cosine ? gap * gap / 2 : gap * gap
                    if bound <= kth { throw corrupt }
                }
            }
            return best
        }
    }

    /// Matching rows one block read is worth ranking by code instead (a code takes ~20–40 ns, a block read
    /// ~4–5 µs): the cold step ranks by code when the matching cold rows number at most this many per block
    /// it may open. (256 ranked all 40k matching rows of synth-cos-100k's 50 % class at `coldEffort: 2`:
    /// 1.35 ms; 128 reads blocks by centroid there: 0.61 ms.)
    static let codeRanksPerBlockRead = 128.0
    /// ε₀ of the codes' error bound at effort 1 (`coldEffort` e makes it 1.3·√e). RaBitQ's 1.9 covers ~94 %
    /// of estimates and 1.3 ~81 % (`SignCodesTests`), but a row is lost only when its estimate errs high by that
    /// much *and* it is among the k nearest: recall ≥ 0.995 in every selective class of both benchmark sets at
    /// 1.3 (1.0000 over 1000 queries at effort 3–6), for ~20 % fewer block reads than 1.9 (measured with 1-bit
    /// codes).
    static let coldCodeConfidence: Float = 1.3
    static func codeConfidence(_ effort: Double) -> Float { coldCodeConfidence * Float(max(effort, 0).squareRoot()) }

    /// The blocks to open for the cold rows `slots` (live and matching): each row's distance estimated from its
    /// code with an interval that holds with high probability; the rows whose interval starts at or below the
    /// k-th smallest interval end (and the hot k-th, `bound`) can be among the k nearest, and the blocks
    /// holding them are opened in order of their lowest interval start, at most `maxProbe`. `keys`: per block
    /// ‖q − c‖² (L2, cosine) or −q·c (inner product), when the caller has them.
    private func codePlan(_ tier: ColdTier, metric: Metric, query q: [Float], slots: [UInt32],
                          keys: [Float]?, k: Int, bound initial: Float?, maxProbe: Int, confidence: Float)
        -> [(block: Int, bound: Float, wanted: [Int])]
    {
        guard !slots.isEmpty else { return [] }
        let codes = tier.codes
        let words = codes.words
        let centred = metric != .innerProduct
        var rotated = [Float](repeating: 0, count: codes.padded)
        q.withUnsafeBufferPointer { codes.rotate($0.baseAddress!, into: &rotated) }
        let querySum = rotated.reduce(0, +)
        let queryNorm = q.reduce(0) { $0 + $1 * $1 }.squareRoot()
        // A block's key: given, or computed for the last block seen (a block's slots are consecutive, so a
        // filter's matching slots come in runs of one block), without a per-query array over every block.
        var lastBlock = -1, lastKey: Float = 0
        var low = [Float](repeating: 0, count: slots.count)
        var high = low
        let scale: Float = metric == .cosine ? 0.5 : 1
        let n = slots.count
        // SAFETY: every slot here is < the slot count, so codeBits holds `words` words for it and blockOfSlot and
        // codeFactors an entry; `rotated` holds `padded` floats; low and high hold n floats.
        tier.codeBits.withUnsafeBufferPointer { bits in
        tier.codeFactors.withUnsafeBufferPointer { factors in
        tier.blockOfSlot.withUnsafeBufferPointer { blockOfSlot in
        low.withUnsafeMutableBufferPointer { low in
        high.withUnsafeMutableBufferPointer { high in
        rotated.withUnsafeBufferPointer { rq in
        q.withUnsafeBufferPointer { qb in
        slots.withUnsafeBufferPointer { slots in
            for i in 0..<n {
                // A block's code lines are fetched while the rows before it are estimated.
                if i + 16 < n {
                    let ahead = Int(slots[i + 16])
                    hs_prefetch(bits.baseAddress! + ahead * words)
                    hs_prefetch(factors.baseAddress! + ahead)
                    hs_prefetch(blockOfSlot.baseAddress! + ahead)
                }
                let slot = Int(slots[i])
                let b = Int(blockOfSlot[slot])
                if let keys {
                    lastKey = keys[b]
                } else if b != lastBlock {
                    lastKey = tier.key(b, query: qb.baseAddress!, innerProduct: !centred)
                    lastBlock = b
                }
                let f = factors[slot]
                let (ip, errorPerNorm) = codes.estimate(bits.baseAddress! + slot * words, f, rotatedQuery: rq.baseAddress!,
                                                       querySum: querySum, centred: centred)
                if centred {
                    let qc2 = lastKey
                    let err = 2 * f.norm * errorPerNorm * qc2.squareRoot() * confidence
                    let d2 = qc2 + f.norm * (f.norm - 2 * ip)
                    low[i] = max(0, d2 - err) * scale
                    high[i] = (d2 + err) * scale
                } else {
                    let d = lastKey - f.norm * ip
                    let err = f.norm * errorPerNorm * queryNorm * confidence
                    low[i] = d - err
                    high[i] = d + err
                }
            }
        }
        }
        }
        }
        }
        }
        }
        }
        // The cap: no row whose interval starts above the k-th smallest end can be among the k nearest.
        var cap = initial ?? .infinity
        if slots.count >= k {
            var smallest: [Float] = []  // the k smallest ends, ascending
            smallest.reserveCapacity(k + 1)
            for end in high where smallest.count < k || end < smallest[k - 1] {
                smallest.insert(end, at: smallest.firstIndex { end < $0 } ?? smallest.count)
                if smallest.count > k { smallest.removeLast() }
            }
            cap = min(cap, smallest[k - 1])
        }
        var plan: [(block: Int, bound: Float, wanted: [Int])] = []
        var entryOfBlock: [Int: Int] = [:]
        var lastEntry = -1
        lastBlock = -1
        let blockOfSlot = tier.blockOfSlot, spans = tier.spans
        for (i, slot) in slots.enumerated() where low[i] <= cap {
            let b = Int(blockOfSlot[Int(slot)])
            let position = Int(slot - spans[b].base)
            // Rows come in runs of one block: the map is asked only when the block changes.
            if b != lastBlock {
                lastBlock = b
                lastEntry = entryOfBlock[b] ?? -1
                if lastEntry < 0 {
                    lastEntry = plan.count
                    entryOfBlock[b] = lastEntry
                    plan.append((b, low[i], []))
                }
            }
            plan[lastEntry].bound = min(plan[lastEntry].bound, low[i])
            plan[lastEntry].wanted.append(position)
        }
        plan.sort { $0.bound < $1.bound || ($0.bound == $1.bound && $0.block < $1.block) }
        if plan.count > maxProbe { plan.removeLast(plan.count - maxProbe) }
        return plan
    }

    // MARK: - Helpers

    /// Builds the in-memory cold tier from the database (on open): block summaries, each block's row list
    /// (its position order), which rows are still cold there, and their filterable values. A block that does
    /// not decode is kept as corrupt: a query that reaches it gets `corruptFile` naming it.
    func loadColdTier(_ s: CollectionState, _ c: Connection) throws(HybridStoreError) {
        let tier = ColdTier(schema: s.schema)
        let filterable = s.schema.columns.indices.filter { s.schema.columns[$0].filterable }
        try sqliteWork("reading cold blocks of `\(s.name)`") { () throws in
            var values: [Int64: [Int64: [String: Value]]] = [:]
            let live = try c.prepareOnce(s.table.coldRowsWithValues(filterable))
            while try live.step() {
                values[live.int64(1), default: [:]][live.int64(0)] = readRow(live, positions: filterable, vector: false, s).values
            }
            let statement = try c.statement(SQL.coldSummaries)
            defer { statement.reset() }
            try statement.bind(.integer(s.number), at: 1)
            var summaries: [(id: Int64, centroid: [Float], radius: Float)] = []
            while try statement.step() {
                guard case .real(let radius) = statement.column(2) else { continue }
                let centroid = statement.withBlob(1) { floats(from: $0) }
                summaries.append((statement.int64(0), centroid.count == s.schema.vector.dimensions ? centroid
                                    : [Float](repeating: 0, count: s.schema.vector.dimensions), Float(radius)))
            }
            let reader = ColdBlockReader()
            let dim = s.schema.vector.dimensions
            var space: [Float] = []
            for (id, centroid, radius) in summaries {
                do throws(HybridStoreError) {
                    guard try loadColdBlock(s, id, c, into: reader) else { continue }
                    space = [Float](repeating: 0, count: reader.rows.count * dim)
                    space.withUnsafeMutableBufferPointer { all in
                        reader.vectors(into: all.baseAddress!)
                        guard s.schema.vector.metric == .cosine else { return }
                        for i in 0..<reader.rows.count { normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim ..< (i + 1) * dim])) }
                    }
                    tier.add(block: id, centroid: centroid, radius: radius, rows: reader.rows, values: values[id] ?? [:], vectors: space)
                } catch {
                    tier.add(block: id, centroid: centroid, radius: radius, rows: [], values: [:], vectors: [], corrupt: error)
                }
            }
        }
        tier.settle()
        s.lock.write { s.cold = tier }
    }

    /// Reads and checks a cold block into `reader` (its rows then in `reader.rows`), decompressing the frames
    /// that hold `positions` (all when nil); false when the block is not in the database (a query that raced
    /// a commit which replaced it).
    /// - Throws: `corruptFile` naming the block.
    @discardableResult
    func loadColdBlock(_ s: CollectionState, _ id: Int64, _ c: Connection, into reader: ColdBlockReader,
                       positions: [Int]? = nil) throws(HybridStoreError) -> Bool
    {
        // Decoded straight from the blob SQLite lends: no copy of the compressed bytes.
        let result = try sqliteWork("reading cold block \(id)") { () throws -> Result<Bool, HybridStoreError> in
            let statement = try c.statement(SQL.coldBlockData)
            defer { statement.reset() }
            try statement.bind(.integer(id), at: 1)
            guard try statement.step() else { return .success(false) }
            return statement.withBlob(0) { raw in
                Result { () throws(HybridStoreError) in
                    try reader.load(raw, block: id, collection: s.name, positions: positions)
                    return true
                }
            }
        }
        return try result.get()
    }

    /// `loadColdBlock` through a blob reader kept across a query's blocks (no statement step, no allocation
    /// per block, and of a block of several frames only the parts holding `positions` are copied out of
    /// SQLite); the statement path when the blob reader cannot tell why a block did not open (gone from the
    /// database: replaced by a commit).
    func loadColdBlock(_ s: CollectionState, _ id: Int64, _ c: Connection, through blobs: BlobReader,
                       into reader: ColdBlockReader, positions: [Int]?) throws(HybridStoreError) -> Bool
    {
        let read = try sqliteWork("reading cold block \(id)") { () throws -> Bool in
            guard let size = try blobs.seek(id) else { return false }
            // Some rows of a block of several frames: its header, row section and their frames only.
            func parts(_ prefix: Int) -> ColdBlockReader.Parts? {
                ColdBlockReader.parts(prefix: UnsafeRawBufferPointer(rebasing: blobs.value.prefix(prefix)), size: size,
                                      positions: positions ?? [])
            }
            var needed: ColdBlockReader.Parts? = nil
            var have = 0  // bytes 0..<have are loaded already: not copied again
            if positions != nil, size >= 36 {
                try blobs.load(0 ..< 64)
                have = min(64, size)
                needed = parts(64)
                if case .needHeader(let headerSize) = needed {
                    try blobs.load(64 ..< headerSize)
                    have = headerSize
                    needed = parts(headerSize)
                }
            }
            if case .ranges(let ranges) = needed {
                for range in ranges { try blobs.load(max(range.lowerBound, have) ..< max(range.upperBound, have)) }
            } else {
                try blobs.load(have ..< size)
            }
            return true
        }
        guard read else { return try loadColdBlock(s, id, c, into: reader, positions: positions) }
        try reader.load(blobs.value, block: id, collection: s.name, positions: positions)
        return true
    }

    func readColdBlock(_ s: CollectionState, _ id: Int64, _ c: Connection) throws(HybridStoreError) -> ColdBlock {
        // Decoded straight from the blob SQLite lends: no copy of the compressed bytes.
        let decoded = try sqliteWork("reading cold block \(id)") { () throws -> Result<ColdBlock, HybridStoreError>? in
            let statement = try c.statement(SQL.coldBlockData)
            defer { statement.reset() }
            try statement.bind(.integer(id), at: 1)
            guard try statement.step() else { return nil }
            return statement.withBlob(0) { raw in
                Result { () throws(HybridStoreError) in try ColdBlock.decode(raw, block: id, collection: s.name) }
            }
        }
        guard let decoded else {
            throw HybridStoreError(.corruptFile, "collection `\(s.name)`: cold block \(id) is missing",
                                   context: ["collection": s.name, "block": "\(id)"])
        }
        return try decoded.get()
    }

    private func coldRows(of block: Int64, _ s: CollectionState, _ c: Connection) throws -> Set<Int64> {
        let statement = try c.statement(SQL.coldRowsOfBlock)
        defer { statement.reset() }
        try statement.bind([.integer(s.number), .integer(block)])
        var rows = Set<Int64>()
        while try statement.step() { rows.insert(statement.int64(0)) }
        return rows
    }

    private func codecOf(_ block: Int64, _ s: CollectionState, _ c: Connection) throws -> ColdCodec? {
        let statement = try c.statement(SQL.coldBlockData)
        defer { statement.reset() }
        try statement.bind(.integer(block), at: 1)
        guard try statement.step() else { return nil }
        return statement.withBlob(0) { $0.count > 5 ? ColdCodec(rawValue: $0[5]) : nil }
    }

    /// The filterable values of a row, read from SQLite.
    func rowValues(_ row: Int64, positions: [Int], _ s: CollectionState, _ c: Connection) throws -> [String: Value] {
        guard !positions.isEmpty else { return [:] }
        let statement = try c.statement(s.table.hydrateByRow(positions))
        defer { statement.reset() }
        try statement.bind(.text("[\(row)]"), at: 1)
        guard try statement.step() else { return [:] }
        return readRow(statement, positions: positions, vector: false, s).values
    }

    /// Centroid (mean) and radius (largest Euclidean distance to it) of some vectors of `space`.
    private func centre(of members: [Int], in space: [Float], dim: Int) -> (centroid: [Float], radius: Float) {
        var centroid = [Float](repeating: 0, count: dim)
        for i in members { for d in 0..<dim { centroid[d] += space[i * dim + d] } }
        for d in 0..<dim { centroid[d] /= Float(max(members.count, 1)) }
        let l2 = DistanceKernel(metric: .l2)
        var radius: Float = 0
        space.withUnsafeBufferPointer { v in
            centroid.withUnsafeBufferPointer { c in
                for i in members { radius = max(radius, l2(v.baseAddress! + i * dim, c.baseAddress!, dim).squareRoot()) }
            }
        }
        return (centroid, radius)
    }

    /// Groups `count` vectors of `space` into blocks of about `coldBlockRows` similar ones: k-means into
    /// groups of ~`coldGroupRows`, each group into leaves, then a few rounds of refinement across group
    /// borders (each vector may move to any leaf of its `coldRefineGroups` nearest groups: a two-level
    /// k-means alone leaves vectors near a border in the wrong leaf, which on synth-200k cost 5 points of
    /// recall at the same number of rows read); a leaf over twice the size is split again. Each block's
    /// members are in ascending order (row numbers delta-code best that way).
    private func partition(_ space: [Float], count: Int, dim: Int) -> [[Int]] {
        let target = Self.coldBlockRows
        let groups = kMeans(space, members: Array(0..<count), parts: (count + Self.coldGroupRows - 1) / Self.coldGroupRows, dim: dim)
        var leaves: [[Int]] = []
        var leafGroup: [Int] = []
        for (g, members) in groups.enumerated() {
            for leaf in kMeans(space, members: members, parts: (members.count + target - 1) / target, dim: dim) {
                leaves.append(leaf)
                leafGroup.append(g)
            }
        }
        if groups.count > 1 {
            let near = min(Self.coldRefineGroups, groups.count)
            let groupCentres = groups.flatMap { means(of: [$0], in: space, dim: dim) }
            var leafCentres = means(of: leaves, in: space, dim: dim)
            var leavesOfGroup = [[Int32]](repeating: [], count: groups.count)
            for (l, g) in leafGroup.enumerated() { leavesOfGroup[g].append(Int32(l)) }
            // Each vector's nearest groups, then its candidate leaves (those groups' leaves), once.
            let nearest = nearestCentres(space, count: count, centres: groupCentres, take: near, dim: dim)
            var assignment = [Int32](repeating: 0, count: count)
            for _ in 0..<Self.coldRefineRounds {
                assignment = nearestLeaf(space, count: count, leafCentres: leafCentres, nearestGroups: nearest,
                                         near: near, leavesOfGroup: leavesOfGroup, dim: dim)
                var members = [[Int]](repeating: [], count: leaves.count)
                for i in 0..<count { members[Int(assignment[i])].append(i) }
                let fresh = means(of: members, in: space, dim: dim)
                for l in 0..<leaves.count where !members[l].isEmpty {  // an emptied leaf keeps its centre
                    for d in 0..<dim { leafCentres[l * dim + d] = fresh[l * dim + d] }
                }
                leaves = members
            }
        }
        var pending = leaves.filter { !$0.isEmpty }
        leaves = []
        while let leaf = pending.popLast() {
            if leaf.count > 2 * target {
                let halves = kMeans(space, members: leaf, parts: 2, dim: dim)
                if halves.count == 2 { pending += halves } else {  // identical vectors: cut by position
                    pending += [Array(leaf[..<(leaf.count / 2)]), Array(leaf[(leaf.count / 2)...])]
                }
            } else {
                leaves.append(leaf.sorted())
            }
        }
        return leaves.sorted { $0[0] < $1[0] }
    }
    static let coldRefineGroups = 6
    static let coldRefineRounds = 4

    /// The mean of each group of vectors (zeros for an empty group), row-major.
    private func means(of groups: [[Int]], in space: [Float], dim: Int) -> [Float] {
        var out = [Float](repeating: 0, count: groups.count * dim)
        for (g, members) in groups.enumerated() where !members.isEmpty {
            for i in members { for d in 0..<dim { out[g * dim + d] += space[i * dim + d] } }
            for d in 0..<dim { out[g * dim + d] /= Float(members.count) }
        }
        return out
    }

    /// For each of `count` vectors, the indices of its `take` nearest centres (nearest first), flattened.
    private func nearestCentres(_ space: [Float], count: Int, centres: [Float], take: Int, dim: Int) -> [Int32] {
        var out = [Int32](repeating: 0, count: count * take)
        let parts = centres.count / dim
        let l2 = DistanceKernel(metric: .l2)
        space.withUnsafeBufferPointer { v in
            centres.withUnsafeBufferPointer { c in
                out.withUnsafeMutableBufferPointer { o in
                    let work = KMeansShared(space: v.baseAddress!, centres: c.baseAddress!, out: o.baseAddress!)
                    inParallel(count) { range in
                        var best = [(Float, Int32)](repeating: (.infinity, 0), count: take)
                        for i in range {
                            for t in 0..<take { best[t] = (.infinity, 0) }
                            let x = work.space + i * dim
                            for p in 0..<parts {
                                let d = l2(x, work.centres + p * dim, dim)
                                guard d < best[take - 1].0 else { continue }
                                var t = take - 1
                                while t > 0 && best[t - 1].0 > d { best[t] = best[t - 1]; t -= 1 }
                                best[t] = (d, Int32(p))
                            }
                            // SAFETY: rows of `out` are disjoint per i.
                            for t in 0..<take { work.out[i * take + t] = best[t].1 }
                        }
                    }
                }
            }
        }
        return out
    }

    /// For each vector, the nearest leaf among those of its nearest groups.
    private func nearestLeaf(_ space: [Float], count: Int, leafCentres: [Float], nearestGroups: [Int32], near: Int,
                             leavesOfGroup: [[Int32]], dim: Int) -> [Int32] {
        var out = [Int32](repeating: 0, count: count)
        let l2 = DistanceKernel(metric: .l2)
        space.withUnsafeBufferPointer { v in
            leafCentres.withUnsafeBufferPointer { c in
                nearestGroups.withUnsafeBufferPointer { groups in
                    out.withUnsafeMutableBufferPointer { o in
                        let work = KMeansShared(space: v.baseAddress!, centres: c.baseAddress!, groups: groups.baseAddress!,
                                          out: o.baseAddress!)
                        inParallel(count) { range in
                            for i in range {
                                let x = work.space + i * dim
                                var best: Int32 = 0, bestDistance = Float.infinity
                                for t in 0..<near {
                                    for leaf in leavesOfGroup[Int(work.groups![i * near + t])] {
                                        let d = l2(x, work.centres + Int(leaf) * dim, dim)
                                        if d < bestDistance { bestDistance = d; best = leaf }
                                    }
                                }
                                // SAFETY: one slot of `out` per i.
                                work.out[i] = best
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// k-means (Lloyd, 6 rounds, centres seeded from evenly spaced members) of `members` into at most
    /// `parts` non-empty groups. Assignment runs on all cores when there is enough of it.
    private func kMeans(_ space: [Float], members: [Int], parts: Int, dim: Int) -> [[Int]] {
        guard parts > 1, members.count > parts else { return members.isEmpty ? [] : [members] }
        var centres: [Float] = []
        centres.reserveCapacity(parts * dim)
        for p in 0..<parts {
            let seed = members[p * members.count / parts]
            centres.append(contentsOf: space[seed * dim ..< (seed + 1) * dim])
        }
        let l2 = DistanceKernel(metric: .l2)
        var assignment = [Int](repeating: 0, count: members.count)
        let chunks = members.count * parts * dim >= 1 << 22 ? max(1, cores) * 4 : 1
        space.withUnsafeBufferPointer { v in
            for _ in 0..<6 {
                centres.withUnsafeBufferPointer { c in
                    members.withUnsafeBufferPointer { m in
                        assignment.withUnsafeMutableBufferPointer { out in
                            // SAFETY: each chunk writes only its own range of `out`; all buffers outlive the call.
                            let work = AssignWork(space: v.baseAddress!, centres: c.baseAddress!, members: m, out: out)
                            let body = { @Sendable (chunk: Int) in
                                let count = work.members.count
                                for i in (chunk * count / chunks) ..< ((chunk + 1) * count / chunks) {
                                    var best = 0, bestDistance = Float.infinity
                                    let x = work.space + work.members[i] * dim
                                    for p in 0..<parts {
                                        let d = l2(x, work.centres + p * dim, dim)
                                        if d < bestDistance { bestDistance = d; best = p }
                                    }
                                    work.out[i] = best
                                }
                            }
                            if chunks == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: body) }
                        }
                    }
                }
                var sums = [Float](repeating: 0, count: parts * dim)
                var sizes = [Int](repeating: 0, count: parts)
                for (m, i) in members.enumerated() {
                    let p = assignment[m]
                    sizes[p] += 1
                    for d in 0..<dim { sums[p * dim + d] += v[i * dim + d] }
                }
                for p in 0..<parts where sizes[p] > 0 {
                    for d in 0..<dim { centres[p * dim + d] = sums[p * dim + d] / Float(sizes[p]) }
                }
            }
        }
        var groups = [[Int]](repeating: [], count: parts)
        for (m, i) in members.enumerated() { groups[assignment[m]].append(i) }
        return groups.filter { !$0.isEmpty }
    }
}

extension HybridStore {
    /// Every cold block of a collection, decoded (for benchmarks that re-encode them).
    package func decodedColdBlocks(_ collection: CollectionRef) throws(HybridStoreError) -> [ColdBlock] {
        let s = try state(collection)
        let ids = s.lock.read { s.cold.blocks.map(\.id) }
        return try withReader { c in try ids.map { id throws -> ColdBlock in try readColdBlock(s, id, c) } }
    }
}
