import CKernels

extension HNSWIndex {
    /// Deletes a label. Searches stop returning it at once; the node keeps serving as a waypoint until the
    /// next `repair()`, which unlinks it and frees its slot for reuse. Inserts run `repair()` by themselves
    /// once pending deletes reach 2 % of the live nodes.
    /// - Throws: `unknownLabel` when the label is not in the index (nothing changes).
    /// - Complexity: O(1).
    public func remove(label: UInt64) throws(HNSWError) {
        let node: UInt32? = bookkeeping.withLock { book in
            guard let node = book.nodeByLabel.removeValue(forKey: label) else { return nil }
            book.deletedPending += 1
            return node
        }
        guard let node else { throw HNSWError(.unknownLabel, "label \(label) is not in the index") }
        withReadLock { storage.setState(node, .deleted) }
    }

    /// Deletes not yet unlinked by `repair()`.
    public var pendingDeletes: Int { bookkeeping.withLock { $0.deletedPending } }

    /// Unlinks every deleted node and reconnects its in-neighbours: a node that linked to a deleted one
    /// chooses again, with the paper's heuristic, among its remaining links and the deleted node's links,
    /// filling up with the nearest pruned ones (keeping the degree, which keeps recall after many deletes).
    /// Freed slots go to the free list. Then reconnects any live node that no path from the entry point
    /// reaches (see `reconnectUnreachable`). Searches go on beside the relinking (they read lists a repair
    /// rewrites as inserts rewrite them, and the deleted nodes stay allocated meanwhile); only freeing the slots
    /// takes the exclusive lock, for O(deleted) work. Inserts wait for the whole repair (`linking`).
    /// - Complexity: O(n · M) to find affected nodes, plus O(M²) distance computations per affected node.
    public func repair() {
        linking.write {
            let deleted = withReadLock { relinkAroundDeleted() }
            withWriteLock { free(deleted) }
            withReadLock { reconnectUnreachableLocked() }
        }
    }

    /// Shrinking a full neighbour list with the heuristic can drop a node's last in-link, leaving it
    /// unreachable (hnswlib has the same gap; with inner product it is common for low-norm vectors). This
    /// finds such nodes by a level-0 walk from the entry point and links each from its nearest reachable
    /// node, replacing that node's farthest neighbour when its list is full; repeated until none is left
    /// (at most a few rounds). Caller holds the read lock and excludes inserts (`linking`), or holds the write lock.
    /// - Complexity: O(n · M) per round plus one search per unreachable node.
    func reconnectUnreachableLocked() {
        guard let (entryNode, topLevel) = loadEntry() else { return }
        let s = storage
        let highWater = bookkeeping.withLock { Int($0.highWater) }
        let context = borrowContext()
        defer { returnContext(context) }
        for _ in 0..<8 {
            var reached = [Bool](repeating: false, count: highWater)
            var inLinks = [UInt16](repeating: 0, count: highWater)
            for n in 0..<highWater where s.state(UInt32(n)) != .free {
                let list = unsafe s.linkList(UInt32(n), level: 0)
                for j in unsafe 1...max(Int(list[0]), 1) where unsafe j <= Int(list[0]) {
                    unsafe inLinks[Int(list[j])] &+= 1
                }
            }
            var stack = [entryNode]
            reached[Int(entryNode)] = true
            while let node = stack.popLast() {
                let list = unsafe s.linkList(node, level: 0)
                for j in unsafe 1...max(Int(list[0]), 1) where unsafe j <= Int(list[0]) && !reached[Int(list[j])] {
                    unsafe reached[Int(list[j])] = true
                    unsafe stack.append(list[j])
                }
            }
            let orphans = (0..<highWater).filter { !reached[$0] && s.state(UInt32($0)).isInGraph }
            if orphans.isEmpty { return }
            for orphan in orphans.map(UInt32.init) {
                var stats = SearchStats()
                let query = unsafe s.vector(orphan)
                let (start, startDistance) = unsafe greedyDescent(
                    floatDistance(query), from: entryNode, topLevel: topLevel, toLevel: 1,
                    stats: &stats)
                unsafe searchLayer(
                    floatDistance(query), entry: start, entryDistance: startDistance, ef: 32, level: 0,
                    context: context,
                    predicate: NotNode(excluded: orphan), stats: &stats, admitPending: true)
                var hosts: [Neighbor] = []
                while !context.results.isEmpty { hosts.append(context.results.pop()) }
                hosts.reverse()  // nearest first
                // An orphan linked earlier in this round may link to this one: then it is reachable already.
                func links(_ host: UInt32) -> Bool {
                    let list = unsafe s.linkList(host, level: 0)
                    for j in unsafe 1...max(Int(list[0]), 1) where unsafe j <= Int(list[0]) && list[j] == orphan {
                        return true
                    }
                    return false
                }
                if hosts.contains(where: { links($0.node) }) { continue }
                // Prefer the nearest host with room; else, in the nearest host, replace the neighbour that has
                // the most other in-links (it stays reachable through them).
                if let roomy = hosts.first(where: { unsafe Int(s.linkList($0.node, level: 0)[0]) < s.maxLinks0 }) {
                    let list = unsafe s.linkList(roomy.node, level: 0)
                    let n = unsafe Int(list[0])
                    unsafe hs_store_release_u32(list + 1 + n, orphan)
                    unsafe hs_store_release_u32(list, UInt32(n + 1))
                    inLinks[Int(orphan)] &+= 1
                } else if let host = hosts.first {
                    let list = unsafe s.linkList(host.node, level: 0)
                    var victim = 1
                    for j in unsafe 1...Int(list[0]) where unsafe inLinks[Int(list[j])] > inLinks[Int(list[victim])] {
                        victim = j
                    }
                    unsafe inLinks[Int(list[victim])] &-= 1
                    unsafe hs_store_release_u32(list + victim, orphan)
                    inLinks[Int(orphan)] &+= 1
                }
            }
        }
    }

