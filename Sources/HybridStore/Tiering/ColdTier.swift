import CKernels
import HNSW
import QueryPlanner

/// What RAM holds of a collection's cold tier: per block its centroid, radius and which of its positions
/// hold a live row (as a *slot*: a dense number for a cold row), and per slot the row's filterable values
/// (a `FilterColumns` over slots) and a 1- or 2-bit code of its vector (`SignCodes`: ⅛–¼ byte a dimension + 12
/// bytes). With it the cold step picks blocks, skips those with no live matching row, checks the filter, and
/// (for selective filters) ranks the matching rows by their codes, without reading SQLite; only the vectors
/// stay on disk.
///
/// Derived state (DESIGN.md principle 1): rebuilt from SQLite on open. Guarded by the collection's lock.
final class ColdTier {
    struct Block {
        var id: Int64
        /// Its positions' slots: `base`, `base + 1`, … `base + count − 1`, held for the block's life (a position
        /// whose row is gone keeps its slot, with no row, until the block goes), so a block's codes, values and
        /// rows lie together in the per-slot arrays.
        var base: UInt32
        var count: Int
        var live: Int
        /// Why the block could not be read on open (it is then refused, not served, when a query reaches it),
        /// boxed: one pointer in every block rather than an error's fields (~40 bytes a block).
        var corruption: Corruption?
        var corrupt: HybridStoreError? { corruption?.error }
        /// Slot of `position`.
        func slot(_ position: Int) -> UInt32 { base + UInt32(position) }
    }

    let dimensions: Int
    private(set) var blocks: [Block] = []
    /// Per block, in `blocks` order: its radius, and its slots (base, count), apart from `blocks` so that the
    /// planning pass over the nearest few hundred blocks reads small arrays that stay in cache (a `Block`
    /// each, and a row list behind each, cost a cache miss or two per block considered).
    private(set) var radii: [Float] = []
    private(set) var spans: [(base: UInt32, count: UInt32)] = []
    /// Block centroids as float16 bit patterns, row-major, in `blocks` order (one contiguous matrix for the
    /// ranking pass; half the RAM of float32). A block's radius, codes and bounds are all taken against this
    /// rounded centroid, so nothing assumes the float32 one.
    private(set) var centroids: [UInt16] = []
    private(set) var columns: FilterColumns
    /// Per slot: its row, -1 when it holds none (a dead position, or a free range). (Row → slot has no map:
    /// writes know a cold row's block from the database, and a block has a few dozen positions.)
    private(set) var rowOfSlot: [Int64] = []
    /// Ranges of slots of dropped blocks, for new blocks to reuse: their bases by length (blocks have a few
    /// lengths, so a new block finds a range of its own length, or splits a longer one, without a search).
    private var freeRanges: [UInt32: [UInt32]] = [:]
    /// Per slot: the index in `blocks` of the block holding it.
    private(set) var blockOfSlot: [UInt32] = []
    /// The map and estimator of the per-row codes (see `SignCodes`).
    let codes: SignCodes
    /// Per slot: its code, `codes.words` words (meaningless for a slot holding no row).
    private(set) var codeBits: [UInt64] = []
    /// Per slot: its code's factors.
    private(set) var codeFactors: [SignCodes.Factors] = []
    private var indexOfBlock: [Int64: Int] = [:]
    private(set) var liveRows = 0
    /// Blocks added and removed so far: what was measured of the tier's blocks (a filter's own cold curve) holds
    /// while this stands still.
    private(set) var blocksChanged = 0
    /// Blocks that did not decode on open (kept, without rows, so queries that could need them are refused).
    private(set) var corruptBlocks = 0

    final class Corruption: Sendable {
        let error: HybridStoreError
        init(_ error: HybridStoreError) { self.error = error }
    }

    init(schema: Schema) {
        dimensions = schema.vector.dimensions
        columns = FilterColumns(schema: schema)
        codes = SignCodes(dimensions: dimensions)
    }

    var isEmpty: Bool { blocks.isEmpty }

