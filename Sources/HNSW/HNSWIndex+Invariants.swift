extension HNSWIndex {
    /// Checks the graph's structural invariants and returns every violation found (empty when sound):
    /// 1. each link list holds at most its level's maximum (2M at level 0, M above);
    /// 2. no node links to itself, and no list holds a node twice;
    /// 3. no live or deleted node links to a free slot, and every link target exists at that level;
    /// 4. the entry point is live (or deleted, pending repair) and sits on the top level;
    /// 5. every live node is reachable from the entry point at level 0;
    /// 6. the label dictionary and the node states agree.
    /// Takes the exclusive lock. - Complexity: O(n · M).
    package func checkInvariants() -> [String] {
        withWriteLock {
            var problems: [String] = []
            let s = storage
            let book = bookkeeping.withLock { $0 }
            let highWater = Int(book.highWater)
            var topLevel = -1
            var liveCount = 0
            for n in 0..<highWater {
                let node = UInt32(n)
                let state = s.state(node)
                guard state != .free else { continue }
                if state == .live { liveCount += 1 }
                topLevel = max(topLevel, s.level(node))
                for level in 0...s.level(node) {
                    let list = unsafe s.linkList(node, level: level)
                    let count = unsafe Int(list[0])
                    if count > s.maxLinks(level: level) {
                        problems.append("node \(n) level \(level): \(count) links > \(s.maxLinks(level: level))")
                    }
                    var seen = Set<UInt32>()
                    for j in 1...max(count, 1) where j <= count {
                        let other = unsafe list[j]
                        if other == node { problems.append("node \(n) level \(level): self link") }
                        if !seen.insert(other).inserted { problems.append("node \(n) level \(level): \(other) twice") }
                        if Int(other) >= highWater || s.state(other) == .free {
                            problems.append("node \(n) level \(level): link to free slot \(other)")
                        } else if s.level(other) < level {
                            problems.append(
                                "node \(n) level \(level): link to \(other) of level \(s.level(other))")
                        }
                    }
                }
                if state == .live && book.nodeByLabel[s.label(node)] != node {
                    problems.append("node \(n): label \(s.label(node)) not mapped to it")
                }
            }
            if book.nodeByLabel.count != liveCount {
                problems.append("label map has \(book.nodeByLabel.count) entries for \(liveCount) live nodes")
            }
            guard let (entryNode, entryLevel) = loadEntry() else {
                if liveCount > 0 { problems.append("no entry point but \(liveCount) live nodes") }
                return problems
            }
            if s.state(entryNode) == .free { problems.append("entry point \(entryNode) is a free slot") }
            if entryLevel != topLevel || s.level(entryNode) != entryLevel {
                problems.append("entry point \(entryNode) at level \(entryLevel), top level is \(topLevel)")
            }
            var reached = [Bool](repeating: false, count: highWater)
            var stack = [entryNode]
            reached[Int(entryNode)] = true
            while let node = stack.popLast() {
                let list = unsafe s.linkList(node, level: 0)
                for j in unsafe 1...max(Int(list[0]), 1) where unsafe j <= Int(list[0]) {
                    let other = unsafe list[j]
                    if Int(other) < highWater && !reached[Int(other)] {
                        reached[Int(other)] = true
                        stack.append(other)
                    }
                }
            }
            let unreachable = (0..<highWater).filter { s.state(UInt32($0)).isInGraph && !reached[$0] }
            if !unreachable.isEmpty {
                problems.append(
                    "\(unreachable.count) live nodes unreachable from the entry point, e.g. \(unreachable.prefix(5))")
            }
            return problems
        }
    }
}
