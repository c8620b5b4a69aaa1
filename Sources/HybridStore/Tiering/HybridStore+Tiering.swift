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

/// What RAM holds of one cold block: enough to choose which blocks a query must open.
struct ColdSummary: Sendable {
    var id: Int64
    /// Mean of the block's vectors (normalised ones for cosine).
    var centroid: [Float]
    /// Largest Euclidean distance from the centroid to a vector of the block (in the same space).
    var radius: Float
    var rows: Int
}

/// What a cold step did (for `explain`).
struct ColdStepReport {
    var blocksProbed = 0
    var bytesDecompressed = 0
    var candidates = 0
}

extension HybridStore {
    /// Rows per cold block (a k-means partition of the moved rows aims at this size).
    public static let coldBlockRows = 2048

    /// Moves the rows matching `filter` (all rows when nil) to `tier`, in one transaction with the change
    /// log: to cold, their vectors leave the graph and RAM for LZ4 blocks of similar vectors inside the
    /// database; to hot, they return to the graph. Rows already in that tier are left alone. A crash at any
    /// point leaves every row in exactly one tier.
    /// - Parameter codec: how new cold blocks store vectors (`.float16ShuffledLZ4` halves them, lossy).
    /// - Returns: how many rows moved.
    /// - Throws: `invalidFilter`, `unknownCollection`, `corruptFile` (a cold block that does not decode), `sqlite`.
    @discardableResult
    public func tier(_ collection: Collection, where filter: Filter? = nil, to tier: Tier,
                     codec: ColdCodec = .shuffledLZ4) throws -> Int {
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
    public func setTierPolicy(_ collection: Collection, coldWhere filter: Filter?) throws(HybridStoreError) {
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
        let cosine = s.schema.vector.metric == .cosine
        var space = vectors  // the space distances are measured in: normalised for cosine
        if cosine {
            space.withUnsafeMutableBufferPointer { all in
                for i in 0..<rows.count { normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim ..< (i + 1) * dim])) }
            }
        }
        let assignment = partition(space, count: rows.count, dim: dim, parts: (rows.count + Self.coldBlockRows - 1) / Self.coldBlockRows)
        var summaries: [ColdSummary] = []
        for members in assignment where !members.isEmpty {
            var centroid = [Float](repeating: 0, count: dim)
            for i in members { for d in 0..<dim { centroid[d] += space[i * dim + d] } }
            for d in 0..<dim { centroid[d] /= Float(members.count) }
            var radius: Float = 0
            for i in members {
                var sum: Float = 0
                for d in 0..<dim { let x = space[i * dim + d] - centroid[d]; sum += x * x }
                radius = max(radius, sum.squareRoot())
            }
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
            summaries.append(ColdSummary(id: id, centroid: centroid, radius: radius, rows: members.count))
        }
        tx.onCommit.append { s.lock.write { s.coldBlocks += summaries } }
        return rows.count
    }

    private func moveToHot(_ s: CollectionState, _ condition: SQLCondition, _ tx: WriteTransaction) throws -> Int {
        let c = tx.connection
        let statement = try c.prepareOnce(s.table.coldRowsWhere(condition.text))
        try statement.bind(condition.arguments)
        var byBlock: [Int64: Set<Int64>] = [:]
        while try statement.step() { byBlock[statement.int64(1), default: []].insert(statement.int64(0)) }
        guard !byBlock.isEmpty else { return 0 }
        let dim = s.schema.vector.dimensions
        let filterable = s.schema.columns.indices.filter { s.schema.columns[$0].filterable }
        var moved = 0
        var rewritten: [Int64: ColdSummary?] = [:]
        for (blockID, leaving) in byBlock.sorted(by: { $0.key < $1.key }) {
            let block = try readColdBlock(s, blockID, c)
            let valid = try coldRows(of: blockID, s, c)
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
                    try c.statement(SQL.deleteColdRow).run([.integer(s.number), .integer(row)])
                    try tx.logChange(s, row: row, op: .vector)
                    let values = try rowValues(row, positions: filterable, s, c)
                    let id = try rowID(row, s, c)
                    tx.effects[s.number, default: [:]][row] = WriteTransaction.Effect(deleted: false, vector: vector, id: id,
                                                                                      values: values)
                    moved += 1
                } else if valid.contains(row) {
                    staying.append(i)
                }
            }
            // Rewrite the block with the rows that stay (dropping stale ones too), or drop it.
            if staying.isEmpty {
                try c.statement(SQL.deleteColdBlock).run([.integer(blockID)])
                rewritten[blockID] = .some(nil)
            } else {
                let kept = ColdBlock(rows: staying.map { block.rows[$0] }, dimensions: dim,
                                     vectors: staying.flatMap { block.vectors[$0 * dim ..< ($0 + 1) * dim] })
                let summary = summarize(kept, id: blockID, cosine: s.schema.vector.metric == .cosine)
                try c.statement(SQL.updateColdBlock).run([
                    .integer(blockID), .blob(summary.centroid.withUnsafeBytes { [UInt8]($0) }), .real(Double(summary.radius)),
                    .integer(Int64(kept.rows.count)), .blob(kept.encoded(codec: try codecOf(blockID, s, c))),
                ])
                rewritten[blockID] = summary
            }
        }
        tx.onCommit.append {
            s.lock.write {
                s.coldBlocks = s.coldBlocks.compactMap { old in rewritten[old.id].map { $0 } ?? old }
            }
        }
        return moved
    }

    // MARK: - Cold search step

    /// The k nearest valid cold rows matching `condition`, probing blocks nearest centroid first, at most
    /// `probes` of them (default 2·√blocks / √selectivity). For L2 and cosine it also stops once a block's
    /// lower bound (distance to the centroid minus the radius) cannot beat the k-th best distance found so far
    /// (hot or cold): with `probes: .max` the step is exact.
    func coldStep(_ s: CollectionState, query: [Float], k: Int, condition: SQLCondition?, bound initial: Float?,
                  probes: Int?, selectivity: Double,
                  report: inout ColdStepReport) throws(HybridStoreError) -> [(row: Int64, distance: Float)] {
        let blocks = s.lock.read { s.coldBlocks }
        guard !blocks.isEmpty else { return [] }
        let metric = s.schema.vector.metric
        let dim = s.schema.vector.dimensions
        var q = query
        if metric == .cosine { q.withUnsafeMutableBufferPointer { normalize($0) } }
        let kernel = DistanceKernel(metric: metric)
        func internalDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>) -> Float { kernel(a, b, dim) }
        func reported(_ d: Float) -> Float { metric == .cosine ? 1 + d : d }
        // Lower bound of a block's reported distances from the centroid distance and radius (L2 / cosine).
        let ranked: [(summary: ColdSummary, key: Float, lower: Float)] = blocks.map { b in
            b.centroid.withUnsafeBufferPointer { cb in
                q.withUnsafeBufferPointer { qb in
                    if metric == .innerProduct {
                        let d = internalDistance(qb.baseAddress!, cb.baseAddress!)
                        return (b, d, -Float.infinity)
                    }
                    let l2 = portableL2Squared(qb.baseAddress!, cb.baseAddress!, dim)
                    let gap = max(0, l2.squareRoot() - b.radius)
                    return (b, l2, metric == .cosine ? gap * gap / 2 : gap * gap)
                }
            }
        }.sorted { $0.key < $1.key }
        // Blocks to open at most, nearest centroids first (as IVF's nprobe): √blocks by default, more as the
        // filter narrows (fewer matches per block), all when exact. Bounds still stop early for L2/cosine.
        let defaultProbes = Int((Double(blocks.count).squareRoot() * 2 / max(selectivity, 0.01).squareRoot()).rounded(.up))
        let maxProbe = min(blocks.count, max(1, probes ?? defaultProbes))
        var best: [(row: Int64, distance: Float)] = []
        func kth() -> Float {
            let fromCold = best.count >= k ? best[k - 1].distance : Float.infinity
            return min(fromCold, initial ?? .infinity)
        }
        let sql = s.table.coldBlockRowsWhere(condition?.text ?? "1")
        try withReader { c in
            for (probed, entry) in ranked.enumerated() {
                if probed >= maxProbe || entry.lower > kth() { break }
                let block = try readColdBlock(s, entry.summary.id, c)
                report.blocksProbed += 1
                report.bytesDecompressed += block.vectors.count * 4 + block.rows.count * 8
                // Unfiltered, the SQL is always the same: keep it prepared.
                let statement = condition == nil ? try c.statement(sql) : try c.prepareOnce(sql)
                defer { statement.reset() }
                try statement.bind(.integer(entry.summary.id), at: 1)
                try statement.bind(condition?.arguments ?? [], from: 2)
                var wanted = Set<Int64>()
                while try statement.step() { wanted.insert(statement.int64(0)) }
                guard !wanted.isEmpty else { continue }
                var scratch = [Float](repeating: 0, count: metric == .cosine ? dim : 0)
                block.vectors.withUnsafeBufferPointer { all in
                    q.withUnsafeBufferPointer { qb in
                        for (i, row) in block.rows.enumerated() where wanted.contains(row) {
                            let v = all.baseAddress! + i * dim
                            let d: Float
                            if metric == .cosine {  // blocks keep the original vectors; cosine compares unit ones
                                d = scratch.withUnsafeMutableBufferPointer { unit in
                                    unit.baseAddress!.update(from: v, count: dim)
                                    normalize(unit)
                                    return internalDistance(qb.baseAddress!, unit.baseAddress!)
                                }
                            } else {
                                d = internalDistance(qb.baseAddress!, v)
                            }
                            best.append((row, reported(d)))
                            report.candidates += 1
                        }
                    }
                }
                best.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
                if best.count > k { best.removeLast(best.count - k) }
            }
        }
        return best
    }

    // MARK: - Helpers

    func loadColdSummaries(_ s: CollectionState, _ c: Connection) throws(HybridStoreError) {
        let summaries = try sqliteWork("reading cold blocks of `\(s.name)`") { () throws -> [ColdSummary] in
            let statement = try c.statement(SQL.coldSummaries)
            defer { statement.reset() }
            try statement.bind(.integer(s.number), at: 1)
            var out: [ColdSummary] = []
            while try statement.step() {
                guard case .real(let radius) = statement.column(2) else { continue }
                out.append(ColdSummary(id: statement.int64(0), centroid: statement.withBlob(1) { floats(from: $0) },
                                       radius: Float(radius), rows: Int(statement.int64(3))))
            }
            return out
        }
        s.lock.write { s.coldBlocks = summaries }
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

    private func codecOf(_ block: Int64, _ s: CollectionState, _ c: Connection) throws -> ColdCodec {
        let statement = try c.statement(SQL.coldBlockData)
        defer { statement.reset() }
        try statement.bind(.integer(block), at: 1)
        guard try statement.step() else { return .shuffledLZ4 }
        return statement.withBlob(0) { $0.count > 5 ? ColdCodec(rawValue: $0[5]) : nil } ?? .shuffledLZ4
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

    private func rowID(_ row: Int64, _ s: CollectionState, _ c: Connection) throws -> RowID {
        let statement = try c.statement(s.table.hydrateByRow([]))
        defer { statement.reset() }
        try statement.bind(.text("[\(row)]"), at: 1)
        guard try statement.step() else { return .string("") }
        return readRow(statement, positions: [], vector: false, s).id
    }

    private func summarize(_ block: ColdBlock, id: Int64, cosine: Bool) -> ColdSummary {
        let dim = block.dimensions
        var space = block.vectors
        if cosine {
            space.withUnsafeMutableBufferPointer { all in
                for i in 0..<block.rows.count { normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim ..< (i + 1) * dim])) }
            }
        }
        var centroid = [Float](repeating: 0, count: dim)
        for i in 0..<block.rows.count { for d in 0..<dim { centroid[d] += space[i * dim + d] } }
        for d in 0..<dim { centroid[d] /= Float(max(block.rows.count, 1)) }
        var radius: Float = 0
        for i in 0..<block.rows.count {
            var sum: Float = 0
            for d in 0..<dim { let x = space[i * dim + d] - centroid[d]; sum += x * x }
            radius = max(radius, sum.squareRoot())
        }
        return ColdSummary(id: id, centroid: centroid, radius: radius, rows: block.rows.count)
    }

    /// k-means (Lloyd, 6 rounds, centres seeded from evenly spaced rows) of `count` vectors into `parts`
    /// groups; returns the member indices of each group.
    private func partition(_ space: [Float], count: Int, dim: Int, parts: Int) -> [[Int]] {
        guard parts > 1 else { return [Array(0..<count)] }
        var centres: [Float] = []
        centres.reserveCapacity(parts * dim)
        for p in 0..<parts {
            let seed = p * count / parts
            centres.append(contentsOf: space[seed * dim ..< (seed + 1) * dim])
        }
        var assignment = [Int](repeating: 0, count: count)
        space.withUnsafeBufferPointer { v in
            for _ in 0..<6 {
                centres.withUnsafeBufferPointer { c in
                    for i in 0..<count {
                        var best = 0, bestDistance = Float.infinity
                        for p in 0..<parts {
                            let d = portableL2Squared(v.baseAddress! + i * dim, c.baseAddress! + p * dim, dim)
                            if d < bestDistance { bestDistance = d; best = p }
                        }
                        assignment[i] = best
                    }
                }
                var sums = [Float](repeating: 0, count: parts * dim)
                var sizes = [Int](repeating: 0, count: parts)
                for i in 0..<count {
                    sizes[assignment[i]] += 1
                    for d in 0..<dim { sums[assignment[i] * dim + d] += v[i * dim + d] }
                }
                for p in 0..<parts where sizes[p] > 0 {
                    for d in 0..<dim { centres[p * dim + d] = sums[p * dim + d] / Float(sizes[p]) }
                }
            }
        }
        var groups = [[Int]](repeating: [], count: parts)
        for i in 0..<count { groups[assignment[i]].append(i) }
        return groups
    }
}

extension HybridStore {
    /// Every cold block of a collection, decoded (for benchmarks that re-encode them).
    package func decodedColdBlocks(_ collection: Collection) throws(HybridStoreError) -> [ColdBlock] {
        let s = try state(collection)
        let ids = s.lock.read { s.coldBlocks.map(\.id) }
        return try withReader { c in try ids.map { id throws -> ColdBlock in try readColdBlock(s, id, c) } }
    }
}
