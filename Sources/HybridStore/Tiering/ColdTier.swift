import CKernels
import HNSW
import QueryPlanner

/// What RAM holds of a collection's cold tier: per block its centroid, radius and which of its positions
/// hold a live row (as a *slot*: a dense number for a cold row), and per slot the row's filterable values
/// (a `FilterColumns` over slots) and a 1-bit code of its vector (`SignCodes`: ~⅛ byte a dimension + 12
/// bytes). With it the cold step picks blocks, skips those with no live matching row, checks the filter, and
/// (for selective filters) ranks the matching rows by their codes, without reading SQLite; only the vectors
/// stay on disk.
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
    /// Block centroids as float16 bit patterns, row-major, in `blocks` order (one contiguous matrix for the
    /// ranking pass; half the RAM of float32). A block's radius, codes and bounds are all taken against this
    /// rounded centroid, so nothing assumes the float32 one.
    private(set) var centroids: [UInt16] = []
    private(set) var columns: FilterColumns
    /// Per slot: its row, -1 when free. (Row → slot has no map: writes know a cold row's block from the
    /// database, and a block has a few dozen positions to look through.)
    private(set) var rowOfSlot: [Int64] = []
    private var freeSlots: [UInt32] = []
    /// Per slot: the index in `blocks` of the block holding it.
    private(set) var blockOfSlot: [UInt32] = []
    /// The map and estimator of the per-row 1-bit codes (see `SignCodes`).
    let codes: SignCodes
    /// Per slot: its code, `codes.words` words (zero for a free slot).
    private(set) var codeBits: [UInt64] = []
    /// Per slot: its code's factors.
    private(set) var codeFactors: [SignCodes.Factors] = []
    private var indexOfBlock: [Int64: Int] = [:]
    private(set) var liveRows = 0
    /// Blocks that did not decode on open (kept, without rows, so queries that could need them are refused).
    private(set) var corruptBlocks = 0

    init(schema: Schema) {
        dimensions = schema.vector.dimensions
        columns = FilterColumns(schema: schema)
        codes = SignCodes(dimensions: dimensions)
    }

    var isEmpty: Bool { blocks.isEmpty }

    /// Adds a block: `rows` in position order, with the live ones' filterable values (absent = dead position)
    /// and all rows' vectors in the space distances are measured in (normalised for cosine), row-major; a
    /// corrupt block has no rows.
    func add(block id: Int64, centroid: [Float], radius: Float, rows: [Int64], values: [Int64: [String: Value]],
             vectors: [Float], corrupt: HybridStoreError? = nil) {
        precondition(centroid.count == dimensions && vectors.count == rows.count * dimensions)
        // Any point near the rows serves as the centroid, as long as the radius, the codes and every bound use
        // the same one: the float16 value, clamped to its finite range (components beyond ±65,504 would
        // otherwise round to infinity).
        let halves = centroid.map { Float16(max(-65_504, min(65_504, $0))).bitPattern }
        let rounded = halves.map { Float(Float16(bitPattern: $0)) }
        // The radius about the rounded centroid: measured from the rows when they are here, else the given
        // radius widened by how far rounding moved the centroid (triangle inequality). A relative margin covers
        // the kernels summing in another order.
        var radius = radius + zip(centroid, rounded).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        if !rows.isEmpty {
            radius = 0
            for i in 0..<rows.count {
                var d2: Float = 0
                for j in 0..<dimensions {
                    let d = vectors[i * dimensions + j] - rounded[j]
                    d2 += d * d
                }
                radius = max(radius, d2.squareRoot())
            }
        }
        radius = radius * (1 + 1e-5) + .leastNormalMagnitude
        let centroid = rounded
        var slots = [UInt32](repeating: Self.dead, count: rows.count)
        var live = 0
        let words = codes.words
        var rotatedCentroid = [Float](repeating: 0, count: codes.padded)
        var scratch = rotatedCentroid
        centroid.withUnsafeBufferPointer { codes.rotate($0.baseAddress!, into: &rotatedCentroid) }
        for (position, row) in rows.enumerated() {
            guard let rowValues = values[row] else { continue }
            let slot: UInt32
            if let free = freeSlots.popLast() {
                slot = free
                rowOfSlot[Int(slot)] = row
                blockOfSlot[Int(slot)] = UInt32(blocks.count)
            } else {
                slot = UInt32(rowOfSlot.count)
                rowOfSlot.append(row)
                blockOfSlot.append(UInt32(blocks.count))
                codeBits.append(contentsOf: repeatElement(0, count: words))
                codeFactors.append(SignCodes.Factors(norm: 0, inverseAlignment: 1, centroidTerm: 0))
            }
            // SAFETY: codeBits holds `words` words for every slot; `vectors` holds rows.count × dimensions
            // floats; rotatedCentroid and scratch hold `padded` floats.
            codeFactors[Int(slot)] = codeBits.withUnsafeMutableBufferPointer { bits in
                vectors.withUnsafeBufferPointer { v in
                    codes.encode(v.baseAddress! + position * dimensions, rotatedCentroid: rotatedCentroid,
                                 bits: bits.baseAddress! + Int(slot) * words, scratch: &scratch)
                }
            }
            columns.set(node: slot, values: rowValues)
            slots[position] = slot
            live += 1
        }
        liveRows += live
        if corrupt != nil { corruptBlocks += 1 }
        indexOfBlock[id] = blocks.count
        blocks.append(Block(id: id, radius: radius, slots: slots, live: live, corrupt: corrupt))
        centroids += halves
    }

    /// Block b's key for ranking: ‖q − c‖² (`innerProduct` false) or −q·c, against its float16 centroid.
    /// - Precondition: `query` holds `dimensions` floats; b < blocks.count.
    func key(_ b: Int, query: UnsafePointer<Float>, innerProduct: Bool) -> Float {
        centroids.withUnsafeBufferPointer { c in
            // SAFETY: centroids hold blocks × dimensions values; b is a block index.
            innerProduct ? hs_negdot_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
                : hs_l2sq_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
        }
    }

    /// Every block's key (see `key`), in `blocks` order.
    func keys(query: UnsafePointer<Float>, innerProduct: Bool) -> [Float] {
        [Float](unsafeUninitializedCapacity: blocks.count) { out, count in
            centroids.withUnsafeBufferPointer { c in
                // SAFETY: centroids hold blocks × dimensions values; out holds blocks.count floats.
                for b in 0..<blocks.count {
                    out[b] = innerProduct ? hs_negdot_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
                        : hs_l2sq_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
                }
            }
            count = blocks.count
        }
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
        if blocks[b].corrupt != nil { corruptBlocks -= 1 }
        let last = blocks.count - 1
        if b != last {
            blocks.swapAt(b, last)
            indexOfBlock[blocks[b].id] = b
            for slot in blocks[b].slots where slot != Self.dead { blockOfSlot[Int(slot)] = UInt32(b) }
            for d in 0..<dimensions { centroids.swapAt(b * dimensions + d, last * dimensions + d) }
        }
        blocks.removeLast()
        centroids.removeLast(dimensions)
        indexOfBlock[id] = nil
    }

    /// Merges the filter columns' tails and gives back the spare capacity that growing by appends left in the
    /// per-slot and per-block arrays (after bulk loads: up to half of each).
    func settle() {
        columns.settle()
        func fitted<T>(_ a: inout [T]) {
            guard a.capacity > a.count + a.count / 16 + 16 else { return }
            a = [T](unsafeUninitializedCapacity: a.count) { buffer, initialized in
                a.withUnsafeBufferPointer { _ = buffer.initialize(fromContentsOf: $0) }
                initialized = a.count
            }
        }
        fitted(&rowOfSlot)
        fitted(&blockOfSlot)
        fitted(&codeBits)
        fitted(&codeFactors)
        fitted(&centroids)
    }

    /// RAM it takes, estimated from its arrays' sizes.
    var memoryBytes: Int {
        let perBlock = MemoryLayout<Block>.stride + 48
        return blocks.reduce(0) { $0 + perBlock + $1.slots.capacity * 4 } + centroids.capacity * 2
            + rowOfSlot.capacity * 8 + freeSlots.capacity * 4 + indexOfBlock.capacity * 16 + columns.memoryBytes
            + blockOfSlot.capacity * 4 + codeBits.capacity * 8 + codeFactors.capacity * MemoryLayout<SignCodes.Factors>.stride
    }
}
