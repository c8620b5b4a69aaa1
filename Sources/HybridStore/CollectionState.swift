import HNSW
import QueryPlanner
import Synchronization

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
    let lock: ReadWriteLock
    /// The effort the collection's data needs, learned from sampled queries (derived; saved at checkpoints).
    let calibration = Locked(RecallCalibration())
    /// Graph queries planned so far (to pick every n-th for a recall check).
    let graphQueries = Atomic<Int>(0)
    /// How often a filtered-graph probe in front of an exact plan pays off, per filter shape (its columns and
    /// selectivity bucket): correlated filters let the graph finish early, others do not.
    let probes = Locked<[String: ProbeRecord]>([:])
    /// Rows written (inserted, updated or removed) since the state was loaded: how far filters' link spreads may
    /// have moved.
    let rowsWritten = Atomic<Int>(0)
    /// Filters' link spreads (`HNSWIndex.linkSpread`, by the filter as scoped).
    let linkSpreads = Locked(LinkSpreadMemory())
    /// Filters' own recall curves (`FilterCurve`, by the filter as scoped with k and the target; nil where none could
    /// be measured).
    let filterCurves = Locked(FilterMemory<FilterCurveKey, FilterCurve?>())
    /// Filters' own curves for the cold step (`ColdFilterCurve`), the same way, also by the cold tier's blocks.
    let coldFilterCurves = Locked(FilterMemory<ColdFilterCurveKey, ColdFilterCurve?>())
    /// Tenants' corpus statistics for keyword ranking, each valid while the change log stands still.
    let textStatistics = Locked<[String: TextStatistics]>([:])
    /// Moving averages of a hybrid query's arms (ms): the longer runs on the calling thread.
    let armCosts = Locked<(keyword: Double, vector: Double)>((0, 0))
    /// Rows' token counts for keyword ranking; under `lock`.
    let textLengths = TextLengths()
    /// The searchable text as posting lists, once loaded (nil before, and after the index is rebuilt); under
    /// `lock`.
    var textPostings: TextPostings?
    /// The cold tier's in-memory side (block summaries, live rows, their filter values); under `lock`.
    var cold: ColdTier
    /// Filterable columns in memory, by node; under `lock`.
    private(set) var columns: FilterColumns
    /// Read under `lock` (`read { }`); replaced under its write side.
    private(set) var index: HNSWIndex
    /// External id of each node, indexed by node id; nil for free or not-yet-published nodes.
    private var ids: [RowID?] = []

    init(
        number: Int64, name: String, schema: Schema, uuid: String, index: HNSWIndex,
        lock: ReadWriteLock = ReadWriteLock()
    ) {
        self.lock = lock
        self.number = number
        self.name = name
        self.schema = schema
        self.uuid = uuid
        self.table = SQL.Table(number: number, schema: schema)
        self.index = index
        self.columns = FilterColumns(schema: schema)
        self.cold = ColdTier(schema: schema)
    }

    /// RAM of the hot side's filter columns and node → id table (estimated; the index reports its own).
    var columnAndIDBytes: Int { lock.read { columns.memoryBytes + ids.capacity * MemoryLayout<RowID?>.stride } }

    var handle: CollectionRef { CollectionRef(name: name, number: number) }

    /// Runs `body` with the index and a node → id lookup that agree with each other (shared lock).
    func read<R, E: Error>(_ body: (HNSWIndex, (UInt32) -> RowID?) throws(E) -> R) throws(E) -> R {
        try lock.read { () throws(E) -> R in
            try body(index) { node in Int(node) < self.ids.count ? self.ids[Int(node)] : nil }
        }
    }

    /// As `read`, also lending the filter columns.
    func query<R, E: Error>(_ body: (HNSWIndex, FilterColumns, (UInt32) -> RowID?) throws(E) -> R) throws(E) -> R {
        try lock.read { () throws(E) -> R in
            let ids = self.ids  // a local reference: no exclusivity check per lookup
            return try body(index, columns) { node in Int(node) < ids.count ? ids[Int(node)] : nil }
        }
    }

    /// The same collection under a schema that differs only in what does not shape the index or the filter
    /// columns (which columns are searchable): it shares this state's lock, index and filter columns, and
    /// copies the rest. Call holding the store's writer; searches that hold this state finish on it.
    func replacingSchema(_ schema: Schema) -> CollectionState {
        let fresh = CollectionState(number: number, name: name, schema: schema, uuid: uuid, index: index, lock: lock)
        lock.write {
            fresh.columns = columns
            fresh.cold = cold
            fresh.ids = ids
            fresh.index = index
        }
        fresh.calibration.withLock { $0 = calibration.withLock { $0 } }
        fresh.probes.withLock { $0 = probes.withLock { $0 } }
        return fresh
    }

    /// Swaps in a rebuilt index with its ids and filter values, all together.
    func replaceIndex(_ fresh: HNSWIndex, rows: [(node: UInt32, id: RowID, values: [String: Value])]) {
        let freshColumns = FilterColumns(schema: schema)
        for row in rows { freshColumns.set(node: row.node, values: row.values) }
        freshColumns.settle()
        linkSpreads.withLock { $0 = LinkSpreadMemory() }
        filterCurves.withLock { $0 = FilterMemory() }
        coldFilterCurves.withLock { $0 = FilterMemory() }
        lock.write {
            index = fresh
            columns = freshColumns
            ids = []
            for row in rows {
                if Int(row.node) >= ids.count {
                    ids.append(contentsOf: repeatElement(nil, count: Int(row.node) + 1 - ids.count))
                }
                ids[Int(row.node)] = row.id
            }
        }
    }

    /// The filter's link spread over the hot rows: as read before (`read`, which reads it from the graph), unless a
    /// twentieth of the rows (at least 64) has been written since.
    func linkSpread(of filter: Filter, rows: Int, read: () -> Double?) -> Double? {
        remembered(in: linkSpreads, filter, rows: rows, measure: read)
    }

    /// The filter's own recall curve for `k` and `target` (recall@k, measured up to where it meets the target) as
    /// remembered for it (itself nil where none could be measured); nil where not known or stale.
    func knownFilterCurve(of filter: Filter, k: Int, target: Double, rows: Int) -> FilterCurve?? {
        let written = rowsWritten.load(ordering: .relaxed)
        return filterCurves.withLock {
            $0.value(of: FilterCurveKey(filter: filter, k: k, target: target), rows: rows, written: written)
        }
    }

    /// Remembers the filter's own curve, measured on `index`: not where the index was replaced since (the memory was
    /// cleared with it, and the curve is the old graph's).
    func recordFilterCurve(_ curve: FilterCurve?, of filter: Filter, k: Int, target: Double, measuredOn: HNSWIndex) {
        let written = rowsWritten.load(ordering: .relaxed)
        lock.read {
            guard index === measuredOn else { return }
            filterCurves.withLock {
                $0.record(FilterCurveKey(filter: filter, k: k, target: target), curve, written: written)
            }
        }
    }

    /// The filter's own cold curve for `k` and `target` over the cold tier's blocks as they are (`blocksChanged`), as
    /// remembered for it or measured by `measure`; `rows`: the hot and cold rows.
    func coldFilterCurve(
        of filter: Filter, k: Int, target: Double, blocksChanged: Int, rows: Int, measure: () -> ColdFilterCurve?
    ) -> ColdFilterCurve? {
        let key = ColdFilterCurveKey(
            curve: FilterCurveKey(filter: filter, k: k, target: target), blocksChanged: blocksChanged)
        return remembered(in: coldFilterCurves, key, rows: rows, measure: measure)
    }

    /// What `memory` holds of the filter while it is fresh, else measured now and remembered.
    private func remembered<Key, Value>(
        in memory: Locked<FilterMemory<Key, Value>>, _ key: Key, rows: Int, measure: () -> Value
    ) -> Value {
        let written = rowsWritten.load(ordering: .relaxed)
        if let known = memory.withLock({ $0.value(of: key, rows: rows, written: written) }) { return known }
        let value = measure()
        memory.withLock { $0.record(key, value, written: written) }
        return value
    }

    /// Updates derived state under the exclusive lock.
    func mutate<R>(_ body: (FilterColumns, (UInt32, RowID?) -> Void) -> R) -> R {
        lock.write {
            body(columns) { node, id in
                if Int(node) >= self.ids.count {
                    self.ids.append(contentsOf: repeatElement(nil, count: Int(node) + 1 - self.ids.count))
                }
                self.ids[Int(node)] = id
            }
        }
    }

}

