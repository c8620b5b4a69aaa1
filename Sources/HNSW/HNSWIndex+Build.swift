import CKernels
import Dispatch
import Foundation

extension HNSWIndex {
    /// Inserts one vector under a new label and links it into the graph.
    ///
    /// Reuses the slot of a repaired delete when one is free. Safe to call from many threads at once.
    /// - Returns: the internal node id given to the vector.
    /// - Throws: `dimensionMismatch`, `nonFiniteVector`, `duplicateLabel`; the index is unchanged then.
    /// - Complexity: about O(efConstruction · M · log n) distance computations.
    @discardableResult
    public func insert(_ vector: [Float], label: UInt64) throws(HNSWError) -> UInt32 {
        // The buffer is lent for the call only (no pointer outlives the closure).
        unsafe try vector.withUnsafeBufferPointer { (buffer) throws(HNSWError) -> UInt32 in
            unsafe try validate(buffer, label: label)
            let slots = try allocate(labels: CollectionOfOne(label), register: true)
            unsafe place(buffer.baseAddress!, label: label, slot: slots[0], state: .live)
            linking.read { withReadLock { link(slots[0].node) } }
            return slots[0].node
        }
    }

    /// Inserts many vectors, linking them on `threads` threads (default: all cores).
    ///
    /// `vectors` holds `labels.count × dimensions` floats, row-major. Node ids are handed out in row order
    /// before linking starts, and each node's level depends only on the seed and its insertion sequence,
    /// so with `threads == 1` the graph is identical for the same seed and input. A batch of at least 1024
    /// vectors and a quarter of the index ends by linking any node the shrinking left without a path from
    /// the entry point (see `repair()`).
    /// - Returns: the node ids, in row order.
    /// - Throws: `dimensionMismatch` (wrong total length), `nonFiniteVector`, `duplicateLabel` (also within
    ///   the batch); nothing is inserted then.
    public func insert(
        contentsOf vectors: UnsafeBufferPointer<Float>, labels: [UInt64], threads: Int? = nil
    )
        throws(HNSWError) -> [UInt32]
    {
        unsafe try insert(contentsOf: vectors, labels: labels, threads: threads, finiteOnly: false)
    }

    /// As `insert(contentsOf:labels:threads:)`; with `finiteOnly`, vectors are checked for NaN and infinities
    /// but not for their norm: for rebuilding from rows already committed, some before the norm check existed,
    /// which must still load rather than leave their store unopenable. With `pending`, the nodes are linked but
    /// stay pending (`NodeState.pending`: traversed, never returned, their labels not yet registered, so a label
    /// still held by a live node may be given) until `activate`.
    package func insert(
        contentsOf vectors: UnsafeBufferPointer<Float>, labels: [UInt64], threads: Int?,
        finiteOnly: Bool, pending: Bool = false
    ) throws(HNSWError) -> [UInt32] {
        let dim = parameters.dimensions
        guard vectors.count == labels.count * dim else {
            throw HNSWError(
                .dimensionMismatch,
                "expected \(labels.count) × \(dim) = \(labels.count * dim) floats, got \(vectors.count)")
        }
        for row in 0..<labels.count {
            let vector = unsafe UnsafeBufferPointer(rebasing: vectors[row * dim..<(row + 1) * dim])
            if finiteOnly {
                if let bad = unsafe vector.firstIndex(where: { !$0.isFinite }) {
                    throw HNSWError(
                        .nonFiniteVector, unsafe "component \(bad) is \(vector[bad]) (label \(labels[row]))")
                }
            } else {
                unsafe try validate(vector, label: labels[row])
            }
        }
        let slots = try allocate(labels: labels, register: !pending)
        for (row, slot) in slots.enumerated() {
            unsafe place(
                vectors.baseAddress! + row * dim, label: labels[row], slot: slot, state: pending ? .pending : .live)
        }
        let workers = max(1, min(threads ?? ProcessInfo.processInfo.activeProcessorCount, slots.count))
        linking.read {  // the workers link under this thread's hold
            if workers == 1 {
                withReadLock { for slot in slots { link(slot.node) } }
            } else {
                let next = Atomic<Int>(0)
                DispatchQueue.concurrentPerform(iterations: workers) { _ in
                    withReadLock {
                        while true {
                            let i = next.add(1, ordering: .relaxed).oldValue
                            if i >= slots.count { break }
                            link(slots[i].node)
                        }
                    }
                }
            }
        }
        // A walk over the whole graph: worth it for batches that are large next to the index.
        if slots.count >= 1024 && slots.count * 4 >= count { withWriteLock { reconnectUnreachableLocked() } }
        return slots.map(\.node)
    }

