// The cold step of a query: which cold blocks to open (by centroid, or by the rows' codes for a selective
// filter), reading them and scoring their rows, bounded by the hot k-th distance.

import CKernels
import Foundation
import HNSW
import QueryPlanner

extension HybridStore {
    /// The k nearest live cold rows matching `filter`. Candidate blocks: those holding a live matching row,
    /// nearest centroid first, at most `probes` (default `Planner.coldBlocks`, the budget the query's plan shows); or, when a filter on in-memory
    /// columns leaves few matching rows, every matching row. Which rows of a block are live and match comes
    /// from memory (blocks with none are not read); a filter on columns that are not filterable is checked
    /// through SQL per block. Unless asked to be exact, the candidate rows are ranked by their codes
    /// (`SignCodes`) and only blocks holding a row whose estimated distance interval can still reach the k
    /// nearest are opened, lowest interval first, stopping when the next cannot beat the k-th best exact
    /// distance found so far (hot or cold). With `probes: .max` the step is exact: every candidate block in
    /// centroid order, skipping (L2, cosine) those whose lower bound — distance to the centroid minus the
    /// radius — cannot beat the k-th best.
    func coldStep(
        _ s: CollectionState, query: [Float], k: Int, filter: Filter?, condition: SQLCondition?,
        bound initial: Float?, probes: Int?, effort: Double = 1, reader held: Connection? = nil,
        slots slotFilter: ColdSlotFilter? = nil, memo memoBox: ColdStepMemo? = nil, report: inout ColdStepReport
    ) throws(HybridStoreError) -> [(row: Int64, distance: Float)] {
        let metric = s.schema.vector.metric
        let dim = s.schema.vector.dimensions
        var q = query
        if metric == .cosine { unsafe q.withUnsafeMutableBufferPointer { unsafe normalize($0) } }
        let kernel = DistanceKernel(metric: metric)
        func reported(_ d: Float) -> Float { metric == .cosine ? 1 + d : d }
        let started = nowNanos()
        return try s.lock.read { () throws(HybridStoreError) -> [(row: Int64, distance: Float)] in
            let tier = s.cold
            let blocks = tier.blocks  // locals: no exclusivity check per access of the class's arrays
            let blockCount = blocks.count
            guard blockCount > 0 else { return [] }
            // Which slots qualify: live, and matching when the filter's columns are in memory.
            let inMemory = filter.map { tier.columns.covers($0) } ?? true
            let matches: (UInt32) -> Bool
            var selectivity = 1.0
            if let slotFilter {
                selectivity = slotFilter.selectivity
                matches = { slotFilter.matches($0) }
            } else if let filter, inMemory {
                let estimate = tier.columns.estimate(filter)
                if estimate == 0 && blocks.allSatisfy({ $0.corrupt == nil }) { return [] }
                selectivity = estimate / Double(max(tier.liveRows, 1))
                matches = tier.columns.predicate(filter)
            } else {
                matches = { _ in true }
            }
            /// Blocks the step may open at `effort`: the caller's count, or the store's rule.
            func allowedProbes(_ effort: Double) -> Int {
                min(
                    blockCount,
                    max(1, probes ?? Planner.coldBlocks(blocks: blockCount, selectivity: selectivity, effort: effort)))
            }
            let maxProbe = allowedProbes(effort)
            let exhaustive = maxProbe >= blockCount
            var plan: [(block: Int, bound: Float, wanted: [Int])] = []
            // Few matching rows for the blocks the step may open (a selective filter): rank every matching row
            // by its code and open only blocks holding one that can still be among the k nearest. Else pick
            // blocks by centroid (then rank their rows by code). Not when asked to be exact (`probes` ≥ all
            // blocks, as opposed to a default that happens to allow every block): the codes' bound holds with
            // high probability, not always.
            // Which way is cheaper is decided at effort 1: effort then scales the work within the way chosen. (The
            // centroid way opens a few dozen of the blocks it may, so a higher effort does not make ranking
            // every matching row worth it; measured: Benchmarks/README.md, "Measurements behind constants".)
            let exact = probes.map { $0 >= blockCount } ?? false
            // (As `Planner.coldRanksByCode` decides, which the planner uses to pick the curve, unless `probes` is
            // fixed.)
            let byCode =
                !exact && (filter != nil || slotFilter != nil) && inMemory
                && Double(tier.liveRows) * selectivity <= Double(allowedProbes(1)) * Planner.coldCodeRanksPerBlockRead
            if byCode {
                let slots =
                    slotFilter == nil
                    ? tier.columns.collect(filter!, predicate: matches)
                    : slotFilter!.slots.filter { Int($0) < tier.rowOfSlot.count && tier.rowOfSlot[Int($0)] >= 0 }
                report.rowsRanked = slots.count
                plan = codePlan(
                    tier, metric: metric, query: q, slots: slots, keys: nil, k: k, bound: initial,
                    maxProbe: maxProbe, confidence: Self.codeConfidence(effort), memo: memoBox)
            }
            // Rank blocks by centroid: squared L2 to it (or −dot for inner product).
            let innerProduct = metric == .innerProduct
            // (A calibration's earlier step for this query made them already: they turn on neither effort nor
            // filter.)
            let keptKeys = memoBox.flatMap { $0.slotCount == tier.blockOfSlot.count ? $0.keys : nil }
            let keys: [Float]
            if byCode {
                keys = []
            } else if let keptKeys, keptKeys.count == blockCount {
                keys = keptKeys
            } else {
                keys = unsafe q.withUnsafeBufferPointer {
                    unsafe tier.keys(query: $0.baseAddress!, innerProduct: innerProduct)
                }
                if let memoBox, memoBox.slotCount == tier.blockOfSlot.count { memoBox.keys = keys }
            }
            /// The nearest any row of block b can be, in reported units (L2 and cosine: the centroid distance
            /// minus the radius; none for inner product). Only asked of the blocks popped.
            let radii = tier.radii, spans = tier.spans
            func lowerBound(_ b: Int) -> Float {
                guard metric != .innerProduct else { return -.infinity }
                let gap = max(0, keys[b].squareRoot() - radii[b])
                return metric == .cosine ? gap * gap / 2 : gap * gap
            }
            var order = NearestFirst(keys: keys, expected: maxProbe + 32)
            // The blocks to open, in centroid order: those holding a live row that matches (as far as memory
            // can tell), up to `maxProbe`. Blocks come nearest centroid first, not lowest bound first: a bound
            // that cannot beat the hot k-th ends an approximate step, but an exhaustive one only skips it.
            // A filter on columns held only in SQLite is checked here, per block, through SQL (so that blocks
            // without a matching row do not take places in the plan).
            let rowOfSlot = tier.rowOfSlot
            let sqlFilter = inMemory ? nil : s.table.coldBlockRowsWhere(condition?.text ?? "1")
            // The blocks picked by centroid, unless the step is exact, are ranked again by their rows' codes
            // below: their live matching rows go straight into one list (slot = the block's base + position).
            let rerank = !byCode && !exact
            var picked = 0
            var candidates: [UInt32] = []
            if rerank { candidates.reserveCapacity(maxProbe * 16) }
            let mayBeCorrupt = tier.corruptBlocks > 0
            func makePlan(_ c: Connection?) throws {
                var wanted: [Int] = []
                wanted.reserveCapacity(64)
                // SAFETY: every slot read is < base + count of its block's span, within rowOfSlot; blocks
                // prefetched are < blockCount, within keys, radii and spans.
                unsafe try rowOfSlot.withUnsafeBufferPointer { rowOfSlot in
                    unsafe try spans.withUnsafeBufferPointer { spanBuffer in
                        while picked < maxProbe, let b = order.next() {
                            // Blocks come in no memory order, and ranking all centroids has just pushed these small
                            // arrays out of cache: fetch a block's entries 8 places ahead, and its rows (whose place
                            // needs its span) 4 places ahead, so that both are here when it comes up.
                            if let far = order.peek(8) {
                                unsafe hs_prefetch(spanBuffer.baseAddress! + far)
                                unsafe radii.withUnsafeBufferPointer { unsafe hs_prefetch($0.baseAddress! + far) }
                                unsafe keys.withUnsafeBufferPointer { unsafe hs_prefetch($0.baseAddress! + far) }
                            }
                            if let ahead = order.peek(4) {
                                unsafe hs_prefetch(rowOfSlot.baseAddress! + Int(spanBuffer[ahead].base))
                            }
                            let bound = lowerBound(b)
                            if bound > initial ?? .infinity {
                                if exhaustive { continue }
                                break
                            }
                            if mayBeCorrupt, let corrupt = blocks[b].corrupt { throw corrupt }
                            wanted.removeAll(keepingCapacity: true)
                            let (base, count) = spans[b]
                            for position in 0..<Int(count) {
                                let slot = base + UInt32(position)
                                if unsafe rowOfSlot[Int(slot)] >= 0 && (!inMemory || matches(slot)) {
                                    wanted.append(position)
                                }
                            }
                            if let sqlFilter, let c, !wanted.isEmpty {
                                let statement = try c.prepareOnce(sqlFilter)
                                try statement.bind(.integer(blocks[b].id), at: 1)
                                try statement.bind(condition?.arguments ?? [], from: 2)
                                var rows = Set<Int64>()
                                while try statement.step() { rows.insert(statement.int64(0)) }
                                wanted = wanted.filter { unsafe rows.contains(rowOfSlot[Int(base) + $0]) }
                            }
                            guard !wanted.isEmpty else { continue }
                            picked += 1
                            if rerank {
                                for position in wanted { candidates.append(base + UInt32(position)) }
                            } else {
                                plan.append((b, bound, wanted))
                            }
                        }
                    }
                }
            }
            if byCode {
                if mayBeCorrupt { for entry in plan { if let corrupt = blocks[entry.block].corrupt { throw corrupt } } }
            } else if sqlFilter == nil {
                try sqliteWork("planning the cold step") { try makePlan(nil) }
            } else if let held {
                try sqliteWork("planning the cold step") { try makePlan(held) }
            } else {
                try withReader { c in try makePlan(c) }
            }
            // The blocks picked by centroid: rank their rows by code too, and open only those holding a row that
            // can still be among the k nearest (the same answers at fewer reads).
            if rerank && !candidates.isEmpty {
                report.rowsReranked = candidates.count
                plan = codePlan(
                    tier, metric: metric, query: q, slots: candidates, keys: keys, k: k, bound: initial,
                    maxProbe: maxProbe, confidence: Self.codeConfidence(effort), memo: memoBox)
            }
            report.planMs = Double(nowNanos() - started) / 1e6
            // Worker w opens plan[w], plan[w + W], …, so each reads near blocks first; each keeps its own k best
            // and its own bound. W: `coldReadThreads` (default 1), one for short plans.
            let workers = plan.count < 8 ? 1 : max(1, min(configuration.coldReadThreads ?? 1, plan.count))
            var partial = [ColdWorkerResult](repeating: ColdWorkerResult(), count: workers)
            let counts = Locked((blocks: 0, candidates: 0, bytes: 0))
            let normalizedQuery = q
            func work(_ w: Int) -> ColdWorkerResult {
                var result = ColdWorkerResult()
                do throws(HybridStoreError) {
                    result.best = try probe(stride(from: w, to: plan.count, by: workers).map { plan[$0] }, w)
                } catch {
                    result.error = error
                }
                return result
            }
            func probe(
                _ share: [(block: Int, bound: Float, wanted: [Int])], _ w: Int
            ) throws(HybridStoreError)
                -> [(row: Int64, distance: Float)]
            {
                var best: [(row: Int64, distance: Float)] = []
                best.reserveCapacity(k + 1)
                func kth() -> Float { min(best.count >= k ? best[k - 1].distance : .infinity, initial ?? .infinity) }
                let reader = ColdBlockReader()
                var decoded: [Float] = []
                var vector = [Float](repeating: 0, count: dim)
                var probed = 0, candidates = 0, bytes = 0
                // A calibration's exact distances from this query's earlier steps (one worker: the box is not
                // shared): a block whose wanted rows all have one is not read again.
                let memoBox = workers == 1 ? memoBox.flatMap { $0.slotCount == rowOfSlot.count ? $0 : nil } : nil
                var memo = memoBox?.takeExact() ?? []
                defer { memoBox?.putExact(memo) }
                func offer(_ row: Int64, _ d: Float) {
                    candidates += 1
                    guard
                        best.count < k || d < best[k - 1].distance
                            || (d == best[k - 1].distance && row < best[k - 1].row)
                    else { return }
                    let at = best.firstIndex { d < $0.distance || (d == $0.distance && row < $0.row) } ?? best.count
                    best.insert((row, d), at: at)
                    if best.count > k { best.removeLast() }
                }
                // One read transaction for the whole share: SQLite's file locks and checks are taken once, not
                // per block (they were ~5 % of a query as syscalls). The first share reads through the caller's
                // connection when it holds one (already in a transaction).
                func inTransaction(_ body: (Connection) throws -> Void) throws(HybridStoreError) {
                    if w == 0, let held { return try sqliteWork("reading the cold tier") { try body(held) } }
                    try withReader { c in try c.transaction(immediate: false) { try body(c) } }
                }
                try inTransaction { c in
                    let blobs = BlobReader(c, table: "hs_cold_blocks", column: "data")
                    defer { blobs.close() }  // before the transaction ends
                    for (b, bound, planned) in share {
                        if bound > kth() {
                            if exhaustive { continue }
                            break
                        }
                        let block = blocks[b]
                        let wanted = planned
                        if !memo.isEmpty, wanted.allSatisfy({ !memo[Int(block.slot($0))].isNaN }) {
                            for position in wanted {
                                let slot = Int(block.slot(position))
                                offer(rowOfSlot[slot], memo[slot])
                            }
                            continue
                        }
                        // Most rows wanted: decompress the whole block and unshuffle it at once (one pass per plane),
                        // not per row; else only the frames holding the wanted rows.
                        let whole = wanted.count * 2 >= block.count
                        // Gone from the database: replaced by a commit whose new blocks this tier does not name yet.
                        guard
                            try loadColdBlock(
                                s, block.id, c, through: blobs, into: reader, positions: whole ? nil : wanted)
                        else { continue }
                        probed += 1
                        bytes += reader.bytesInflated
                        if whole {
                            if decoded.count < reader.rows.count * dim {
                                decoded = [Float](repeating: 0, count: reader.rows.count * dim)
                            }
                            unsafe decoded.withUnsafeMutableBufferPointer {
                                unsafe reader.vectors(into: $0)
                            }
                        }
                        // SAFETY: `decoded` holds rows.count × dim floats when `whole`, `vector` dim floats;
                        // neither array is resized inside the closures.
                        unsafe decoded.withUnsafeMutableBufferPointer { all in
                            unsafe vector.withUnsafeMutableBufferPointer { one in
                                unsafe normalizedQuery.withUnsafeBufferPointer { qb in
                                    for position in wanted {
                                        let row = rowOfSlot[Int(block.slot(position))]
                                        // The block in the database must be the one the tier describes.
                                        guard position < reader.rows.count, reader.rows[position] == row else {
                                            continue
                                        }
                                        let v: UnsafeMutableBufferPointer<Float>
                                        if whole {
                                            unsafe v = unsafe UnsafeMutableBufferPointer(
                                                rebasing: all[position * dim..<(position + 1) * dim])
                                        } else {
                                            unsafe reader.vector(at: position, into: one)
                                            unsafe v = unsafe one
                                        }
                                        // Blocks keep the original vectors.
                                        if metric == .cosine { unsafe normalize(v) }
                                        let d = unsafe reported(kernel(qb.baseAddress!, v.baseAddress!, dim))
                                        if !memo.isEmpty { memo[Int(block.slot(position))] = d }
                                        offer(row, d)
                                    }
                                }
                            }
                        }
                    }
                }
                counts.withLock {
                    $0.blocks += probed
                    $0.candidates += candidates
                    $0.bytes += bytes
                }
                return best
            }
            if workers == 1 {
                partial[0] = work(0)
            } else {
                unsafe partial.withUnsafeMutableBufferPointer { out in
                    // SAFETY: worker w writes only out[w]; everything the workers read is immutable while they
                    // run (the tier under the collection's read lock, the plan, the bounds, the query); each has
                    // its own reader connection, block reader and buffers.
                    let job = unsafe ColdWork(run: work, out: out)
                    DispatchQueue.concurrentPerform(iterations: workers) { @Sendable w in
                        unsafe job.out[w] = unsafe job.run(w)
                    }
                }
            }
            if let error = partial.compactMap(\.error).first { throw error }
            let totals = counts.withLock { $0 }
            report.blocksProbed += totals.blocks
            report.candidates += totals.candidates
            report.bytesDecompressed += totals.bytes
            var best = partial.flatMap(\.best)
            best.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.row < $1.row) }
            best = Array(best.prefix(k))
            // A block that did not decode on open has no rows in memory, so ranking rows by code never meets it.
            // Refuse the answer if such a block could hold a nearer row than the k-th found (its centroid bound;
            // any, for inner product): never an answer that silently skips rows.
            if byCode && tier.corruptBlocks > 0 {
                let kth = min(best.count >= k ? best[k - 1].distance : .infinity, initial ?? .infinity)
                for (b, block) in blocks.enumerated() {
                    guard let corrupt = block.corrupt else { continue }
                    let key = unsafe q.withUnsafeBufferPointer {
                        unsafe tier.key(b, query: $0.baseAddress!, innerProduct: innerProduct)
                    }
                    let gap = max(0, key.squareRoot() - tier.radii[b])
                    let bound: Float =
                        metric == .innerProduct ? -.infinity : metric == .cosine ? gap * gap / 2 : gap * gap
                    if bound <= kth { throw corrupt }
                }
            }
            return best
        }
    }

    /// ε₀ of the codes' error bound at effort 1 (`coldEffort` e makes it 1.3·√e). RaBitQ's 1.9 covers ~94 %
    /// of estimates and 1.3 ~81 % (`SignCodesTests`), but a row is lost only when its estimate errs high by that
    /// much *and* it is among the k nearest: recall ≥ 0.995 in every selective class of both benchmark sets at
    /// 1.3 (1.0000 over 1000 queries at effort 3–6), for ~20 % fewer block reads than 1.9 (measured with 1-bit
    /// codes).
    static let coldCodeConfidence: Float = 1.3
    static func codeConfidence(_ effort: Double) -> Float { coldCodeConfidence * Float(max(effort, 0).squareRoot()) }
}

