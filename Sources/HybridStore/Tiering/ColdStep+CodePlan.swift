// The cold step's code plan: every matching cold row's distance estimated from its code (`SignCodes`) with
// an interval, and the blocks holding a row that can still be among the k nearest, lowest interval first.

import CKernels
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// The blocks to open for the cold rows `slots` (live and matching): each row's distance estimated from its
    /// code with an interval that holds with high probability; the rows whose interval starts at or below the
    /// k-th smallest interval end (and the hot k-th, `bound`) can be among the k nearest, and the blocks
    /// holding them are opened in order of their lowest interval start, at most `maxProbe`. `keys`: per block
    /// ‖q − c‖² (L2, cosine) or −q·c (inner product), when the caller has them. `memo`: this query's estimates
    /// from earlier steps, read where there and kept where not (ignored when made for another slot count).
    func codePlan(
        _ tier: ColdTier, metric: Metric, query q: [Float], slots: [UInt32],
        keys: [Float]?, k: Int, bound initial: Float?, maxProbe: Int, confidence: Float,
        memo: ColdStepMemo? = nil
    )
        -> [(block: Int, bound: Float, wanted: [Int])]
    {
        guard !slots.isEmpty else { return [] }
        // The kept estimates, moved out of the box for the loop (and back after it): [distance, error] per slot.
        let memo = memo.flatMap { $0.slotCount == tier.blockOfSlot.count ? $0 : nil }
        var kept = memo?.takeEstimates() ?? []
        defer { memo?.putEstimates(kept) }
        let keeps = !kept.isEmpty
        let codes = tier.codes
        let words = codes.words
        let centred = metric != .innerProduct
        var rotated = [Float](repeating: 0, count: codes.padded)
        unsafe q.withUnsafeBufferPointer { unsafe codes.rotate($0.baseAddress!, into: &rotated) }
        let querySum = rotated.reduce(0, +)
        let queryNorm = q.reduce(0) { $0 + $1 * $1 }.squareRoot()
        // A block's key: given, or computed for the last block seen (a block's slots are consecutive, so a
        // filter's matching slots come in runs of one block), without a per-query array over every block.
        var lastBlock = -1, lastKey: Float = 0
        var low = [Float](repeating: 0, count: slots.count)
        var high = low
        let scale: Float = metric == .cosine ? 0.5 : 1
        let n = slots.count
        // A block's centroid is read (for its key) at the first of its matching rows; under a sparse filter that is
        // nearly every row, and the read missed the cache (most of `hs_l2sq_f32_f16`'s time: synth-200k 80 % cold,
        // category_corr). It is requested eight rows ahead, when that row's block (itself requested sixteen ahead)
        // is known: tenant +22 %, category_corr +11 %, category_anti +12 % QPS over both tiers, price < 1 % and
        // < 0.1 % unchanged (Benchmarks/README.md).
        let dimensions = tier.dimensions
        var prefetchedBlock = -1
        let prefetching = keys == nil
        // SAFETY: every slot here is < the slot count, so codeBits holds `words` words for it and blockOfSlot and
        // codeFactors an entry, and kept (when not empty: 2 × the slot count) two floats; `rotated` holds `padded`
        // floats; low and high hold n floats; centroids hold `dimensions` halves per block.
        unsafe tier.centroids.withUnsafeBufferPointer { centroids in
            unsafe kept.withUnsafeMutableBufferPointer { kept in
                unsafe tier.codeBits.withUnsafeBufferPointer { bits in
                    unsafe tier.codeFactors.withUnsafeBufferPointer { factors in
                        unsafe tier.blockOfSlot.withUnsafeBufferPointer { blockOfSlot in
                            unsafe low.withUnsafeMutableBufferPointer { low in
                                unsafe high.withUnsafeMutableBufferPointer { high in
                                    unsafe rotated.withUnsafeBufferPointer { rq in
                                        unsafe q.withUnsafeBufferPointer { qb in
                                            unsafe slots.withUnsafeBufferPointer { slots in
                                                for i in 0..<n {
                                                    // A block's code lines are fetched while the rows before it are
                                                    // estimated.
                                                    if i + 16 < n {
                                                        let ahead = unsafe Int(slots[i + 16])
                                                        unsafe hs_prefetch(bits.baseAddress! + ahead * words)
                                                        unsafe hs_prefetch(factors.baseAddress! + ahead)
                                                        unsafe hs_prefetch(blockOfSlot.baseAddress! + ahead)
                                                    }
                                                    if prefetching, i + 8 < n {
                                                        let b = unsafe Int(blockOfSlot[Int(slots[i + 8])])
                                                        if b != prefetchedBlock {
                                                            prefetchedBlock = b
                                                            let c = unsafe centroids.baseAddress! + b * dimensions
                                                            for line in stride(from: 0, to: dimensions, by: 32) {
                                                                unsafe hs_prefetch(c + line)
                                                            }
                                                        }
                                                    }
                                                    let slot = unsafe Int(slots[i])
                                                    // The estimate (L2, cosine: squared distance; inner product: −dot) and
                                                    // its error at confidence 1, kept or made.
                                                    var d: Float, unit: Float
                                                    if keeps, unsafe !kept[2 * slot].isNaN {
                                                        (d, unit) = unsafe (kept[2 * slot], kept[2 * slot + 1])
                                                    } else {
                                                        let b = unsafe Int(blockOfSlot[slot])
                                                        if let keys {
                                                            lastKey = keys[b]
                                                        } else if b != lastBlock {
                                                            lastKey = unsafe tier.key(
                                                                b, query: qb.baseAddress!, innerProduct: !centred)
                                                            lastBlock = b
                                                        }
                                                        let f = unsafe factors[slot]
                                                        let (ip, errorPerNorm) = unsafe codes.estimate(
                                                            bits.baseAddress! + slot * words, f,
                                                            rotatedQuery: rq.baseAddress!,
                                                            querySum: querySum, centred: centred)
                                                        if centred {
                                                            let qc2 = lastKey
                                                            unit = 2 * f.norm * errorPerNorm * qc2.squareRoot()
                                                            d = qc2 + f.norm * (f.norm - 2 * ip)
                                                        } else {
                                                            d = lastKey - f.norm * ip
                                                            unit = f.norm * errorPerNorm * queryNorm
                                                        }
                                                        if keeps {
                                                            unsafe (kept[2 * slot], kept[2 * slot + 1]) = (d, unit)
                                                        }
                                                    }
                                                    let err = unit * confidence
                                                    if centred {
                                                        unsafe low[i] = max(0, d - err) * scale
                                                        unsafe high[i] = (d + err) * scale
                                                    } else {
                                                        unsafe low[i] = d - err
                                                        unsafe high[i] = d + err
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
}

/// One query's work kept across the cold steps a calibration runs for it at rising efforts: per slot, its code
/// estimate and that estimate's error at confidence 1, and its exact distance once a step has read it; per
/// block, its centroid's key. None turns on the effort or the filter; estimating every matching row was over
/// half of those steps' time, and reading again the blocks a smaller effort had read most of the rest (ranking
/// every centroid again, ~8 % of a uniform 256-d tier's curves). A step at a larger effort plans with the kept
/// estimates and keys and opens only the blocks holding a row it has no exact distance for; its answer is the
/// one it would give anew.
///
/// A box a single step uses at a time (a calibration searches each query from one thread at a time), hence
/// unchecked.
final class ColdStepMemo: @unchecked Sendable {
    /// The tier's slot count when made.
    let slotCount: Int
    /// Per slot: the estimate and its error at confidence 1; NaN: not estimated yet.
    private var estimates: [Float]
    /// Per slot: the exact distance as a query reports it; NaN: not read yet.
    private var exact: [Float]
    /// Per block: the query's key (`ColdTier.keys`), once a step ranking blocks by centroid has made them.
    var keys: [Float]? = nil

    init(slotCount: Int) {
        self.slotCount = slotCount
        estimates = [Float](repeating: .nan, count: 2 * slotCount)
        exact = [Float](repeating: .nan, count: slotCount)
    }

    /// The estimates, leaving the box without them until `putEstimates`.
    func takeEstimates() -> [Float] {
        var out: [Float] = []
        swap(&out, &estimates)
        return out
    }

    func putEstimates(_ values: [Float]) { estimates = values }

    /// The exact distances, leaving the box without them until `putExact`.
    func takeExact() -> [Float] {
        var out: [Float] = []
        swap(&out, &exact)
        return out
    }

    func putExact(_ values: [Float]) { exact = values }

    /// Keeps the distances `values` holds (one per slot, NaN: none) beside those already kept.
    func keepExact(_ values: ArraySlice<Float>) {
        precondition(values.count == slotCount)
        for (slot, d) in zip(0..<slotCount, values) where !d.isNaN { exact[slot] = d }
    }
}
