import HNSW
import QueryPlanner

/// The filterable columns of a collection, in memory, indexed by node id, with the structures the planner
/// estimates and collects matches from:
/// - numeric and boolean columns: values as `Double` (NaN = NULL) and a sorted run of (value, node) plus a
///   small unsorted tail, merged when the tail grows (an LSM in miniature);
/// - text columns: dictionary codes (-1 = NULL) and, per code, a doubly linked list of its nodes threaded
///   through per-node arrays, with its count. No allocation per distinct value, so a column with a million
///   values (a tenant column) costs a few tens of bytes per value; updates are O(1) and exact.
/// Entries are never removed eagerly: a run or posting entry is valid only while the node still holds that
/// value, so deletes and updates are O(1) and stale entries vanish at the next merge.
///
/// Derived state (DESIGN.md principle 1): rebuilt from SQLite on open. Guarded by the collection's lock.
// SAFETY(@unchecked Sendable on Numeric/Text): mutated only under the collection's write lock; predicate
// closures that capture them run only under its read lock.
final class FilterColumns {
    final class Numeric: @unchecked Sendable {
        var values: [Double] = []
        var keys: [Double] = []
        var nodes: [UInt32] = []
        var tail: [(key: Double, node: UInt32)] = []
        var nulls = 0
        var reused = false
    }

    final class Text: @unchecked Sendable {
        /// Per node: its value's code, -1 for NULL.
        var codes: [Int32] = []
        /// Per code: the value, and the string → code table.
        var strings: [String] = []
        var interned = StringTable()
        /// Per code: the first node of its list (`none` when empty) and how many nodes hold it.
        var heads: [UInt32] = []
        var counts: [UInt32] = []
        /// Per node: the next and previous node of its code's list (`none` at the ends).
        var next: [UInt32] = []
        var previous: [UInt32] = []
        var nulls = 0
        static let none = UInt32.max

        func code(of value: String) -> Int32? { interned.find(value, in: strings) }

        /// Links `node` into the list of `code`.
        func link(_ node: UInt32, _ code: Int32) {
            let head = heads[Int(code)]
            next[Int(node)] = head
            previous[Int(node)] = Self.none
            if head != Self.none { previous[Int(head)] = node }
            heads[Int(code)] = node
            counts[Int(code)] += 1
        }

        /// Unlinks `node` from the list of `code`.
        func unlink(_ node: UInt32, _ code: Int32) {
            let p = previous[Int(node)], n = next[Int(node)]
            if p == Self.none { heads[Int(code)] = n } else { next[Int(p)] = n }
            if n != Self.none { previous[Int(n)] = p }
            counts[Int(code)] -= 1
        }

        /// The nodes holding `code`.
        func nodes(_ code: Int32) -> [UInt32] {
            var out: [UInt32] = []
            out.reserveCapacity(Int(counts[Int(code)]))
            var node = heads[Int(code)]
            while node != Self.none {
                out.append(node)
                node = next[Int(node)]
            }
            return out
        }
    }

    enum Storage {
        case numeric(Numeric)
        case text(Text)
    }

    /// By column name; only filterable columns.
    private(set) var columns: [String: (spec: ColumnSpec, storage: Storage)] = [:]
    /// Every node id that has ever held values (to size arrays and spot reuse).
    private(set) var nodeCount = 0
    private(set) var live = 0
    /// Whether each node currently holds a row (set by `set`, cleared by `clear`).
    private var alive: [Bool] = []

    init(schema: Schema) {
        for spec in schema.columns where spec.filterable {
            columns[spec.name] = (spec, spec.type == .text ? .text(Text()) : .numeric(Numeric()))
        }
    }

    var isEmpty: Bool { columns.isEmpty }

    /// RAM it takes, estimated from its arrays' sizes (strings counted by their UTF-8 bytes plus a header).
    var memoryBytes: Int {
        var bytes = alive.capacity
        for (_, column) in columns {
            switch column.storage {
            case .numeric(let c):
                bytes += c.values.capacity * 8 + c.keys.capacity * 8 + c.nodes.capacity * 4 + c.tail.capacity * 16
            case .text(let c):
                bytes += (c.codes.capacity + c.next.capacity + c.previous.capacity + c.heads.capacity + c.counts.capacity) * 4
                bytes += c.strings.reduce(c.strings.capacity * 16) { $0 + ($1.utf8.count > 15 ? $1.utf8.count + 32 : 0) }
                bytes += c.interned.memoryBytes
            }
        }
        return bytes
    }

    // MARK: Updates (writer, under the collection's write lock)