/// A filter on cold slots the calibration draws (rows matching at random, at a known selectivity), in place of
/// a filter on columns: the cold step runs as it would under a column filter held in memory of that selectivity.
///
/// Drawn once per calibration, it is asked of every slot of every step at every effort: held as a table per slot and
/// the list of live matching slots, not as a hash of the row id per ask (which was an eighth of the steps' time).
struct ColdSlotFilter: Sendable {
    /// Per slot of the tier when drawn: whether it matches.
    private let table: [Bool]
    /// The live slots that matched when drawn, ascending.
    let slots: [UInt32]
    let selectivity: Double

    /// The filter matching the slots whose row `matchesRow`, over the tier's slots as `rowOfSlot` maps them
    /// (−1: free).
    init(rowOfSlot: [Int64], selectivity: Double, matchesRow: (Int64) -> Bool) {
        self.init(rowOfSlot: rowOfSlot, selectivity: selectivity, matchesSlot: { matchesRow(rowOfSlot[$0]) })
    }

    /// The filter matching the live slots `matchesSlot` picks.
    init(rowOfSlot: [Int64], selectivity: Double, matchesSlot: (Int) -> Bool) {
        let table = rowOfSlot.indices.map { rowOfSlot[$0] >= 0 && matchesSlot($0) }
        self.table = table
        slots = table.indices.filter { table[$0] }.map { UInt32($0) }
        self.selectivity = selectivity
    }

    /// Whether `slot` matches (a slot added since the draw does not).
    func matches(_ slot: UInt32) -> Bool { Int(slot) < table.count && table[Int(slot)] }
}
