import HNSW
import QueryPlanner

/// Which committed state a read sees, while a writer goes on.
///
/// SQLite gives every read transaction one committed state; the derived state in memory (graph, filter
/// columns, cold tier summaries) follows the writer, which changes it after each COMMIT in a few locked steps.
/// So a read compares the two by the change log's sequence (`hs_changes`, AUTOINCREMENT: every row a
/// transaction changes gets the next number): the writer registers its transaction's changed rows and last
/// sequence here before COMMIT, and marks it published once memory reflects it. A read pins a read
/// transaction (`ReadView`, its sequence `seq`) and, holding the collection's lock for its in-memory step,
/// takes the range of states memory may be in — [published, pending]. Rows changed between either end and its
/// own sequence are the only ones memory may show differently from its snapshot: the read drops them from what
/// memory found and evaluates them afresh from its snapshot (exact distance, filter in SQL). Without writes
/// in flight that set is empty and costs nothing, and a query that reads memory alone needs no snapshot at all:
/// it only reruns if memory was being published while it searched.
final class ChangeEpochs: Sendable {
    private struct Record {
        var seq: Int64
        var rows: [Int64: Set<Int64>]  // collection number → row numbers
    }

    private struct State {
        var published: Int64 = 0
        /// A transaction registered and not yet published (COMMIT may be under way: SQLite may be ahead).
        var registered: Int64? = nil
        /// A committed transaction being published (memory may be between `published` and it).
        var publishing: Int64? = nil
        var records: [Record] = []
        /// Open reads by the sequence of their snapshot, with how many share it.
        var readers: [Int64: Int] = [:]

        mutating func trim() {
            let keep = min(published, readers.keys.min() ?? .max)
            if let first = records.firstIndex(where: { $0.seq > keep }) {
                records.removeFirst(first)
            } else {
                records.removeAll()
            }
        }
    }

    private let state = Locked(State())

    /// The state memory reflects once a store has opened (recovery brought it to the database's).
    func reset(to seq: Int64) { state.withLock { $0 = State(published: seq) } }

    /// Before COMMIT: the transaction ending at `seq` changes `rows`.
    func begin(seq: Int64, rows: [Int64: Set<Int64>]) {
        state.withLock { s in
            s.records.append(Record(seq: seq, rows: rows))
            s.registered = seq
        }
    }

    /// After COMMIT, before memory changes.
    func committed(seq: Int64) { state.withLock { $0.publishing = seq } }

    /// The transaction did not commit (its record stays: evaluating its rows afresh is merely redundant).
    func abandon() { state.withLock { $0.registered = nil } }

    /// After publishing: memory reflects every transaction through `seq`.
    func publish(through seq: Int64) {
        state.withLock { s in
            s.published = max(s.published, seq)
            s.registered = nil
            s.publishing = nil
            s.trim()
        }
    }

    /// The state memory and SQLite both hold when no transaction is between its registration and the end of its
    /// publishing; nil while one is (then a read that uses both pins a snapshot and corrects memory to it).
    var quiet: Int64? { state.withLock { $0.registered == nil && $0.publishing == nil ? $0.published : nil } }

    /// The states memory may be in right now: `low` = published, `high` = the transaction being published.
    /// Read under the collection's lock, so that no publishing step of a later transaction can interleave.
    var memoryRange: (low: Int64, high: Int64) { state.withLock { ($0.published, $0.publishing ?? $0.published) } }

    /// Rows of `collection` changed by transactions ending in (after, through].
    func changedRows(collection: Int64, after: Int64, through: Int64) -> Set<Int64> {
        guard through > after else { return [] }
        return state.withLock { s in
            var rows = Set<Int64>()
            for r in s.records where r.seq > after && r.seq <= through {
                if let changed = r.rows[collection] { rows.formUnion(changed) }
            }
            return rows
        }
    }

    /// Registers a read about to pin its snapshot, at the state memory reflects now: no later snapshot can be older,
    /// so the records it may need are kept from this moment (registering after reading the snapshot's sequence
    /// would leave a moment in which a publish could trim them).
    func registerReader() -> Int64 {
        state.withLock { s in
            s.readers[s.published, default: 0] += 1
            return s.published
        }
    }

