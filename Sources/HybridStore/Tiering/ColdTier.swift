import HNSW
import QueryPlanner

/// What RAM holds of a collection's cold tier: per block its centroid, radius and which of its positions
/// hold a live row (as a *slot*: a dense number for a cold row), and per slot the row's filterable values
/// (a `FilterColumns` over slots). With it the cold step picks blocks, skips those with no live matching
/// row, and checks the filter, without reading SQLite; only the vectors stay on disk.
///
/// Derived state (DESIGN.md principle 1): rebuilt from SQLite on open. Guarded by the collection's lock.
final class ColdTier {
    struct Block {
        var id: Int64
        var radius: Float
        /// Per position in the block: the row's slot, or `dead`.
        var slots: [UInt32]
        var live: Int
        /// Why the block could not be read on open (it is then refused, not served, when a query reaches it).
        var corrupt: HybridStoreError?
    }

    static let dead = UInt32.max
    let dimensions: Int
    private(set) var blocks: [Block] = []
    /// Block centroids, row-major, in `blocks` order (one contiguous matrix for the ranking pass).
    private(set) var centroids: [Float] = []
    private(set) var columns: FilterColumns
    /// Per slot: its row, -1 when free. (Row → slot has no map: writes know a cold row's block from the
    /// database, and a block has a few dozen positions to look through.)
    private(set) var rowOfSlot: [Int64] = []
    private var freeSlots: [UInt32] = []
    private var indexOfBlock: [Int64: Int] = [:]
    private(set) var liveRows = 0

    init(schema: Schema) {
        dimensions = schema.vector.dimensions
        columns = FilterColumns(schema: schema)
    }

    var isEmpty: Bool { blocks.isEmpty }

    /// Adds a block: `rows` in position order, with the live ones' filterable values (absent = dead position).
    func add(block id: Int64, centroid: [Float], radius: Float, rows: [Int64], values: [Int64: [String: Value]],
             corrupt: HybridStoreError? = nil) {
        precondition(centroid.count == dimensions)
        var slots = [UInt32](repeating: Self.dead, count: rows.count)
        var live = 0
        for (position, row) in rows.enumerated() {
            guard let rowValues = values[row] else { continue }
            let slot: UInt32
            if let free = freeSlots.popLast() {
                slot = free
                rowOfSlot[Int(slot)] = row
            } else {
                slot = UInt32(rowOfSlot.count)
                rowOfSlot.append(row)
            }
            columns.set(node: slot, values: rowValues)
            slots[position] = slot
            live += 1
        }
        liveRows += live
        indexOfBlock[id] = blocks.count
        blocks.append(Block(id: id, radius: radius, slots: slots, live: live, corrupt: corrupt))
        centroids += centroid
    }

    /// The slot of `row` in block `id`, with the block's index and the row's position.
    private func find(row: Int64, block id: Int64) -> (block: Int, position: Int, slot: UInt32)? {
        guard let b = indexOfBlock[id] else { return nil }
        for (position, slot) in blocks[b].slots.enumerated() where slot != Self.dead && rowOfSlot[Int(slot)] == row {
            return (b, position, slot)
        }
        return nil
    }

    /// Forgets a row of block `id` (deleted, returned to the hot tier); no-op when it is not there.
    func remove(row: Int64, block id: Int64) {
        guard let (b, position, slot) = find(row: row, block: id) else { return }
        blocks[b].slots[position] = Self.dead
        blocks[b].live -= 1
        liveRows -= 1
        columns.clear(node: slot)
        rowOfSlot[Int(slot)] = -1
        freeSlots.append(slot)
    }

    /// Sets some of a cold row's filterable values (the others keep theirs).
    func update(row: Int64, block id: Int64, values: [String: Value]) {
        guard let (_, _, slot) = find(row: row, block: id) else { return }
        let merged = columns.values(of: slot).merging(values) { $1 }
        columns.clear(node: slot)
        columns.set(node: slot, values: merged)
    }

    /// The filterable values of a row of block `id`.
    func values(of row: Int64, block id: Int64) -> [String: Value]? {
        find(row: row, block: id).map { columns.values(of: $0.slot) }
    }

    /// Drops a block and forgets its rows.
    func remove(block id: Int64) {
        guard let b = indexOfBlock[id] else { return }
        for slot in blocks[b].slots where slot != Self.dead { remove(row: rowOfSlot[Int(slot)], block: id) }
        let last = blocks.count - 1
        if b != last {
            blocks.swapAt(b, last)
            indexOfBlock[blocks[b].id] = b
            for d in 0..<dimensions { centroids.swapAt(b * dimensions + d, last * dimensions + d) }
        }
        blocks.removeLast()
        centroids.removeLast(dimensions)
        indexOfBlock[id] = nil
    }

    /// Merges the filter columns' tails (after bulk loads).
    func settle() { columns.settle() }

    /// RAM it takes, estimated from its arrays' sizes.
    var memoryBytes: Int {
        let perBlock = MemoryLayout<Block>.stride + 48
        return blocks.reduce(0) { $0 + perBlock + $1.slots.capacity * 4 } + centroids.capacity * 4
            + rowOfSlot.capacity * 8 + freeSlots.capacity * 4 + indexOfBlock.capacity * 16 + columns.memoryBytes
    }
}
