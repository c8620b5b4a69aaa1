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
    /// ‖q − c‖² (L2, cosine) or −q·c (inner product), when the caller has them.
    func codePlan(
        _ tier: ColdTier, metric: Metric, query q: [Float], slots: [UInt32],
        keys: [Float]?, k: Int, bound initial: Float?, maxProbe: Int, confidence: Float
    )
        -> [(block: Int, bound: Float, wanted: [Int])]
    {
        guard !slots.isEmpty else { return [] }
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
        // SAFETY: every slot here is < the slot count, so codeBits holds `words` words for it and blockOfSlot and
        // codeFactors an entry; `rotated` holds `padded` floats; low and high hold n floats.
        unsafe tier.codeBits.withUnsafeBufferPointer { bits in
            unsafe tier.codeFactors.withUnsafeBufferPointer { factors in
                unsafe tier.blockOfSlot.withUnsafeBufferPointer { blockOfSlot in
                    unsafe low.withUnsafeMutableBufferPointer { low in
                        unsafe high.withUnsafeMutableBufferPointer { high in
                            unsafe rotated.withUnsafeBufferPointer { rq in
                                unsafe q.withUnsafeBufferPointer { qb in
                                    unsafe slots.withUnsafeBufferPointer { slots in
                                        for i in 0..<n {
                                            // A block's code lines are fetched while the rows before it are estimated.
                                            if i + 16 < n {
                                                let ahead = unsafe Int(slots[i + 16])
                                                unsafe hs_prefetch(bits.baseAddress! + ahead * words)
                                                unsafe hs_prefetch(factors.baseAddress! + ahead)
                                                unsafe hs_prefetch(blockOfSlot.baseAddress! + ahead)
                                            }
                                            let slot = unsafe Int(slots[i])
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
                                                bits.baseAddress! + slot * words, f, rotatedQuery: rq.baseAddress!,
                                                querySum: querySum, centred: centred)
                                            if centred {
                                                let qc2 = lastKey
                                                let err = 2 * f.norm * errorPerNorm * qc2.squareRoot() * confidence
                                                let d2 = qc2 + f.norm * (f.norm - 2 * ip)
                                                unsafe low[i] = max(0, d2 - err) * scale
                                                unsafe high[i] = (d2 + err) * scale
                                            } else {
                                                let d = lastKey - f.norm * ip
                                                let err = f.norm * errorPerNorm * queryNorm * confidence
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