    /// As `insert(contentsOf:labels:threads:)` from an array.
    public func insert(
        contentsOf vectors: [Float], labels: [UInt64], threads: Int? = nil
    ) throws(HNSWError)
        -> [UInt32]
    {
        unsafe try vectors.withUnsafeBufferPointer { (buffer) throws(HNSWError) -> [UInt32] in
            unsafe try insert(contentsOf: buffer, labels: labels, threads: threads, finiteOnly: false)
        }
    }

    /// `insert(contentsOf:labels:threads:finiteOnly:pending:)` from an array.
    package func insert(
        committed vectors: [Float], labels: [UInt64], threads: Int?, pending: Bool = false
    ) throws(HNSWError) -> [UInt32] {
        unsafe try vectors.withUnsafeBufferPointer { (buffer) throws(HNSWError) -> [UInt32] in
            unsafe try insert(contentsOf: buffer, labels: labels, threads: threads, finiteOnly: true, pending: pending)
        }
    }

    /// Inserts vectors as pending nodes (checked as `insert(contentsOf:labels:threads:)` checks them), linked into
    /// the graph but neither returned nor known by their labels until `activate`.
    package func insertPending(_ vectors: [Float], labels: [UInt64], threads: Int?) throws(HNSWError) -> [UInt32] {
        unsafe try vectors.withUnsafeBufferPointer { (buffer) throws(HNSWError) -> [UInt32] in
            unsafe try insert(contentsOf: buffer, labels: labels, threads: threads, finiteOnly: false, pending: true)
        }
    }

    /// Makes pending nodes (from `insert(…, pending: true)`) live under their labels, all or none. O(nodes).
    /// - Throws: `duplicateLabel` when a label is held by a live node (remove it first) or given twice;
    ///   `invalidParameter` for a node that is not pending. Nothing changes then.
    package func activate(_ nodes: [UInt32]) throws(HNSWError) {
        let labels: [UInt64] = try withReadLock { () throws(HNSWError) -> [UInt64] in
            for node in nodes where Int(node) >= storage.capacity || storage.state(node) != .pending {
                throw HNSWError(.invalidParameter, "node \(node) is not pending")
            }
            return nodes.map { storage.label($0) }
        }
        let refused: HNSWError? = bookkeeping.withLock { book in
            var seen = Set<UInt64>()
            for label in labels where book.nodeByLabel[label] != nil || !seen.insert(label).inserted {
                return HNSWError(.duplicateLabel, "label \(label) is already in the index")
            }
            for (node, label) in zip(nodes, labels) { book.nodeByLabel[label] = node }
            return nil
        }
        if let refused { throw refused }
        withReadLock { for node in nodes { storage.setState(node, .live) } }
    }

    struct Slot {
        var node: UInt32
        var level: Int
    }

