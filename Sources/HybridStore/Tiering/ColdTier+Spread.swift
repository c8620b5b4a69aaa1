// How a filter's cold rows spread over the blocks, and the filters following the data that a calibration draws.

import Foundation
import HNSW

extension ColdTier {
    /// Blocks `spread` looks at: about this many (up to twice), at an even stride.
    static let spreadSample = 64
    /// Blocks of the sample a filter matching at random must be expected to reach for `spread` to tell.
    static let spreadMinimumExpected = 8.0

    /// How the live rows `matches` picks (`selectivity` of them) spread over the blocks: of the blocks sampled
    /// at an even stride, those holding a matching live row, ÷ those a filter matching as many rows at random
    /// would be expected to (1 − (1 − s)^live each). About 1 for a filter drawn independently of the vectors;
    /// near its selectivity for one that follows them (a block holds near rows, so such a filter's rows fill a
    /// few blocks and miss the rest). A filter too sparse for the sample to expect `spreadMinimumExpected` blocks
    /// is counted over every block instead, from its rows (`matchingSlots`), where they number at most the
    /// blocks. Within two standard deviations of what a filter at random reaches, 1: the sample's own noise (a
    /// random 50 % filter read 0.96 on a tier whose last blocks hold one to three rows, and took a share of the
    /// other curve's effort for it). Nil where it cannot tell: no filter to speak of (s is 0 or 1), or too few
    /// rows. At most one check per live row of a sampled block.
    func spread(
        selectivity s: Double, matches: (UInt32) -> Bool, matchingSlots: (() -> [UInt32])? = nil
    ) -> Double? {
        guard s > 0, s < 1, liveRows > 0 else { return nil }
        // Locals: no exclusivity check per access of the class's arrays (which cost more than the rest here).
        let blocks = blocks, spans = spans, rowOfSlot = rowOfSlot, blockOfSlot = blockOfSlot
        var expected = 0.0, variance = 0.0, reached = 0
        for b in stride(from: 0, to: blocks.count, by: max(1, blocks.count / Self.spreadSample)) {
            let live = blocks[b].live
            guard live > 0 else { continue }
            let p = 1 - pow(1 - s, Double(live))
            expected += p
            variance += p * (1 - p)
            let (base, count) = spans[b]
            for slot in base..<base + count where rowOfSlot[Int(slot)] >= 0 && matches(slot) {
                reached += 1
                break
            }
        }
        if expected < Self.spreadMinimumExpected, let matchingSlots, s * Double(liveRows) <= Double(blocks.count) {
            let liveBlocks = blocks.count { $0.live > 0 }
            let p = 1 - pow(1 - s, Double(liveRows) / Double(max(liveBlocks, 1)))
            expected = Double(liveBlocks) * p
            variance = expected * (1 - p)
            var seen = [Bool](repeating: false, count: blocks.count)
            reached = 0
            for slot in matchingSlots() where Int(slot) < blockOfSlot.count && !seen[Int(blockOfSlot[Int(slot)])] {
                seen[Int(blockOfSlot[Int(slot)])] = true
                reached += 1
            }
        }
        guard expected >= Self.spreadMinimumExpected else { return nil }
        guard Double(reached) < expected - 2 * variance.squareRoot() else { return 1 }
        return Double(reached) / expected
    }

    /// `spread(selectivity:matches:matchingSlots:)` of a filter held in memory for the tier, matching about
    /// `selectivity` of its live rows.
    func spread(of filter: Filter, selectivity: Double) -> Double? {
        let columns = columns
        let predicate = columns.predicate(filter)
        return spread(
            selectivity: selectivity, matches: predicate,
            matchingSlots: { columns.collect(filter, predicate: predicate) })
    }

    /// A filter following the data, as a calibration draws one: the live rows of `regions` regions of blocks,
    /// each grown from a seed block (drawn by `salt`) nearest centroid first until it holds its share of
    /// `selectivity` of the live rows (as a filter on a topic, a tenant's documents or a category does). Nil
    /// for a tier without live rows.
    func regionFilter(selectivity: Double, regions: Int, salt: UInt64) -> ColdSlotFilter? {
        let seeds = blocks.indices.filter { blocks[$0].live > 0 }
        guard !seeds.isEmpty, regions > 0 else { return nil }
        let share = selectivity * Double(liveRows) / Double(regions)
        var chosen = [Bool](repeating: false, count: blocks.count)
        var matched = 0
        for r in 0..<regions {
            let seed = seeds[Int(SplitMix64.mix(salt &+ UInt64(r)) % UInt64(seeds.count))]
            let centroid = (0..<dimensions).map { Float(Float16(bitPattern: centroids[seed * dimensions + $0])) }
            let keys = unsafe centroid.withUnsafeBufferPointer {
                unsafe self.keys(query: $0.baseAddress!, innerProduct: false)
            }
            var held = 0
            for b in keys.indices.sorted(by: { keys[$0] < keys[$1] }) where Double(held) < share {
                guard !chosen[b] else { continue }
                chosen[b] = true
                held += blocks[b].live
            }
            matched += held
        }
        let blockOfSlot = blockOfSlot
        return ColdSlotFilter(
            rowOfSlot: rowOfSlot, selectivity: Double(matched) / Double(max(liveRows, 1)),
            matchesSlot: { chosen[Int(blockOfSlot[$0])] })
    }
}