    private func grow(to node: UInt32) {
        let needed = Int(node) + 1
        guard needed > nodeCount else { return }
        alive.append(contentsOf: repeatElement(false, count: needed - alive.count))
        for (_, column) in columns {
            switch column.storage {
            case .numeric(let c): c.values.append(contentsOf: repeatElement(.nan, count: needed - c.values.count))
            case .text(let c):
                c.codes.append(contentsOf: repeatElement(-1, count: needed - c.codes.count))
                c.next.append(contentsOf: repeatElement(Text.none, count: needed - c.next.count))
                c.previous.append(contentsOf: repeatElement(Text.none, count: needed - c.previous.count))
            }
        }
        nodeCount = needed
    }

    /// Records the filterable values of a freshly published node (missing columns are NULL).
    func set(node: UInt32, values: [String: Value]) {
        if Int(node) < nodeCount && alive[Int(node)] { clear(node: node) }
        let reused = Int(node) < nodeCount
        grow(to: node)
        live += 1
        alive[Int(node)] = true
        for (name, column) in columns {
            let value = values[name] ?? .null
            switch column.storage {
            case .numeric(let c):
                let number = value.number ?? .nan
                c.values[Int(node)] = number
                if number.isNaN { c.nulls += 1 } else { c.tail.append((number, node)) }
                if reused { c.reused = true }
                if c.tail.count > 4096 && c.tail.count * 8 > c.keys.count { merge(c) }
            case .text(let c):
                guard case .text(let s) = value else {
                    c.codes[Int(node)] = -1
                    c.nulls += 1
                    continue
                }
                let code: Int32
                if let known = c.code(of: s) {
                    code = known
                } else {
                    code = Int32(c.strings.count)
                    c.strings.append(s)
                    c.interned.insert(code, in: c.strings)
                    c.heads.append(Text.none)
                    c.counts.append(0)
                }
                c.codes[Int(node)] = code
                c.link(node, code)
            }
        }
    }

    /// The current values of a node (for carrying them to the node that replaces it).
    func values(of node: UInt32) -> [String: Value] {
        guard Int(node) < nodeCount else { return [:] }
        var out: [String: Value] = [:]
        for (name, column) in columns {
            switch column.storage {
            case .numeric(let c):
                let v = c.values[Int(node)]
                out[name] = v.isNaN ? .null : (column.spec.type == .real ? .real(v)
                    : column.spec.type == .boolean ? .boolean(v != 0) : .integer(Int64(v)))
            case .text(let c):
                let code = c.codes[Int(node)]
                out[name] = code < 0 ? .null : .text(c.strings[Int(code)])
            }
        }
        return out
    }

    /// Forgets a node's values (deleted, or about to be replaced).
    func clear(node: UInt32) {
        guard Int(node) < nodeCount, alive[Int(node)] else { return }
        live -= 1
        alive[Int(node)] = false
        for (_, column) in columns {
            switch column.storage {
            case .numeric(let c):
                if c.values[Int(node)].isNaN { c.nulls -= 1 }
                c.values[Int(node)] = .nan
            case .text(let c):
                let code = c.codes[Int(node)]
                if code < 0 { c.nulls -= 1 } else { c.unlink(node, code) }
                c.codes[Int(node)] = -1
            }
        }
    }

    private func merge(_ c: Numeric) {
        var pairs: [(Double, UInt32)] = []
        pairs.reserveCapacity(c.keys.count + c.tail.count)
        for i in c.keys.indices where c.values[Int(c.nodes[i])] == c.keys[i] { pairs.append((c.keys[i], c.nodes[i])) }
        for (k, n) in c.tail where c.values[Int(n)] == k { pairs.append((k, n)) }
        pairs.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var keys: [Double] = [], nodes: [UInt32] = []
        keys.reserveCapacity(pairs.count)
        nodes.reserveCapacity(pairs.count)
        for (i, p) in pairs.enumerated() where i == 0 || p != pairs[i - 1] {
            keys.append(p.0)
            nodes.append(p.1)
        }
        c.keys = keys
        c.nodes = nodes
        c.tail = []
        c.reused = false
    }


