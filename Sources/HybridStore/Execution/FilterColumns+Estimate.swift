import HNSW
import QueryPlanner

// How many rows a filter matches, estimated from the runs and postings (and, under a scope such as a tenant,
// from a sample of the scope's rows alone).

extension FilterColumns {
    // MARK: Queries (readers, under the collection's read lock)

    /// Whether every column the filter reads is held here.
    func covers(_ filter: Filter) -> Bool { filter.columns.allSatisfy { columns[$0] != nil } }

    /// Estimated matching rows: exact counts per column from the runs and postings (stale entries
    /// included), combined under independence.
    func estimate(_ filter: Filter) -> Double {
        let n = Double(max(live, 1))
        func selectivity(_ f: Filter) -> Double {
            switch f {
            case .and(let children): return children.map(selectivity).reduce(1, *)
            case .or(let children): return 1 - children.map { 1 - selectivity($0) }.reduce(1, *)
            case .not(let inner): return max(0, 1 - selectivity(inner) - nullFraction(inner.columns.first))
            case .isNull(let name): return nullFraction(name)
            case .isNotNull(let name): return 1 - nullFraction(name)
            default: return min(1, Double(rangeCount(f) ?? live / 2) / n)
            }
        }
        func nullFraction(_ name: String?) -> Double {
            guard let name, let column = columns[name] else { return 0 }
            switch column.storage {
            case .numeric(let c): return Double(c.nulls) / n
            case .text(let c): return Double(c.nulls) / n
            }
        }
        return selectivity(filter) * Double(live)
    }

    /// Count of entries a leaf comparison matches (stale included), or nil when the leaf is not indexed.
    func rangeCount(_ f: Filter) -> Int? {
        switch f {
        case .compare(let name, .notEqual, let v):
            return rangeCount(.compare(column: name, .equal, v)).map { max(0, live - $0) }
        case .isIn(let name, let values):
            var total = 0
            for v in values { total += rangeCount(.compare(column: name, .equal, v)) ?? 0 }
            return total
        default:
            break
        }
        if case let (name, .text(value))? = Self.leafRange(f), case .text(let c)? = columns[name]?.storage {
            return c.code(of: value).map { Int(c.counts[Int($0)]) } ?? 0  // exact, without walking the list
        }
        switch leafEntries(f) {
        case .run(_, let range, let tail)?: return range.count + tail.count
        case .posting(let nodes)?: return nodes.count
        case nil: return nil
        }
    }

    /// What a comparison leaf selects: a slice of a numeric column's sorted run plus matching tail entries,
    /// or a text value's posting list. Stale entries included (callers validate).
    enum LeafEntries {
        case run(Numeric, Range<Int>, [UInt32])
        case posting([UInt32])
    }

    func leafEntries(_ f: Filter) -> LeafEntries? {
        guard let (name, range) = Self.leafRange(f), let column = columns[name] else { return nil }
        switch (column.storage, range) {
        case (.numeric(let c), .numeric(let lo, let loInclusive, let hi, let hiInclusive)):
            let a = lowerIndex(c.keys, lo, inclusive: loInclusive), b = upperIndex(c.keys, hi, inclusive: hiInclusive)
            return .run(
                c, a..<max(a, b), c.tail.filter { inRange($0.key, lo, loInclusive, hi, hiInclusive) }.map(\.node))
        case (.text(let c), .text(let value)):
            return .posting(c.code(of: value).map { c.nodes($0) } ?? [])
        default:
            return nil
        }
    }

    enum LeafRange {
        case numeric(Double, Bool, Double, Bool)
        case text(String)
    }

    /// A comparison leaf as a key range (numbers) or an exact text key.
    static func leafRange(_ f: Filter) -> (String, LeafRange)? {
        switch f {
        case .compare(let name, let op, let v):
            if case .text(let s) = v { return op == .equal ? (name, .text(s)) : nil }
            guard let x = v.number else { return nil }
            switch op {
            case .equal: return (name, .numeric(x, true, x, true))
            case .less: return (name, .numeric(-.infinity, true, x, false))
            case .lessOrEqual: return (name, .numeric(-.infinity, true, x, true))
            case .greater: return (name, .numeric(x, false, .infinity, true))
            case .greaterOrEqual: return (name, .numeric(x, true, .infinity, true))
            case .notEqual: return nil
            }
        case .between(let name, let low, let high):
            guard let a = low.number, let b = high.number else { return nil }
            return (name, .numeric(a, true, b, true))
        default:
            return nil
        }
    }

    /// equality such as a tenant's: exact when it holds at most `sample` rows, else extrapolated from an even
    /// sample of them. `filter` is evaluated on rows of the scope alone, so the estimate says nothing of rows
    /// outside it (a tenant learns nothing of other tenants' values from it). nil when `scope` is not indexed.
    /// - Returns: the estimated matches, and the rows of `scope`.
    /// A large scope is not walked (its rows are a linked list, a cache miss each): an even stride over all
    /// nodes picks about 128 of its rows or more, and only rows in scope have `filter` evaluated.
    /// - Complexity: O(min(rows of scope, max(sample, 128 × all rows ÷ rows of scope))) predicate calls.
    func estimate(_ filter: Filter, within scope: Filter, sample: Int = 1024) -> (matches: Double, rows: Int)? {
        if let scopeRows = rangeCount(scope), scopeRows > 0, nodeCount > 0 {
            let draws = min(nodeCount, max(sample, 128 * (nodeCount / scopeRows + 1)))
            if draws < scopeRows, let stride = estimateByStride(filter, within: scope, draws: draws),
                stride.inScope >= 64
            {
                return (Double(scopeRows) * Double(stride.matched) / Double(stride.inScope), scopeRows)
            }
        }
        guard let (candidates, _) = indexed(scope) else { return nil }
        guard !candidates.isEmpty else { return (0, 0) }
        let predicate = self.predicate(filter)
        let step = max(1, candidates.count / sample)
        var sampled = 0, live = 0, matched = 0
        var i = 0
        while i < candidates.count {
            let node = candidates[i]
            sampled += 1
            if Int(node) < nodeCount && alive[Int(node)] {
                live += 1
                if predicate(node) { matched += 1 }
            }
            i += step
        }
        let rows = Int((Double(candidates.count) * Double(live) / Double(max(sampled, 1))).rounded())
        return (live == 0 ? 0 : Double(rows) * Double(matched) / Double(live), rows)
    }

    /// Of `draws` nodes evenly spaced over all nodes: the live ones in `scope`, and those of them matching `filter`.
    private func estimateByStride(_ filter: Filter, within scope: Filter, draws: Int) -> (inScope: Int, matched: Int)? {
        guard covers(scope), covers(filter) else { return nil }
        let inScope = predicate(scope), matches = predicate(filter)
        let step = Double(nodeCount) / Double(max(draws, 1))
        var hits = 0, matched = 0
        var x = step / 2
        while Int(x) < nodeCount {
            let node = Int(x)
            if alive[node] && inScope(UInt32(node)) {
                hits += 1
                if matches(UInt32(node)) { matched += 1 }
            }
            x += step
        }
        return (hits, matched)
    }
}