/// What was measured of filters before (their link spreads, `HNSWIndex.linkSpread`; their own recall curves), each
/// with the rows the collection had had written when it was measured: one is taken again until a twentieth of the
/// rows (at least 64) has been written since. At most `capacity` filters; past it, all are dropped.
package struct FilterMemory<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    package static var capacity: Int { 1024 }
    private var known: [Key: (written: Int, value: Value)] = [:]

    package init() {}

    /// What was measured of the filter; nil where not known or stale.
    package func value(of key: Key, rows: Int, written: Int) -> Value? {
        guard let entry = known[key], written - entry.written <= max(64, rows / 20) else { return nil }
        return entry.value
    }

    package mutating func record(_ key: Key, _ value: Value, written: Int) {
        if known.count >= Self.capacity { known.removeAll(keepingCapacity: true) }
        known[key] = (written, value)
    }

    package var count: Int { known.count }
}

/// Filters' link spreads (each itself nil where the graph could not tell).
package typealias LinkSpreadMemory = FilterMemory<Filter, Double?>

/// A filter's own curve is of recall@k, measured up to the effort that meets a target: one per filter, k and target.
package struct FilterCurveKey: Hashable, Sendable {
    package var filter: Filter
    package var k: Int
    package var target: Double

    package init(filter: Filter, k: Int, target: Double) {
        self.filter = filter
        self.k = k
        self.target = target
    }
}

/// A filter's own cold curve is one per filter, k and target, and state of the cold tier's blocks: rows moved in or
/// out of the tier change its blocks (a block is never rewritten in place), and a curve over other blocks is
/// measured again.
package struct ColdFilterCurveKey: Hashable, Sendable {
    package var curve: FilterCurveKey
    package var blocksChanged: Int
}

extension FilterMemory where Key == Filter, Value == Double? {
    /// The filter's spread as read before (itself nil where the graph could not tell); nil where not known or stale.
    package func spread(of filter: Filter, rows: Int, written: Int) -> Double?? {
        value(of: filter, rows: rows, written: written)
    }
}
