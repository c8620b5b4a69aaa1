import HNSW
import QueryPlanner

/// The derived, in-memory side of one collection: its index and the node → id table. Everything here can
/// be rebuilt from SQLite (DESIGN.md principle 1).
///
/// Threading: the index is thread-safe on its own. `ids` is guarded by `lock`: searches read it shared,
/// the writer (after COMMIT) updates it exclusively.
final class CollectionState: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): immutable lets, plus `index` (replaced only while the store's writer
    // mutex is held and no search can hold the old one's nodes: see `replaceIndex`) and `ids` under `lock`.
    let number: Int64
    let name: String
    let schema: Schema
    let uuid: String
    let table: SQL.Table
    let lock = ReadWriteLock()
    /// Read under `lock` (`read { }`); replaced under its write side.
    private(set) var index: HNSWIndex
    /// External id of each node, indexed by node id; nil for free or not-yet-published nodes.
    private var ids: [RowID?] = []

    init(number: Int64, name: String, schema: Schema, uuid: String, index: HNSWIndex) {
        self.number = number
        self.name = name
        self.schema = schema
        self.uuid = uuid
        self.table = SQL.Table(number: number, schema: schema)
        self.index = index
    }

    var handle: Collection { Collection(name: name, number: number) }

    /// Runs `body` with the index and a node → id lookup that agree with each other (shared lock).
    func read<R, E: Error>(_ body: (HNSWIndex, (UInt32) -> RowID?) throws(E) -> R) throws(E) -> R {
        try lock.read { () throws(E) -> R in
            try body(index) { node in Int(node) < self.ids.count ? self.ids[Int(node)] : nil }
        }
    }

    /// Swaps in a rebuilt index and its id table together.
    func replaceIndex(_ fresh: HNSWIndex, ids pairs: [(node: UInt32, id: RowID?)]) {
        lock.write {
            index = fresh
            ids = []
        }
        setIDs(pairs)
    }

    func setIDs(_ pairs: [(node: UInt32, id: RowID?)]) {
        lock.write {
            for (node, id) in pairs {
                if Int(node) >= ids.count { ids.append(contentsOf: repeatElement(nil, count: Int(node) + 1 - ids.count)) }
                ids[Int(node)] = id
            }
        }
    }
}
