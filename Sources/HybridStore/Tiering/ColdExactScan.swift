// The exact nearest cold rows of many queries under several filters at once, in one pass over the cold tier:
// the truth a calibration measures its cold step against.

import Dispatch
import Foundation
import HNSW

extension HybridStore {
    /// For each filter (nil: every live row) and each query, the `k` nearest live cold rows matching it, exactly,
    /// nearest first (ties by row), distances as a query reports them: what an exact cold step (`coldStep` with
    /// `probes: .max` and no bound) returns, for all of them. Every block is read and decoded once, not once per
    /// query and filter: calibration asks for a hundred queries under six filters, and the per-query exact steps
    /// it ran before spent most of a calibration's time decompressing the same blocks again. Result: `[filter][query]`.
    /// Throws a corrupt block's error (a truth that skipped its rows would be no truth).
    ///
    /// With `memos` (one per query, made for this tier): each query's exact distance to every row the pass scored
    /// is left in its memo, so the calibration's cold steps that follow find every row they plan to read already
    /// measured and open no block (they read each block again per query and effort before: a third of their time).
    func coldExactNearest(
        _ s: CollectionState, queries: [[Float]], k: Int, filters: [ColdSlotFilter?], memos: [ColdStepMemo?] = []
    ) throws(HybridStoreError) -> [[[(row: Int64, distance: Float)]]] {
        let metric = s.schema.vector.metric
        let dim = s.schema.vector.dimensions
        let kernel = DistanceKernel(metric: metric)
        // Cosine: rows and queries normalized, distance 1 − cos reported as a query step does.
        // One buffer of every query (cosine: normalized), so that scoring a row against all of them walks one
        // array instead of retaining each query's.
        var flat = [Float]()
        flat.reserveCapacity(queries.count * dim)
        for query in queries {
            var q = query
            if metric == .cosine { unsafe q.withUnsafeMutableBufferPointer { unsafe normalize($0) } }
            flat.append(contentsOf: q)
        }
        let normalized = flat
        @Sendable func reported(_ d: Float) -> Float { metric == .cosine ? 1 + d : d }
        typealias Nearest = [[[(row: Int64, distance: Float)]]]
        let empty = Nearest(
            repeating: [[(row: Int64, distance: Float)]](repeating: [], count: queries.count), count: filters.count)
        guard !queries.isEmpty, !filters.isEmpty, k > 0 else { return empty }
        // The tier as it is now, and the pass outside the collection's lock (a pass reads every block: writers
        // would wait for all of it). A block a commit replaces meanwhile is skipped, or its rows no longer match
        // the ones named here and are: the truth of a calibration, not of a query.
        let (blocks, rowOfSlot) = s.lock.read { (s.cold.blocks, s.cold.rowOfSlot) }
        if let corrupt = blocks.lazy.compactMap(\.corrupt).first { throw corrupt }
        let slots = rowOfSlot.count
        let memos = memos.count == queries.count ? memos.compactMap { $0?.slotCount == slots ? $0 : nil } : []
        let keeping = !memos.isEmpty && memos.count == queries.count
        do {
            /// Worker w reads blocks w, w + W, …, each through its own reader connection and buffers.
            let workers = min(2, max(1, blocks.count / 64))
            @Sendable func scan(_ w: Int) -> Result<(Nearest, [Float]), HybridStoreError> {
                var best = empty
                // When keeping: query qi's distance to slot i at [qi × slots + i] (NaN: not scored here).
                var exact = keeping ? [Float](repeating: .nan, count: queries.count * slots) : []
                // The k-th distance of best[f][q] (infinity until it holds k), flat: most rows are farther than
                // every list they could enter, and are turned away without touching the lists.
                var worst = [Float](repeating: .infinity, count: filters.count * queries.count)
                let reader = ColdBlockReader()
                var decoded: [Float] = []
                var distances = [Float](repeating: 0, count: queries.count)
                var matching: [Int] = []
                do throws(HybridStoreError) {
                    try withReader { c in
                        try c.transaction(immediate: false) {
                            let blobs = BlobReader(c, table: "hs_cold_blocks", column: "data")
                            defer { blobs.close() }  // before the transaction ends
                            for block in stride(from: w, to: blocks.count, by: workers).lazy.map({ blocks[$0] }) {
                                guard try loadColdBlock(s, block.id, c, through: blobs, into: reader, positions: nil)
                                else { continue }  // replaced by a commit this tier does not name yet
                                let count = reader.rows.count
                                if decoded.count < count * dim { decoded = [Float](repeating: 0, count: count * dim) }
                                unsafe decoded.withUnsafeMutableBufferPointer { unsafe reader.vectors(into: $0) }
                                for position in 0..<min(count, Int(block.count)) {
                                    let slot = block.slot(position)
                                    let row = rowOfSlot[Int(slot)]
                                    guard row >= 0, reader.rows[position] == row else { continue }
                                    matching.removeAll(keepingCapacity: true)
                                    for (f, filter) in filters.enumerated() where filter?.matches(slot) ?? true {
                                        matching.append(f)
                                    }
                                    guard !matching.isEmpty else { continue }
                                    Self.distances(
                                        from: normalized, to: &decoded, row: position, dim: dim, kernel: kernel,
                                        normalizing: metric == .cosine, into: &distances)
                                    for qi in 0..<distances.count {
                                        let d = reported(distances[qi])
                                        if keeping { exact[qi * slots + Int(slot)] = d }
                                        for f in matching where d <= worst[f * queries.count + qi] {
                                            Self.keepNearest(&best[f][qi], (row, d), k: k)
                                            if best[f][qi].count == k {
                                                worst[f * queries.count + qi] = best[f][qi][k - 1].distance
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } catch {
                    return .failure(error)
                }
                return .success((best, exact))
            }
            let results = Locked([Result<(Nearest, [Float]), HybridStoreError>?](repeating: nil, count: workers))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let result = scan(w)
                results.withLock { $0[w] = result }
            }
            var best = empty
            let parts = try results.withLock({ $0 }).map { result throws(HybridStoreError) in try result!.get() }
            if keeping {
                for (qi, memo) in memos.enumerated() {
                    for (_, exact) in parts { memo.keepExact(exact[qi * slots..<(qi + 1) * slots]) }
                }
            }
            for (partial, _) in parts {
                for f in partial.indices {
                    for qi in partial[f].indices {
                        for candidate in partial[f][qi] { Self.keepNearest(&best[f][qi], candidate, k: k) }
                    }
                }
            }
            return best
        }
    }

    /// The distances from each query of `queries` (`out.count` of them, `dim` floats each, one after another) to row
    /// `row` of `vectors` (rows of `dim` floats; normalized in place first when asked), into `out`.
    private static func distances(
        from queries: [Float], to vectors: inout [Float], row: Int, dim: Int, kernel: DistanceKernel,
        normalizing: Bool, into out: inout [Float]
    ) {
        precondition(queries.count == out.count * dim && vectors.count >= (row + 1) * dim)
        // SAFETY: the precondition: row + 1 rows of dim floats in vectors, out.count queries of dim floats.
        unsafe vectors.withUnsafeMutableBufferPointer { all in
            let v = unsafe UnsafeMutableBufferPointer(rebasing: all[row * dim..<(row + 1) * dim])
            if normalizing { unsafe normalize(v) }
            unsafe queries.withUnsafeBufferPointer { q in
                unsafe out.withUnsafeMutableBufferPointer { out in
                    for qi in 0..<out.count {
                        unsafe out[qi] = unsafe kernel(q.baseAddress! + qi * dim, v.baseAddress!, dim)
                    }
                }
            }
        }
    }

    /// Inserts `candidate` into `best` (ascending by distance, then row) when it is among the `k` nearest.
    static func keepNearest(
        _ best: inout [(row: Int64, distance: Float)], _ candidate: (row: Int64, distance: Float), k: Int
    ) {
        let (row, d) = candidate
        guard best.count < k || d < best[k - 1].distance || (d == best[k - 1].distance && row < best[k - 1].row)
        else { return }
        let at = best.firstIndex { d < $0.distance || (d == $0.distance && row < $0.row) } ?? best.count
        best.insert(candidate, at: at)
        if best.count > k { best.removeLast() }
    }
}