    /// Merges every tail (after bulk loads), so range queries are binary searches.
    func settle() {
        for (_, column) in columns {
            if case .numeric(let c) = column.storage, !c.tail.isEmpty { merge(c) }
        }
    }

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
    private func rangeCount(_ f: Filter) -> Int? {
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
    private enum LeafEntries {
        case run(Numeric, Range<Int>, [UInt32])
        case posting([UInt32])
    }

    private func leafEntries(_ f: Filter) -> LeafEntries? {
        guard let (name, range) = Self.leafRange(f), let column = columns[name] else { return nil }
        switch (column.storage, range) {
        case (.numeric(let c), .numeric(let lo, let loInclusive, let hi, let hiInclusive)):
            let a = lowerIndex(c.keys, lo, inclusive: loInclusive), b = upperIndex(c.keys, hi, inclusive: hiInclusive)
            return .run(c, a..<max(a, b), c.tail.filter { inRange($0.key, lo, loInclusive, hi, hiInclusive) }.map(\.node))
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
                for node in found where Int(node) < nodeCount && alive[Int(node)] && predicate(node) { out.append(node) }
                return out
            }
            // Few candidates: sort them. Many: mark a bitmap and read it back in node order, O(matches + nodes / 64).
            if found.count * 256 < nodeCount {
                found.sort()
                var out: [UInt32] = []
                out.reserveCapacity(found.count)
                for node in found where node != out.last && Int(node) < nodeCount && alive[Int(node)] && predicate(node) {
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
    private func indexed(_ f: Filter) -> (nodes: [UInt32], distinct: Bool)? {
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

    /// Matches of `filter` (which implies `scope`) counted among the rows of `scope` alone, an indexed
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
            if draws < scopeRows, let stride = estimateByStride(filter, within: scope, draws: draws), stride.inScope >= 64 {
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

    /// A per-node predicate over the in-memory columns with SQL semantics (unknown = no match).
    /// - Precondition: `covers(filter)`.
    func predicate(_ filter: Filter) -> (UInt32) -> Bool {
        // Fast path for the common single numeric comparison: one load and one compare (NaN = NULL fails
        // every comparison, as unknown does).
        if case .compare(let name, let op, let v) = filter, op != .notEqual, let x = v.number,
           case .numeric(let c)? = columns[name]?.storage {
            let values = c.values
            switch op {
            case .less: return { values[Int($0)] < x }
            case .lessOrEqual: return { values[Int($0)] <= x }
            case .greater: return { values[Int($0)] > x }
            case .greaterOrEqual: return { values[Int($0)] >= x }
            default: return { values[Int($0)] == x }
            }
        }
        let tri = compile(filter)
        return { tri($0) == 1 }
    }

    /// 0 false, 1 true, 2 unknown.
    private func compile(_ f: Filter) -> (UInt32) -> UInt8 {
        switch f {
        case .and(let children), .or(let children):
            // AND: a false child decides, else any unknown; OR: a true child decides, else any unknown.
            let decisive: UInt8 = if case .and = f { 0 } else { 1 }
            let parts = children.map(compile)
            return { node in
                var result: UInt8 = 1 - decisive
                for p in parts {
                    let r = p(node)
                    if r == decisive { return decisive }
                    if r == 2 { result = 2 }
                }
                return result
            }
        case .not(let inner):
            let p = compile(inner)
            return { node in
                let r = p(node)
                return r == 2 ? 2 : 1 - r
            }
        case .isNull(let name), .isNotNull(let name):
            let wantNull = if case .isNull = f { true } else { false }
            switch columns[name]!.storage {
            case .numeric(let c):
                let values = c.values
                return { node in (values[Int(node)].isNaN == wantNull) ? 1 : 0 }
            case .text(let c):
                let codes = c.codes
                return { node in ((codes[Int(node)] < 0) == wantNull) ? 1 : 0 }
            }
        case .compare(let name, let op, let v):
            switch columns[name]!.storage {
            case .numeric(let c):
                guard let x = v.number else { return { _ in 2 } }
                let values = c.values
                return { node in
                    let y = values[Int(node)]
                    if y.isNaN { return 2 }
                    let r: Bool = switch op {
                    case .equal: y == x
                    case .notEqual: y != x
                    case .less: y < x
                    case .lessOrEqual: y <= x
                    case .greater: y > x
                    case .greaterOrEqual: y >= x
                    }
                    return r ? 1 : 0
                }
            case .text(let c):
                guard case .text(let s) = v else { return { _ in 2 } }
                if op == .equal || op == .notEqual {
                    let code = c.code(of: s) ?? -2
                    let equal: UInt8 = op == .equal ? 1 : 0
                    let codes = c.codes
                    return { node in
                        let have = codes[Int(node)]
                        if have < 0 { return 2 }
                        return have == code ? equal : 1 - equal
                    }
                }
                return { node in
                    let have = c.codes[Int(node)]
                    if have < 0 { return 2 }
                    guard let r = compareValues(.text(c.strings[Int(have)]), .text(s)) else { return 2 }
                    let ok: Bool = switch op {
                    case .less: r < 0
                    case .lessOrEqual: r <= 0
                    case .greater: r > 0
                    default: r >= 0
                    }
                    return ok ? 1 : 0
                }
            }
        case .between(let name, let low, let high):
            let a = compile(.compare(column: name, .greaterOrEqual, low))
            let b = compile(.compare(column: name, .lessOrEqual, high))
            return { node in
                let x = a(node), y = b(node)
                if x == 0 || y == 0 { return 0 }
                return x == 2 || y == 2 ? 2 : 1
            }
        case .isIn(let name, let values):
            let hasNull = values.contains(.null)
            switch columns[name]!.storage {
            case .numeric(let c):
                let set = Set(values.compactMap(\.number))
                let column = c.values
                return { node in
                    let y = column[Int(node)]
                    if y.isNaN { return 2 }
                    return set.contains(y) ? 1 : (hasNull ? 2 : 0)
                }
            case .text(let c):
                var codes = Set<Int32>()
                for v in values { if case .text(let s) = v, let code = c.code(of: s) { codes.insert(code) } }
                let column = c.codes
                return { node in
                    let have = column[Int(node)]
                    if have < 0 { return 2 }
                    return codes.contains(have) ? 1 : (hasNull ? 2 : 0)
                }
            }
        }
    }

    /// Per-column statistics for `stats` and `explain`.
    func statistics() -> [ColumnStatistics] {
        columns.values.map { column in
            switch column.storage {
            case .numeric(let c):
                let live = c.values.filter { !$0.isNaN }
                return ColumnStatistics(name: column.spec.name, type: column.spec.type.rawValue, nonNull: live.count,
                                        nulls: c.nulls, distinct: Set(live).count,
                                        minimum: live.min(), maximum: live.max(), frequent: [])
            case .text(let c):
                var counts: [Int32: Int] = [:]
                for code in c.codes where code >= 0 { counts[code, default: 0] += 1 }
                let frequent = counts.sorted { $0.value > $1.value }.prefix(5).map { (c.strings[Int($0.key)], $0.value) }
                return ColumnStatistics(name: column.spec.name, type: column.spec.type.rawValue,
                                        nonNull: counts.values.reduce(0, +), nulls: c.nulls, distinct: counts.count,
                                        minimum: nil, maximum: nil, frequent: frequent.map { FrequentValue(value: $0.0, count: $0.1) })
            }
        }.sorted { $0.name < $1.name }
    }
}

/// String → code for a text column: open addressing over codes (4 bytes a slot, at most half full), the
/// strings themselves kept once, in the column's `strings`.
struct StringTable {
    private var slots = [Int32](repeating: -1, count: 16)
    private var count = 0
    var memoryBytes: Int { slots.capacity * 4 }

    func find(_ value: String, in strings: [String]) -> Int32? {
        let mask = slots.count - 1
        var i = value.hashValue & mask
        while true {
            let code = slots[i]
            if code < 0 { return nil }
            if strings[Int(code)] == value { return code }
            i = (i + 1) & mask
        }
    }

    /// Adds `code` (whose string is `strings[code]`, not yet in the table).
    mutating func insert(_ code: Int32, in strings: [String]) {
        if (count + 1) * 2 > slots.count {
            var bigger = StringTable()
            bigger.slots = [Int32](repeating: -1, count: slots.count * 2)
            for old in slots where old >= 0 { bigger.place(old, strings) }
            bigger.count = count
            self = bigger
        }
        place(code, strings)
        count += 1
    }

    private mutating func place(_ code: Int32, _ strings: [String]) {
        let mask = slots.count - 1
        var i = strings[Int(code)].hashValue & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = code
    }
}

/// A value and how many rows hold it.
public struct FrequentValue: Sendable, Equatable, Codable {
    public var value: String
    public var count: Int
}

/// What the engine knows of one filterable column.
public struct ColumnStatistics: Sendable, Equatable, Codable {
    public var name: String
    public var type: String
    public var nonNull: Int
    public var nulls: Int
    public var distinct: Int
    public var minimum: Double?
    public var maximum: Double?
    /// Most frequent text values (text columns).
    public var frequent: [FrequentValue]
}

extension Filter {
    /// An OR or IN whose every part is an indexed leaf (collectable through runs and postings).
    var isIndexableDisjunction: Bool {
        switch self {
        case .or(let children): return children.allSatisfy { FilterColumns.leafRange($0) != nil || $0.isIndexableDisjunction }
        case .isIn(_, let values): return !values.isEmpty
        default: return false
        }
    }
}

private func lowerIndex(_ keys: [Double], _ x: Double, inclusive: Bool) -> Int {
    var lo = 0, hi = keys.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if inclusive ? keys[mid] < x : keys[mid] <= x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

private func upperIndex(_ keys: [Double], _ x: Double, inclusive: Bool) -> Int {
    var lo = 0, hi = keys.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if inclusive ? keys[mid] <= x : keys[mid] < x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

private func inRange(_ k: Double, _ lo: Double, _ loInclusive: Bool, _ hi: Double, _ hiInclusive: Bool) -> Bool {
    (loInclusive ? k >= lo : k > lo) && (hiInclusive ? k <= hi : k < hi)
}

