import QueryPlanner

extension HybridStore {
    /// The stored vectors of cold rows, decoded from their blocks: bit-exact as stored (a float16 block gives
    /// the float16 values it holds, widened). Rows that are not cold are left out. Each block is read and
    /// decoded once, however many of `rows` it holds.
    /// - Complexity: one lookup per row and one block decode per distinct block, on `c` (the caller's read
    ///   transaction, so rows and blocks are one consistent state).
    func coldVectors(of rows: [Int64], _ s: CollectionState, _ c: Connection) throws -> [Int64: [Float]] {
        guard !rows.isEmpty else { return [:] }
        var byBlock: [Int64: [Int64]] = [:]
        let lookup = try c.statement(SQL.coldBlockOfRow)
        defer { lookup.reset() }
        for row in rows {
            lookup.reset()
            try lookup.bind([.integer(s.number), .integer(row)])
            if try lookup.step() { byBlock[lookup.int64(0), default: []].append(row) }
        }
        var out: [Int64: [Float]] = [:]
        for (id, wanted) in byBlock {
            let block = try readColdBlock(s, id, c)
            let dim = block.dimensions
            var position: [Int64: Int] = [:]
            for (p, row) in block.rows.enumerated() { position[row] = p }
            for row in wanted {
                guard let p = position[row] else {
                    throw HybridStoreError(
                        .corruptFile, "collection `\(s.name)`: cold block \(id) lacks row \(row)",
                        context: ["collection": s.name, "block": "\(id)"])
                }
                out[row] = Array(block.vectors[p * dim..<(p + 1) * dim])
            }
        }
        return out
    }

    /// Fills in the vectors of cold rows among `rows` (read with their vector column, which a cold row leaves
    /// empty) from their blocks. `numbers[i]` is the row number of `rows[i]`.
    func fillColdVectors(_ rows: inout [Row], numbers: [Int64], _ s: CollectionState, _ c: Connection) throws {
        let dim = s.schema.vector.dimensions
        let cold = rows.indices.filter { rows[$0].vector?.count != dim }
        guard !cold.isEmpty else { return }
        let vectors = try coldVectors(of: cold.map { numbers[$0] }, s, c)
        for i in cold {
            guard let v = vectors[numbers[i]] else {
                throw HybridStoreError(
                    .corruptFile,
                    "collection `\(s.name)`: row \(rows[i].id) has no vector in the table or a cold block",
                    context: ["collection": s.name, "id": rows[i].id.description])
            }
            rows[i].vector = v
        }
    }
}