    /// Runs `repair()` when pending deletes reach 2 % of the live nodes (called before allocating slots).
    func repairIfWorthIt() {
        let due = bookkeeping.withLock { $0.deletedPending > 0 && $0.deletedPending * 50 >= $0.nodeByLabel.count }
        if due { repair() }
    }

    /// Rewrites every list that links to a deleted node, and returns those nodes (still allocated: a search may
    /// hold them). Caller holds the read lock and excludes inserts.
    private func relinkAroundDeleted() -> [UInt32] {
        let highWater = bookkeeping.withLock { Int($0.highWater) }
        let s = storage
        var deleted: [UInt32] = []
        for n in 0..<highWater where s.state(UInt32(n)) == .deleted { deleted.append(UInt32(n)) }
        guard !deleted.isEmpty else { return [] }
        let dim = parameters.dimensions
        var pool: [UInt32] = []
        var candidates: [Neighbor] = []
        for p in 0..<highWater {
            let node = UInt32(p)
            guard s.state(node).isInGraph else { continue }
            for level in 0...s.level(node) {
                let list = unsafe s.linkList(node, level: level)
                let n = unsafe Int(list[0])
                var touched = false
                for j in 1...max(n, 1) where unsafe j <= n && s.state(list[j]) == .deleted {
                    touched = true
                    break
                }
                guard touched else { continue }
                pool.removeAll(keepingCapacity: true)
                for j in 1...n {
                    let other = unsafe list[j]
                    if s.state(other).isInGraph {
                        pool.append(other)
                    } else if s.level(other) >= level {
                        let second = unsafe s.linkList(other, level: level)
                        for i in unsafe 1...max(Int(second[0]), 1) where unsafe i <= Int(second[0]) {
                            let next = unsafe second[i]
                            if next != node && s.state(next).isInGraph { pool.append(next) }
                        }
                    }
                }
                candidates.removeAll(keepingCapacity: true)
                let origin = unsafe s.vector(node)
                for other in Set(pool) {
                    unsafe candidates.append(Neighbor(distance: kernel(origin, s.vector(other), dim), node: other))
                }
                candidates.sort { ($0.distance, $0.node) < ($1.distance, $1.node) }
                let kept = selectNeighbours(candidates, max: s.maxLinks(level: level), keepPruned: true)
                unsafe kept.map(\.node).withUnsafeBufferPointer { unsafe s.writeLinks(node, level: level, $0) }
            }
        }
        return deleted
    }

    /// Frees the slots of relinked deleted nodes (no list links to them any more) and moves the entry point off
    /// them. Caller holds the write lock: no search holds one of them.
    private func free(_ deleted: [UInt32]) {
        let s = storage
        let highWater = bookkeeping.withLock { Int($0.highWater) }
        guard !deleted.isEmpty else {
            bookkeeping.withLock { $0.deletedPending = 0 }
            return
        }
        for node in deleted {
            s.resetSlot(node, level: 0)
            s.setState(node, .free)
        }
        if let (entryNode, _) = loadEntry(), !s.state(entryNode).isInGraph {
            var best: (node: UInt32, level: Int)? = nil
            for p in 0..<highWater where s.state(UInt32(p)).isInGraph {
                if best == nil || s.level(UInt32(p)) > best!.level { best = (UInt32(p), s.level(UInt32(p))) }
            }
            if let best { storeEntry(node: best.node, level: best.level) } else { clearEntry() }
        }
        bookkeeping.withLock { book in
            book.freeSlots.append(contentsOf: deleted.reversed())
            // Nodes removed while the relinking ran stay pending for the next repair.
            book.deletedPending = max(0, book.deletedPending - deleted.count)
        }
    }
}