    func unregister(reader seq: Int64) {
        state.withLock { s in
            s.readers[seq, default: 1] -= 1
            if s.readers[seq] == 0 { s.readers[seq] = nil }
            s.trim()
        }
    }

    /// Change records held (for tests).
    var recordCount: Int { state.withLock { $0.records.count } }
}

/// A pinned read transaction on one reader connection: every statement through it sees the committed state
/// of change-log sequence `seq`, and queries through it correct what memory shows to that state.
package final class ReadView: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): used by one thread at a time — the closure that lends it (`read { }`), or one
    // query; `Connection` is not shared meanwhile (it is out of the pool).
    let connection: Connection
    let seq: Int64

    init(connection: Connection, seq: Int64) {
        self.connection = connection
        self.seq = seq
    }
}

extension HybridStore {
    /// Runs `body` with a pinned read transaction (see `ReadView`), registered so the change records it may
    /// need are kept.
    func withPinnedRead<R>(_ body: (ReadView) throws(HybridStoreError) -> R) throws(HybridStoreError) -> R {
        try withReader { c in
            let floor = epochs.registerReader()
            defer { epochs.unregister(reader: floor) }
            return try c.transaction(immediate: false) { () throws -> R in
                guard case .integer(let seq)? = try c.statement(SQL.lastSeq).scalar() else {
                    throw HybridStoreError(.sqlite, "cannot read the change log's sequence")
                }
                do {
                    return try body(ReadView(connection: c, seq: seq))
                } catch let error as HybridStoreError {
                    throw error
                }
            }
        }
    }

    /// Rows changed under a read: those memory may show in another state than the read's snapshot.
    func rowsChangedUnder(_ view: ReadView, _ s: CollectionState, memory: (low: Int64, high: Int64)) -> Set<Int64> {
        epochs.changedRows(collection: s.number, after: min(memory.low, view.seq), through: max(memory.high, view.seq))
    }

    /// The rows among `rows` that, in the read's snapshot, exist and match `condition`, with their exact
    /// distance to `query` (hot or cold alike).
    func evaluateInSnapshot(
        _ rows: Set<Int64>, _ s: CollectionState, query: [Float], condition: SQLCondition?,
        _ view: ReadView
    ) throws(HybridStoreError) -> [(row: Int64, id: RowID, distance: Float, cold: Bool)] {
        guard !rows.isEmpty else { return [] }
        let json = "[" + rows.map(String.init).joined(separator: ",") + "]"
        let c = view.connection
        return try sqliteWork("reading rows changed under a read") {
            () throws -> [(row: Int64, id: RowID, distance: Float, cold: Bool)] in
            let statement =
                condition == nil
                ? try c.statement(s.table.vectorsWhere("1"))
                : try c.prepareOnce(s.table.vectorsWhere(condition!.text))
            defer { statement.reset() }
            try statement.bind([.text(json)] + (condition?.arguments ?? []))
            var found: [Row] = []
            var numbers: [Int64] = []
            while try statement.step() {
                numbers.append(statement.int64(0))
                found.append(readRow(statement, positions: [], vector: true, s))
            }
            let dim = s.schema.vector.dimensions
            let cold = found.map { $0.vector?.count != dim }
            try fillColdVectors(&found, numbers: numbers, s, c)
            let metric = s.schema.vector.metric
            return found.indices.map { i in
                (numbers[i], found[i].id, exactDistance(query, found[i].vector ?? [], metric: metric), cold[i])
            }
        }
    }
}

/// The reported distance (`Metric`) between a query and a stored vector (stored normalised under cosine), by
/// the same kernel the index ranks with, so a row evaluated here ties with the index's distance bit for bit.
func exactDistance(_ query: [Float], _ stored: [Float], metric: Metric) -> Float {
    guard query.count == stored.count, !query.isEmpty else { return .infinity }
    var q = query
    if metric == .cosine { unsafe q.withUnsafeMutableBufferPointer { unsafe normalize($0) } }
    let kernel = DistanceKernel(metric: metric)
    // SAFETY: both buffers are lent for the call only and hold `q.count` floats.
    let d = unsafe q.withUnsafeBufferPointer { qb in
        unsafe stored.withUnsafeBufferPointer { sb in unsafe kernel(qb.baseAddress!, sb.baseAddress!, qb.count) }
    }
    return metric == .cosine ? 1 + d : d
}