    /// Adds a block: `rows` in position order, with the live ones' filterable values (absent = dead position)
    /// and all rows' vectors in the space distances are measured in (normalised for cosine), row-major; a
    /// corrupt block has no rows.
    func add(
        block id: Int64, centroid: [Float], radius: Float, rows: [Int64], values: [Int64: [String: Value]],
        vectors: [Float], corrupt: HybridStoreError? = nil
    ) {
        blocksChanged += 1
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
        let base = allocate(rows.count, block: blocks.count)
        var live = 0
        let words = codes.words
        var rotatedCentroid = [Float](repeating: 0, count: codes.padded)
        var scratch = rotatedCentroid
        unsafe centroid.withUnsafeBufferPointer { unsafe codes.rotate($0.baseAddress!, into: &rotatedCentroid) }
        for (position, row) in rows.enumerated() {
            let slot = base + UInt32(position)
            guard let rowValues = values[row] else { continue }
            rowOfSlot[Int(slot)] = row
            // SAFETY: codeBits holds `words` words for every slot; `vectors` holds rows.count × dimensions
            // floats; rotatedCentroid and scratch hold `padded` floats.
            codeFactors[Int(slot)] = unsafe codeBits.withUnsafeMutableBufferPointer { bits in
                unsafe vectors.withUnsafeBufferPointer { v in
                    unsafe codes.encode(
                        v.baseAddress! + position * dimensions, rotatedCentroid: rotatedCentroid,
                        bits: bits.baseAddress! + Int(slot) * words, scratch: &scratch)
                }
            }
            columns.set(node: slot, values: rowValues)
            live += 1
        }
        liveRows += live
        if corrupt != nil { corruptBlocks += 1 }
        indexOfBlock[id] = blocks.count
        blocks.append(
            Block(id: id, base: base, count: rows.count, live: live, corruption: corrupt.map(Corruption.init)))
        radii.append(radius)
        spans.append((base, UInt32(rows.count)))
        centroids += halves
    }

    /// `count` consecutive slots for block index `b`, none holding a row: a free range of dropped blocks
    /// (the smallest that fits, its rest kept free), else new slots at the end.
    private func allocate(_ count: Int, block b: Int) -> UInt32 {
        guard count > 0 else { return UInt32(rowOfSlot.count) }
        let length = UInt32(count)
        let base: UInt32
        if let reused = freeRanges[length]?.popLast() {
            base = reused
            if freeRanges[length]?.isEmpty == true { freeRanges[length] = nil }
        } else if let longer = freeRanges.keys.filter({ $0 > length }).min(), let reused = freeRanges[longer]?.popLast()
        {
            if freeRanges[longer]?.isEmpty == true { freeRanges[longer] = nil }
            base = reused
            freeRanges[longer - length, default: []].append(reused + length)
        } else {
            base = UInt32(rowOfSlot.count)
            rowOfSlot.append(contentsOf: repeatElement(-1, count: count))
            blockOfSlot.append(contentsOf: repeatElement(0, count: count))
            codeBits.append(contentsOf: repeatElement(0, count: count * codes.words))
            codeFactors.append(
                contentsOf: repeatElement(
                    SignCodes.Factors(norm: 0, inverseAlignment: 1, centroidTerm: 0), count: count))
        }
        for slot in Int(base)..<Int(base) + count { blockOfSlot[slot] = UInt32(b) }
        return base
    }

    /// Block b's key for ranking: ‖q − c‖² (`innerProduct` false) or −q·c, against its float16 centroid.
    /// - Precondition: `query` holds `dimensions` floats; b < blocks.count.
    func key(_ b: Int, query: UnsafePointer<Float>, innerProduct: Bool) -> Float {
        unsafe centroids.withUnsafeBufferPointer { c in
            // SAFETY: centroids hold blocks × dimensions values; b is a block index.
            unsafe innerProduct
                ? hs_negdot_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
                : hs_l2sq_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
        }
    }

