import HNSW
import QueryPlanner

// The rows a filter matches, collected through the runs and postings where the filter allows.

extension FilterColumns {
    /// The matching live nodes, collected through the runs and postings when the filter allows (an
    /// indexed leaf, an AND with one, an OR of them), else by evaluating the predicate on every node.
    /// No duplicates; in node order, except a few candidates from one leaf, which come in the leaf's order
    /// (callers scan or count them: order does not matter, and sorting was a tenth of a tiny query's time).
    func collect(_ filter: Filter, predicate: (UInt32) -> Bool) -> [UInt32] {
        let alive = self.alive
        if let (candidates, distinct) = indexed(filter) {
            var found = candidates
            // Few distinct candidates (one posting list, or one run slice without tail entries): no sort needed.
            if distinct && found.count * 256 < nodeCount {
                var out: [UInt32] = []
                out.reserveCapacity(found.count)
                for node in found where Int(node) < nodeCount && alive[Int(node)] && predicate(node) {
                    out.append(node)
                }
                return out
            }
            // Few candidates: sort them. Many: mark a bitmap and read it back in node order, O(matches + nodes / 64).
            if found.count * 256 < nodeCount {
                found.sort()
                var out: [UInt32] = []
                out.reserveCapacity(found.count)
                for node in found where node != out.last && Int(node) < nodeCount && alive[Int(node)] && predicate(node)
                {
                    out.append(node)
                }
                return out
            }
            var words = [UInt64](repeating: 0, count: (nodeCount + 63) / 64)
            for node in found where Int(node) < nodeCount { words[Int(node) >> 6] |= 1 << (UInt64(node) & 63) }
            var out: [UInt32] = []
            out.reserveCapacity(found.count)
            for (w, word) in words.enumerated() where word != 0 {
                var bits = word
                while bits != 0 {
                    let node = UInt32(w << 6 | bits.trailingZeroBitCount)
                    bits &= bits - 1
                    if alive[Int(node)] && predicate(node) { out.append(node) }
                }
            }
            return out
        }
        var out: [UInt32] = []
        for node in 0..<UInt32(nodeCount) where alive[Int(node)] && predicate(node) { out.append(node) }
        return out
    }

    /// Candidate nodes (a superset of the matches, possibly unsorted) from indexes, or nil; and whether they
    /// are known distinct (a posting list, or a run slice without tail entries: a run names a node once per
    /// key, and only the entry with its current key passes the predicate).
    func indexed(_ f: Filter) -> (nodes: [UInt32], distinct: Bool)? {
        switch f {
        case .and(let children):
            let best = children.compactMap { c -> (Int, Filter)? in
                guard let n = rangeCount(c) ?? (c.isIndexableDisjunction ? Int(estimate(c)) : nil) else { return nil }
                return (n, c)
            }.min { $0.0 < $1.0 }
            return best.flatMap { indexed($0.1) }
        case .or(let children):
            var all: [UInt32] = []
            for c in children {
                guard let part = indexed(c) else { return nil }
                all += part.nodes
            }
            return (all, false)
        case .isIn(let name, let values):
            var all: [UInt32] = []
            for v in values where v != .null {
                guard let part = indexed(.compare(column: name, .equal, v)) else { return nil }
                all += part.nodes
            }
            return (all, false)
        default:
            break
        }
        switch leafEntries(f) {
        case .run(let c, let range, let tail)?: return (Array(c.nodes[range]) + tail, tail.isEmpty)
        case .posting(let nodes)?: return (nodes, true)
        case nil: return nil
        }
    }
}

extension Filter {
    /// An OR or IN whose every part is an indexed leaf (collectable through runs and postings).
    var isIndexableDisjunction: Bool {
        switch self {
        case .or(let children):
            return children.allSatisfy { FilterColumns.leafRange($0) != nil || $0.isIndexableDisjunction }
        case .isIn(_, let values): return !values.isEmpty
        default: return false
        }
    }
}

func lowerIndex(_ keys: [Double], _ x: Double, inclusive: Bool) -> Int {
    var lo = 0, hi = keys.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if inclusive ? keys[mid] < x : keys[mid] <= x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

func upperIndex(_ keys: [Double], _ x: Double, inclusive: Bool) -> Int {
    var lo = 0, hi = keys.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if inclusive ? keys[mid] <= x : keys[mid] < x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

func inRange(_ k: Double, _ lo: Double, _ loInclusive: Bool, _ hi: Double, _ hiInclusive: Bool) -> Bool {
    (loInclusive ? k >= lo : k > lo) && (hiInclusive ? k <= hi : k < hi)
}
