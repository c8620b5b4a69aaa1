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
    var alive: [Bool] = []

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
                bytes +=
                    (c.codes.capacity + c.next.capacity + c.previous.capacity + c.heads.capacity + c.counts.capacity)
                    * 4
                bytes += c.strings.reduce(c.strings.capacity * 16) {
                    $0 + ($1.utf8.count > 15 ? $1.utf8.count + 32 : 0)
                }
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
                out[name] =
                    v.isNaN
                    ? .null
                    : (column.spec.type == .real
                        ? .real(v)
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
}
