import Foundation
import HNSW
import QueryPlanner

/// What `statistics(_:)` reports of one collection.
public struct CollectionStatistics: Sendable, Codable, Equatable {
    public var name: String
    public var rows: Int
    /// Live nodes in the index (hot tier).
    public var indexNodes: Int
    /// Index RAM: vectors, links and per-node metadata.
    public var indexBytes: Int
    /// Bytes of the store directory on disk (database, WAL, snapshots), shared by all collections.
    public var storeBytesOnDisk: Int
    /// Rows per tier.
    public var tiers: [String: Int]
    /// RAM of the filterable columns' in-memory copy and the node → id table of the hot tier (estimated).
    public var columnBytes: Int
    /// Cold blocks, their compressed bytes on disk, and the RAM the cold tier takes: block summaries
    /// (centroid, radius, which positions are live) and the cold rows' filterable values.
    public var coldBlocks: Int
    public var coldBytesOnDisk: Int
    public var coldMemoryBytes: Int
    /// RAM of the keyword ranking's in-memory side: the searchable text's posting lists and each row's token
    /// count, once a keyword query has loaded them (0 before, and for a collection without searchable columns).
    public var textBytes: Int = 0
    /// All the RAM the collection takes: index, columns and ids, cold tier, keyword lists.
    public var memoryBytes: Int { indexBytes + columnBytes + coldMemoryBytes + textBytes }
    public var columns: [ColumnStatistics]
    /// The recall curves measured on the collection's data at its last build-time calibration, if any, and
    /// the effort scale the planner uses per selectivity bucket (1 = the static model's effort).
    public var calibration: BuildCalibration? = nil
    public var effortScales: [Double] = []
    /// The cold step's effort scale read off the curve over both tiers (nil: the store's probe rule as it is).
    public var coldEffortScale: Double? = nil
    /// The same per curve under a filter (`calibration.coldFiltered`, in its order; empty: none measured).
    public var coldFilteredEffortScales: [Double] = []
}

extension HybridStore {
    /// Rows, RAM, disk and per-column statistics of a collection.
    /// - Throws: `unknownCollection`, `sqlite`.
    public func statistics(_ collection: CollectionRef) throws(HybridStoreError) -> CollectionStatistics {
        let s = try state(collection)
        let rows = try count(collection)
        let (nodes, bytes, columns) = s.query { index, columns, _ in
            (index.count, index.memoryBytes, columns.statistics())
        }
        let (coldRows, coldBytes) = try withReader { c -> (Int, Int) in
            guard case .integer(let n)? = try c.statement(SQL.coldRowCount).scalar([.integer(s.number)]),
                case .integer(let b)? = try c.statement(SQL.coldBytes).scalar([.integer(s.number)])
            else { return (0, 0) }
            return (Int(n), Int(b))
        }
        let (blocks, coldMemory, textBytes) = s.lock.read {
            (s.cold.blocks.count, s.cold.memoryBytes, (s.textPostings?.bytes ?? 0) + s.textLengths.bytes)
        }
        return CollectionStatistics(
            name: s.name, rows: rows, indexNodes: nodes, indexBytes: bytes,
            storeBytesOnDisk: directorySize(directory), tiers: ["hot": nodes, "cold": coldRows],
            columnBytes: s.columnAndIDBytes, coldBlocks: blocks, coldBytesOnDisk: coldBytes,
            coldMemoryBytes: coldMemory, textBytes: textBytes, columns: columns,
            calibration: s.calibration.withLock { $0.built },
            effortScales: s.calibration.withLock { $0.scales },
            coldEffortScale: s.calibration.withLock { $0.coldScale },
            coldFilteredEffortScales: s.calibration.withLock { $0.coldFilteredScales })
    }

    /// Every collection's statistics (those that cannot be read are left out; for metrics).
    func allStatistics() -> [CollectionStatistics] {
        catalog.withLock { $0.values.map(\.handle) }.compactMap { try? statistics($0) }
    }

    /// Calls `body` with every row of a collection in row order, `batch` rows per read, with all columns
    /// (and the vector when asked: a cold row's as stored in its block). Reads in short transactions, so writers are not held up.
    /// - Throws: `unknownCollection`, `sqlite`, what `body` throws when it is a `HybridStoreError`, or any other
    ///   error of `body`'s wrapped as `aborted` (in `underlying`); the rows before it were already passed.
    public func forEachRow(
        in collection: CollectionRef, includeVector: Bool = true, batch: Int = 1000,
        _ body: (Row) throws -> Void
    ) throws(HybridStoreError) {
        let s = try state(collection)
        let positions = Array(s.schema.columns.indices)
        var after: Int64 = 0
        while true {
            let sql = s.table.rowsAfter(vector: includeVector, positions: positions)
            let (numbers, rows): ([Int64], [Row]) = try withReader { c in
                // One read transaction a batch: cold rows' vectors come from their blocks in the same state.
                try c.transaction(immediate: false) { () throws -> ([Int64], [Row]) in
                    let statement = try c.statement(sql)
                    defer { statement.reset() }
                    try statement.bind([.integer(after), .integer(Int64(batch))])
                    var numbers: [Int64] = []
                    var rows: [Row] = []
                    while try statement.step() {
                        numbers.append(statement.int64(0))
                        rows.append(readRow(statement, positions: positions, vector: includeVector, s))
                    }
                    statement.reset()
                    if includeVector { try fillColdVectors(&rows, numbers: numbers, s, c) }
                    return (numbers, rows)
                }
            }
            do {
                for row in rows { try body(row) }
            } catch {
                throw HybridStoreError(thrownBy: error, in: "forEachRow")
            }
            guard let last = numbers.last, rows.count == batch else { return }
            after = last
        }
    }
}

func directorySize(_ path: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.reduce(0) { total, name in
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
        return total + ((attributes?[.size] as? NSNumber)?.intValue ?? 0)
    }
}