    /// Reserves slots, and with `register` their labels, growing the storage when needed. All or nothing.
    func allocate<C: Collection<UInt64>>(labels: C, register: Bool) throws(HNSWError) -> [Slot] {
        repairIfWorthIt()
        let result: Result<[Slot], HNSWError> = bookkeeping.withLock { book in
            var seen = Set<UInt64>()
            for label in labels {
                if (register && book.nodeByLabel[label] != nil) || !seen.insert(label).inserted {
                    return .failure(HNSWError(.duplicateLabel, "label \(label) is already in the index"))
                }
            }
            var slots: [Slot] = []
            slots.reserveCapacity(labels.count)
            for label in labels {
                let node: UInt32
                if let reused = book.freeSlots.popLast() {
                    node = reused
                } else {
                    node = book.highWater
                    book.highWater += 1
                }
                if register { book.nodeByLabel[label] = node }
                slots.append(Slot(node: node, level: randomLevel(sequence: book.sequence)))
                book.sequence &+= 1
            }
            return .success(slots)
        }
        let slots = try result.get()
        let needed = Int(slots.map(\.node).max() ?? 0) + 1
        // Read under the lock: another inserter may be growing the storage (a plain read raced with `grow`).
        if needed > withReadLock({ storage.capacity }) {
            withWriteLock {
                if needed > storage.capacity { storage.grow(to: max(needed, storage.capacity * 2)) }
            }
        }
        return slots
    }

    /// Level of the n-th inserted node: ⌊-ln(U) · mL⌋ with U from SplitMix64(seed, n), capped at 31.
    func randomLevel(sequence: UInt64) -> Int {
        let z = SplitMix64.mix(parameters.seed &+ (sequence &+ 1) &* SplitMix64.increment)
        let u = (Double(z >> 11) + 0.5) / Double(1 << 53)
        return min(Int(-log(u) * levelMultiplier), 31)
    }

    /// Writes the vector and metadata of a fresh slot, in `state` (live or pending). The node is not reachable
    /// until `link`.
    func place(_ vector: UnsafePointer<Float>, label: UInt64, slot: Slot, state: NodeState) {
        withReadLock {
            let target = unsafe storage.vector(slot.node)
            unsafe target.update(from: vector, count: parameters.dimensions)
            if parameters.metric == .cosine {
                unsafe normalize(UnsafeMutableBufferPointer(start: target, count: parameters.dimensions))
            }
            storage.encode(slot.node)
            storage.lock(slot.node)
            storage.resetSlot(slot.node, level: slot.level)
            storage.setLabel(slot.node, label)
            storage.unlock(slot.node)
            storage.setState(slot.node, state)
        }
    }

    /// Links a placed node into every level up to its own (hnswlib's addPoint). Caller holds the read lock.
    func link(_ node: UInt32) {
        let level = storage.level(node)
        let query = unsafe storage.vector(node)
        let dim = parameters.dimensions
        guard let (entryNode, topLevel) = loadEntry() else {
            let becameEntry = entryUpdate.withLock { _ -> Bool in
                if loadEntry() == nil {
                    storeEntry(node: node, level: level)
                    return true
                }
                return false
            }
            if becameEntry { return }
            return link(node)
        }
        var stats = SearchStats()
        var current = entryNode
        var currentDistance = unsafe kernel(query, storage.vector(entryNode), dim)
        if topLevel > level {
            (current, currentDistance) = unsafe greedyDescent(
                floatDistance(query), from: entryNode, topLevel: topLevel, toLevel: level + 1,
                stats: &stats)
        }
        let context = borrowContext()
        defer { returnContext(context) }
        // The node's own lists are all written before any other node links to it: a search that reached it on an
        // upper level while its level-0 list was still empty would end there, with nothing found (seen as an
        // unfiltered query returning only rows it took from elsewhere, under a writer). One thread builds the same
        // graph either way: a layer's search reads only that layer's lists.
        var reverse: [(layer: Int, chosen: [Neighbor])] = []
        for layer in stride(from: min(level, topLevel), through: 0, by: -1) {
            unsafe searchLayer(
                floatDistance(query), entry: current, entryDistance: currentDistance,
                ef: parameters.constructionEffort,
                level: layer, context: context, predicate: NotNode(excluded: node), stats: &stats, admitPending: true)
            var found = context.scratch
            found.removeAll(keepingCapacity: true)
            while !context.results.isEmpty { found.append(context.results.pop()) }
            found.reverse()  // nearest first
            if let nearest = found.first {
                current = nearest.node
                currentDistance = nearest.distance
            }
            let chosen = selectNeighbours(found, max: parameters.connectivity)
            context.scratch = found
            storage.lock(node)
            unsafe chosen.map(\.node).withUnsafeBufferPointer { unsafe storage.writeLinks(node, level: layer, $0) }
            storage.unlock(node)
            reverse.append((layer, chosen))
        }
        for (layer, chosen) in reverse {
            for neighbour in chosen {
                addLink(from: neighbour.node, to: node, distance: neighbour.distance, level: layer)
            }
        }
        if level > topLevel {
            entryUpdate.withLock { _ in
                if let (_, currentTop) = loadEntry(), level > currentTop { storeEntry(node: node, level: level) }
            }
        }
    }

