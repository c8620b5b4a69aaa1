// Cold blocks from the database: the in-memory cold tier built on open, single blocks read or decoded
// partly, a block's rows, codec and values.

import CKernels
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
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
                values[live.int64(1), default: [:]][live.int64(0)] =
                    readRow(live, positions: filterable, vector: false, s).values
            }
            let statement = try c.statement(SQL.coldSummaries)
            defer { statement.reset() }
            try statement.bind(.integer(s.number), at: 1)
            var summaries: [(id: Int64, centroid: [Float], radius: Float)] = []
            while try statement.step() {
                guard case .real(let radius) = statement.column(2) else { continue }
                let centroid = unsafe statement.withBlob(1) { unsafe floats(from: $0) }
                summaries.append(
                    (
                        statement.int64(0),
                        centroid.count == s.schema.vector.dimensions
                            ? centroid
                            : [Float](repeating: 0, count: s.schema.vector.dimensions), Float(radius)
                    ))
            }
            let reader = ColdBlockReader()
            let dim = s.schema.vector.dimensions
            var space: [Float] = []
            for (id, centroid, radius) in summaries {
                do throws(HybridStoreError) {
                    guard try loadColdBlock(s, id, c, into: reader) else { continue }
                    space = [Float](repeating: 0, count: reader.rows.count * dim)
                    unsafe space.withUnsafeMutableBufferPointer { all in
                        unsafe reader.vectors(into: all)
                        guard s.schema.vector.metric == .cosine else { return }
                        for i in 0..<reader.rows.count {
                            unsafe normalize(UnsafeMutableBufferPointer(rebasing: all[i * dim..<(i + 1) * dim]))
                        }
                    }
                    tier.add(
                        block: id, centroid: centroid, radius: radius, rows: reader.rows, values: values[id] ?? [:],
                        vectors: space)
                } catch {
                    tier.add(
                        block: id, centroid: centroid, radius: radius, rows: [], values: [:], vectors: [],
                        corrupt: error)
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
    func loadColdBlock(
        _ s: CollectionState, _ id: Int64, _ c: Connection, into reader: ColdBlockReader,
        positions: [Int]? = nil
    ) throws(HybridStoreError) -> Bool {
        // Decoded straight from the blob SQLite lends: no copy of the compressed bytes.
        let result = try sqliteWork("reading cold block \(id)") { () throws -> Result<Bool, HybridStoreError> in
            let statement = try c.statement(SQL.coldBlockData)
            defer { statement.reset() }
            try statement.bind(.integer(id), at: 1)
            guard try statement.step() else { return .success(false) }
            return unsafe statement.withBlob(0) { raw in
                Result { () throws(HybridStoreError) in
                    unsafe try reader.load(raw, block: id, collection: s.name, positions: positions)
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
    func loadColdBlock(
        _ s: CollectionState, _ id: Int64, _ c: Connection, through blobs: BlobReader,
        into reader: ColdBlockReader, positions: [Int]?
    ) throws(HybridStoreError) -> Bool {
        let read = try sqliteWork("reading cold block \(id)") { () throws -> Bool in
            guard let size = try blobs.seek(id) else { return false }
            // Some rows of a block of several frames: its header, row section and their frames only.
            func parts(_ prefix: Int) -> ColdBlockReader.Parts? {
                unsafe ColdBlockReader.parts(
                    prefix: UnsafeRawBufferPointer(rebasing: blobs.value.prefix(prefix)), size: size,
                    positions: positions ?? [])
            }
            var needed: ColdBlockReader.Parts? = nil
            var have = 0  // bytes 0..<have are loaded already: not copied again
            if positions != nil, size >= 36 {
                try blobs.load(0..<64)
                have = min(64, size)
                needed = parts(64)
                if case .needHeader(let headerSize) = needed {
                    try blobs.load(64..<headerSize)
                    have = headerSize
                    needed = parts(headerSize)
                }
            }
            if case .ranges(let ranges) = needed {
                for range in ranges { try blobs.load(max(range.lowerBound, have)..<max(range.upperBound, have)) }
            } else {
                try blobs.load(have..<size)
            }
            return true
        }
        guard read else { return try loadColdBlock(s, id, c, into: reader, positions: positions) }
        unsafe try reader.load(blobs.value, block: id, collection: s.name, positions: positions)
        return true
    }

    func readColdBlock(_ s: CollectionState, _ id: Int64, _ c: Connection) throws(HybridStoreError) -> ColdBlock {
        // Decoded straight from the blob SQLite lends: no copy of the compressed bytes.
        let decoded = try sqliteWork("reading cold block \(id)") { () throws -> Result<ColdBlock, HybridStoreError>? in
            let statement = try c.statement(SQL.coldBlockData)
            defer { statement.reset() }
            try statement.bind(.integer(id), at: 1)
            guard try statement.step() else { return nil }
            return unsafe statement.withBlob(0) { raw in
                Result { () throws(HybridStoreError) in unsafe try ColdBlock.decode(raw, block: id, collection: s.name)
                }
            }
        }
        guard let decoded else {
            throw HybridStoreError(
                .corruptFile, "collection `\(s.name)`: cold block \(id) is missing",
                context: ["collection": s.name, "block": "\(id)"])
        }
        return try decoded.get()
    }

    func coldRows(of block: Int64, _ s: CollectionState, _ c: Connection) throws -> Set<Int64> {
        let statement = try c.statement(SQL.coldRowsOfBlock)
        defer { statement.reset() }
        try statement.bind([.integer(s.number), .integer(block)])
        var rows = Set<Int64>()
        while try statement.step() { rows.insert(statement.int64(0)) }
        return rows
    }

    func codecOf(_ block: Int64, _ s: CollectionState, _ c: Connection) throws -> ColdCodec? {
        let statement = try c.statement(SQL.coldBlockData)
        defer { statement.reset() }
        try statement.bind(.integer(block), at: 1)
        guard try statement.step() else { return nil }
        return unsafe statement.withBlob(0) { unsafe $0.count > 5 ? ColdCodec(rawValue: $0[5]) : nil }
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
}

extension HybridStore {
    /// Every cold block of a collection, decoded (for benchmarks that re-encode them).
    package func decodedColdBlocks(_ collection: CollectionRef) throws(HybridStoreError) -> [ColdBlock] {
        let s = try state(collection)
        let ids = s.lock.read { s.cold.blocks.map(\.id) }
        return try withReader { c in try ids.map { id throws -> ColdBlock in try readColdBlock(s, id, c) } }
    }
}