    /// Every block's key (see `key`), in `blocks` order.
    func keys(query: UnsafePointer<Float>, innerProduct: Bool) -> [Float] {
        unsafe [Float](unsafeUninitializedCapacity: blocks.count) { out, count in
            unsafe centroids.withUnsafeBufferPointer { c in
                // SAFETY: centroids hold blocks × dimensions values; out holds blocks.count floats.
                for b in 0..<blocks.count {
                    unsafe out[b] =
                        unsafe innerProduct
                        ? hs_negdot_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
                        : hs_l2sq_f32_f16(query, c.baseAddress! + b * dimensions, dimensions)
                }
            }
            count = blocks.count
        }
    }

    /// The slot of `row` in block `id`, with the block's index and the row's position.
    private func find(row: Int64, block id: Int64) -> (block: Int, position: Int, slot: UInt32)? {
        guard let b = indexOfBlock[id] else { return nil }
        for position in 0..<blocks[b].count where rowOfSlot[Int(blocks[b].slot(position))] == row {
            return (b, position, blocks[b].slot(position))
        }
        return nil
    }

    /// Whether block b's `position` holds a live row.
    func isLive(_ b: Int, _ position: Int) -> Bool { rowOfSlot[Int(blocks[b].slot(position))] >= 0 }

    /// Forgets a row of block `id` (deleted, returned to the hot tier); no-op when it is not there. Its slot
    /// stays the block's, empty.
    func remove(row: Int64, block id: Int64) {
        guard let (b, _, slot) = find(row: row, block: id) else { return }
        blocks[b].live -= 1
        liveRows -= 1
        columns.clear(node: slot)
        rowOfSlot[Int(slot)] = -1
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

    /// Drops a block and forgets its rows; its slots become free for later blocks.
    func remove(block id: Int64) {
        guard let b = indexOfBlock[id] else { return }
        blocksChanged += 1
        for position in 0..<blocks[b].count where isLive(b, position) {
            remove(row: rowOfSlot[Int(blocks[b].slot(position))], block: id)
        }
        if blocks[b].corrupt != nil { corruptBlocks -= 1 }
        if blocks[b].count > 0 { freeRanges[UInt32(blocks[b].count), default: []].append(blocks[b].base) }
        let last = blocks.count - 1
        if b != last {
            blocks.swapAt(b, last)
            radii.swapAt(b, last)
            spans.swapAt(b, last)
            indexOfBlock[blocks[b].id] = b
            for position in 0..<blocks[b].count { blockOfSlot[Int(blocks[b].slot(position))] = UInt32(b) }
            for d in 0..<dimensions { centroids.swapAt(b * dimensions + d, last * dimensions + d) }
        }
        blocks.removeLast()
        radii.removeLast()
        spans.removeLast()
        centroids.removeLast(dimensions)
        indexOfBlock[id] = nil
    }

    /// Merges the filter columns' tails and gives back the spare capacity that growing by appends left in the
    /// per-slot and per-block arrays (after bulk loads: up to half of each).
    func settle() {
        columns.settle()
        func fitted<T>(_ a: inout [T]) {
            guard a.capacity > a.count + a.count / 16 + 16 else { return }
            a = unsafe [T](unsafeUninitializedCapacity: a.count) { buffer, initialized in
                unsafe a.withUnsafeBufferPointer { _ = unsafe buffer.initialize(fromContentsOf: $0) }
                initialized = a.count
            }
        }
        fitted(&rowOfSlot)
        fitted(&blockOfSlot)
        fitted(&codeBits)
        fitted(&codeFactors)
        fitted(&centroids)
        fitted(&blocks)
        fitted(&radii)
        fitted(&spans)
    }

    /// RAM it takes, estimated from its arrays' sizes.
    var memoryBytes: Int {
        // A block is its struct (its rows are ranges of the per-slot arrays), its radius, span and index entry.
        return blocks.capacity * MemoryLayout<Block>.stride + centroids.capacity * 2 + radii.capacity * 4 + spans
            .capacity * 8
            + rowOfSlot.capacity * 8 + freeRanges.values.reduce(0) { $0 + 16 + $1.capacity * 4 } + indexOfBlock.capacity
            * 16 + columns.memoryBytes
            + blockOfSlot.capacity * 4 + codeBits.capacity * 8 + codeFactors.capacity
            * MemoryLayout<SignCodes.Factors>.stride
    }
}
