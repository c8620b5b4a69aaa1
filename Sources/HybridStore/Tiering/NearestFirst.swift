import CKernels
import Foundation
import HNSW
import QueryPlanner

/// Indices of `keys` in ascending key order (ties by index), produced lazily, about `expected` at a time: the
/// smallest of those not yet taken are found and sorted when the ones in order run out. Most cold steps open
/// a few dozen of ten thousand blocks.
///
/// Each item is one `UInt64`: the key's bits mapped to an unsigned integer of the same order, above the index,
/// so one integer comparison orders by key then index. The next smallest are found without a data-dependent
/// branch per item: a threshold from a sample of the keys (a rank safely above the wanted fraction), then one
/// pass that moves the items at or under it to the front; a threshold that keeps too few is doubled in rank
/// and the pass repeated. (A quickselect over tuples of all blocks, with its mispredicted branches, was a
/// tenth of an unfiltered cold query: Benchmarks/README.md, "Measurements behind constants".)
package struct NearestFirst {
    private var items: [UInt64]
    /// items[..<sortedUpTo] are in order, and all smaller than the rest (which are in no order).
    private var sortedUpTo = 0
    private var position = 0
    private let chunk: Int

    package init(keys: [Float], expected: Int) {
        let n = keys.count
        items = unsafe [UInt64](unsafeUninitializedCapacity: n) { out, count in
            unsafe keys.withUnsafeBufferPointer { k in
                for i in 0..<n { unsafe out[i] = unsafe Self.item(k[i], i) }
            }
            count = n
        }
        chunk = max(expected, 1)
        if expected > 0 { refill() }
    }

    /// The key's order as an unsigned integer (negative floats reversed below the positive ones; −0 as +0),
    /// above the index.
    @inline(__always)
    static func item(_ key: Float, _ index: Int) -> UInt64 {
        let bits = (key == 0 ? 0 : key).bitPattern
        let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        return UInt64(ordered) << 32 | UInt64(UInt32(truncatingIfNeeded: index))
    }

    /// Puts the next `chunk` smallest items not yet in order (or all of them, when few are left) in order after
    /// those that are.
    private mutating func refill() {
        let from = sortedUpTo
        let remaining = items.count - from
        guard remaining > 0 else { return }
        var front = remaining
        if chunk < remaining && remaining > 1024 { front = Self.partition(&items, from: from, atLeast: chunk) }
        items[from..<from + front].sort()
        sortedUpTo = from + front
    }

    /// Moves at least the `m` smallest of items[from...] to the start of that range, every one of them smaller
    /// than every item after them (in no order on either side), and returns how many were moved.
    /// 0 < m < items.count − from; items.count − from > 512.
    static func partition(_ items: inout [UInt64], from: Int, atLeast m: Int) -> Int {
        let n = items.count - from
        // A sample of 512 items at a fixed stride (blocks come in no order related to the query).
        let samples = 512
        var sample = (0..<samples).map { items[from + $0 * n / samples] }
        sample.sort()
        // The sample rank with ~1.15·m + 3σ items under it: too few is rare, and then the rank is doubled.
        let expectedRank = Double(m) * Double(samples) / Double(n)
        var rank = Int((expectedRank * 1.15 + 3 * expectedRank.squareRoot() + 2).rounded(.up))
        var split = [UInt64](repeating: 0, count: n)
        while rank < samples {
            let threshold = sample[rank]
            // Each item goes to the next free place at the front and to the next free place at the back; the
            // one its side does not keep is a free place, written again later.
            // SAFETY: kept ≤ i and n − 1 − (i − kept) ≥ kept, both < n; items holds from + n, split n.
            let kept = unsafe items.withUnsafeBufferPointer { all in
                unsafe split.withUnsafeMutableBufferPointer { dst in
                    let src = unsafe all.baseAddress! + from
                    var kept = 0
                    for i in 0..<n {
                        let v = unsafe src[i]
                        unsafe dst[kept] = v
                        unsafe dst[n - 1 - (i - kept)] = v
                        kept &+= v <= threshold ? 1 : 0
                    }
                    return kept
                }
            }
            if kept >= m {
                items.replaceSubrange(from..., with: split)
                return kept
            }
            rank *= 2
        }
        return n
    }

    /// The index `ahead` places after the next one, when already in order (a hint; nothing is taken).
    package func peek(_ ahead: Int) -> Int? {
        let i = position + ahead
        return i < sortedUpTo ? Int(UInt32(truncatingIfNeeded: items[i])) : nil
    }

    /// The next index, nearest first; nil when all are taken.
    package mutating func next() -> Int? {
        if position == sortedUpTo { refill() }
        guard position < sortedUpTo else { return nil }
        defer { position += 1 }
        return Int(UInt32(truncatingIfNeeded: items[position]))
    }
}