    /// Adds `target` to `source`'s list at `level`, shrinking it with the heuristic when full.
    func addLink(from source: UInt32, to target: UInt32, distance: Float, level: Int) {
        let dim = parameters.dimensions
        let limit = storage.maxLinks(level: level)
        storage.lock(source)
        defer { storage.unlock(source) }
        guard storage.state(source) != .free else { return }
        let list = unsafe storage.linkList(source, level: level)
        let n = unsafe Int(list[0])
        for j in 0..<n where unsafe list[1 + j] == target { return }
        if n < limit {
            unsafe hs_store_release_u32(list + 1 + n, target)
            unsafe hs_store_release_u32(list, UInt32(n + 1))
            return
        }
        var candidates: [Neighbor] = [Neighbor(distance: distance, node: target)]
        candidates.reserveCapacity(n + 1)
        let origin = unsafe storage.vector(source)
        for j in 0..<n {
            let other = unsafe list[1 + j]
            unsafe candidates.append(Neighbor(distance: kernel(origin, storage.vector(other), dim), node: other))
        }
        candidates.sort { $0.distance < $1.distance }
        let kept = selectNeighbours(candidates, max: limit)
        unsafe kept.map(\.node).withUnsafeBufferPointer { unsafe storage.writeLinks(source, level: level, $0) }
    }

    /// The paper's heuristic (Algorithm 4, without extension): walk candidates nearest first and keep one only
    /// if it is nearer to the base than to every neighbour kept so far. With `keepPruned` (the paper's
    /// keepPrunedConnections) the list is then filled up to `limit` with the nearest discarded candidates.
    /// - Precondition: `candidates` sorted by distance to the base, nearest first.
    /// - Complexity: O(candidates × max) distance computations.
    func selectNeighbours(_ candidates: [Neighbor], max limit: Int, keepPruned: Bool = false) -> [Neighbor] {
        if candidates.count <= limit { return candidates }
        let dim = parameters.dimensions
        var kept: [Neighbor] = []
        kept.reserveCapacity(limit)
        for candidate in candidates {
            let v = unsafe storage.vector(candidate.node)
            var good = true
            for other in kept where unsafe kernel(v, storage.vector(other.node), dim) < candidate.distance {
                good = false
                break
            }
            if good {
                kept.append(candidate)
                if kept.count >= limit { break }
            }
        }
        if keepPruned && kept.count < limit {
            let chosen = Set(kept.map(\.node))
            for candidate in candidates where !chosen.contains(candidate.node) {
                kept.append(candidate)
                if kept.count >= limit { break }
            }
        }
        return kept
    }
}

/// Every node but one: a node being linked must not pick itself as a neighbour.
struct NotNode: NodePredicate {
    let excluded: UInt32
    @inline(__always) func matches(_ node: UInt32) -> Bool { node != excluded }
}

import Synchronization

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny seeded generator, and its mixing function for stateless
/// hashing. Used for node levels; tests and the demo use it for reproducible data.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    package static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15
    package var state: UInt64

    package init(seed: UInt64) { state = seed }

    package static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    package mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.mix(state)
    }
}
