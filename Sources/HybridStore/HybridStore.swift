import HNSW
// The planner module's public API is what a user of the store names (filters and their DSL, values, keyword
// queries, what `explain` and `statistics` return); its internals are `package`. Of the index module only the
// metric: the rest stays behind the store's API (import HNSW to use the index on its own).
@_exported import QueryPlanner
@_exported import enum HNSW.Metric
import CKernels
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An embedded store of rows that carry typed columns and an embedding vector.
///
/// A store is a directory: `store.sqlite` (WAL; the single source of truth), a `LOCK` file, and derived
/// index snapshots `index-<uuid>.hsnap` that can always be deleted and rebuilt.
///
/// ```swift
/// let store = try HybridStore(directory: "/var/lib/rag", create: true)
/// let chunks = try store.collection("chunks", creatingIfMissing: Schema(
///     vector: .init(dimensions: 384, metric: .cosine),
///     columns: [.text("tenant", filterable: true), .integer("year", filterable: true), .text("body")]))
/// try store.write { tx in try tx.upsert("doc-1", into: chunks, vector: embedding, values: ["body": .text(body)]) }
/// let hits = try store.search(chunks, near: query, k: 10, returning: ["body"])
/// ```
///
/// Threading: `HybridStore` is `Sendable`. Writes (`write`, `createCollection`, `dropCollection`,
/// `checkpoint`) are serialized on one writer connection; reads (`search`, `get`, `count`, `verify`) run
/// concurrently on a pool of reader connections and see only committed data. The index is updated right
/// after each COMMIT; a search that runs meanwhile may see the graph ahead of its SQLite snapshot, and
/// drops ids the snapshot lacks.
public final class HybridStore: Sendable {
    /// The store directory.
    public let directory: String
    let configuration: Configuration
    let databasePath: String
    private let lockKey: String
    let writer: Mutex<WriterState>
    /// Pooled reader connections. State shared between threads sits behind the pthread-based `Locked`, not
    /// `Mutex`: ThreadSanitizer does not see the prebuilt `Mutex`'s handoff and reported, e.g., a connection
    /// passed from the cold step to hydration through this pool (false positives that would hide real races).
    /// The writer keeps `Mutex` (its state is not copyable).
    private let readers = Locked<[Connection]>([])
    let catalog = Locked<[String: CollectionState]>([:])
    let backgroundQueue = DispatchQueue(label: "HybridStore.background")
    static let backgroundKey = DispatchSpecificKey<ObjectIdentifier>()
    let closed = Atomic<Bool>(false)
    /// Set once `close()` has drained the background queue: reads refused from then on. Between the two,
    /// work already queued (a checkpoint that changes scheduled, with its calibration's cold pass) still reads.
    private let readersClosed = Atomic<Bool>(false)
    let backgroundError = Locked<HybridStoreError?>(nil)
    /// One background recall check at a time, when the next may start, and what the checks cost so far.
    let recallCheck = Locked(RecallCheckSlot())
    /// Query metering and query quotas of tenants (see `TenantScope`).
    let meter = Locked(Meter())
    /// Held through a whole `flushUsage` (taking the pending counters from memory and committing them), so a
    /// `usage` that flushes before it reads never reads while another flush holds counters not yet written.
    let usageFlush = NSLock()
    /// Which committed state memory reflects, for reads that must see one state (see `ChangeEpochs`).
    let epochs = ChangeEpochs()
    /// Held shared by a query's hot step and exclusively by a writer's publishing window (from marking its
    /// transaction committed to marking it published; the graph work happens before, on pending nodes). So a hot
    /// step never meets a half-published transaction and never reruns for one: it waits for the window (tens of
    /// microseconds), and the window for the hot steps under way. Writer-preferring; taken before any
    /// collection's lock.
    let publishGate = ReadWriteLock()
    /// Logging and metrics, when the configuration asks for either.
    let observer: StoreObserver?
    /// The threads of the async API, started by its first call (see `HybridStore+Async`).
    let workerPools = Locked<(readers: WorkerPool?, writer: WorkerPool?)>((nil, nil))
    /// The thread that runs a hybrid query's second arm beside the caller's (`runArms`), started by the first.
    let armPool = Locked<WorkerPool?>(nil)

    struct WriterState: ~Copyable {
        var connection: Connection?
        var changesSinceCheckpoint = 0
        var checkpointScheduled = false
    }

    /// Whether this open may write (see `AccessMode`).
    public let mode: AccessMode
    /// Read-only with an empty write-ahead log: every connection opens the database as immutable.
    private let immutable: Bool

    /// Opens the store in `directory` and brings every collection's index in line with the database (load
    /// snapshot, replay the change log after it, or rebuild).
    /// - Parameters:
    ///   - create: create the directory and an empty store when `directory` holds none. Without it, a
    ///     missing directory, or one with no `store.sqlite`, is `notAStore` and nothing is written.
    ///   - mode: `.readWrite` (one process; an exclusive lock) or `.readOnly` (shared; writes nothing).
    /// - Throws: `notAStore`, `storeLocked` (open elsewhere, in this or another process, for writing; or
    ///   for reading when opening to write), `newerFormat`, `corruptFile` (not a HybridStore database, or
    ///   damaged), `io`, `sqlite`.
    public init(
        directory: String, create: Bool = false, mode: AccessMode = .readWrite,
        configuration: Configuration = Configuration()
    ) throws(HybridStoreError) {
        self.directory = directory
        self.configuration = configuration
        self.mode = mode
        self.databasePath = directory + "/store.sqlite"
        self.observer = StoreObserver.make(configuration, directory: directory)
        let creating = create && mode == .readWrite
        var isDirectory: ObjCBool = false
        if unsafe !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard creating else {
                throw HybridStoreError(
                    .notAStore, "no store at \(directory) (the directory does not exist)",
                    context: ["path": directory])
            }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw HybridStoreError(
                    .io, "cannot create \(directory): \(error.localizedDescription)", context: ["path": directory])
            }
        } else if !isDirectory.boolValue {
            throw HybridStoreError(.notAStore, "\(directory) is not a directory", context: ["path": directory])
        }
        let existed = FileManager.default.fileExists(atPath: databasePath)
        if !existed && !creating {
            let snapshots = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasPrefix("index-") && $0.contains(".hsnap") }
            throw HybridStoreError(
                .notAStore,
                snapshots.isEmpty
                    ? "no store at \(directory) (no store.sqlite); `create` one first"
                    : "\(directory) has index snapshots but no store.sqlite: the database is missing, and a snapshot alone holds no rows",
                context: ["path": directory])
        }
        lockKey = try Self.acquireLock(directory, shared: mode == .readOnly)
        immutable = mode == .readOnly && Self.walIsEmpty(databasePath)
        let connection: Connection
        do {
            connection = try Connection(
                path: databasePath, create: creating, readOnly: mode == .readOnly,
                immutable: immutable,
                synchronousFull: configuration.synchronousCommits)
        } catch {
            Self.releaseLock(lockKey)
            throw HybridStoreError(error, while: "opening \(databasePath)")
        }
        writer = Mutex(WriterState(connection: connection))
        backgroundQueue.setSpecific(key: Self.backgroundKey, value: ObjectIdentifier(self))
        do throws(HybridStoreError) {
            try prepareCatalog(connection, existed: existed)
            if mode == .readWrite { removeStaleTemporaryFiles() }
            try recoverAll(connection)
            try loadQuotas(connection)
            try loadCalibrations(connection)
            if case .integer(let seq)? = try? connection.statement(SQL.lastSeq).scalar() { epochs.reset(to: seq) }
            if observer?.metrics == true { observer?.report(allStatistics()) }
        } catch {
            shutdown()
            throw error
        }
    }

    /// Whether the database's write-ahead log is absent or empty: then every committed transaction is in the
    /// database file, and a read-only open may treat it as immutable (SQLite then needs no `-shm` file and
    /// writes nothing). A non-empty log means the last writer did not close cleanly; SQLite reads it then.
    private static func walIsEmpty(_ databasePath: String) -> Bool {
        let attributes = try? FileManager.default.attributesOfItem(atPath: databasePath + "-wal")
        return ((attributes?[.size] as? NSNumber)?.intValue ?? 0) == 0
    }

    /// Removes snapshot temp files (`index-*.hsnap.tmp-PID`) that a killed checkpoint left. Called holding the
    /// exclusive lock, so no other process writes snapshots here; a file whose writer is this process (a
    /// store of this process closed earlier) is finished or abandoned too, since `close()` waits for checkpoints.
    private func removeStaleTemporaryFiles() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("index-") && name.contains(".hsnap.tmp-") {
            unsafe unlink(directory + "/" + name)
        }
    }

    deinit { shutdown() }

    /// Waits for background work, closes every connection and releases the lock. Further calls on the store
    /// are programming errors. Idempotent.
    public func close() { shutdown() }

    private func shutdown() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // The last reference can be dropped by a block on the background queue itself (a flush or checkpoint
        // that outlived every other holder): then nothing else is queued for this store, and waiting would
        // deadlock.
        if DispatchQueue.getSpecific(key: Self.backgroundKey) != ObjectIdentifier(self) { backgroundQueue.sync {} }
        readersClosed.store(true, ordering: .releasing)
        workerPools.withLock { pools in
            pools.readers?.stop()
            pools.writer?.stop()
        }
        armPool.withLock { $0?.stop() }
        try? flushUsage()  // the writer connection is still open
        readers.withLock { $0.removeAll() }
        writer.withLock { $0.connection = nil }
        catalog.withLock { $0.removeAll() }
        Self.releaseLock(lockKey)
    }

    /// Directories open in this process, with the one descriptor holding their POSIX lock (-1: none) and
    /// how many read-only stores share it (0: one read-write store). POSIX locks are per process and a
    /// close of any descriptor of the file drops them all, so the process holds one descriptor a directory
    /// for as long as any store of it is open.
    private struct OpenDirectory {
        var descriptor: Int32
        var readers: Int
    }
    private static let openHere = Locked<[String: OpenDirectory]>([:])

    /// Locks the store: in this process through `openHere`, against other processes with a POSIX lock on
    /// `LOCK` (per process, so a child forked elsewhere in the program never holds it by inheritance):
    /// exclusive to write; shared to read, and then no lock at all when there is no `LOCK` file and the
    /// directory cannot be written (a read-only mount, where no writer can open either).
    /// - Returns: the directory's key in `openHere`, for `releaseLock`.
    private static func acquireLock(_ directory: String, shared: Bool) throws(HybridStoreError) -> String {
        let path = directory + "/LOCK"
        let key = URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path
        let locked = HybridStoreError(
            .storeLocked,
            "the store at \(directory) is open elsewhere (in this or another process"
                + (shared ? ", for writing" : "") + "); close it first",
            context: ["path": directory])
        try openHere.withLock { (open: inout [String: OpenDirectory]) throws(HybridStoreError) in
            if let entry = open[key] {
                guard shared && entry.readers > 0 else { throw locked }
                open[key]!.readers += 1
                return
            }
            let fd =
                unsafe shared
                ? Glibc.open(path, O_RDONLY | O_CLOEXEC) : Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let reason = errno
                if unsafe shared && reason == ENOENT && access(directory, W_OK) != 0 {
                    open[key] = OpenDirectory(descriptor: -1, readers: 1)
                    return
                }
                if shared && reason == ENOENT {
                    throw HybridStoreError(
                        .notAStore, "no store at \(directory) (no LOCK file)", context: ["path": directory])
                }
                throw HybridStoreError(
                    .io, unsafe "cannot open \(path): \(String(cString: strerror(reason)))", context: ["path": path])
            }
            let rc = hs_lock_file_as(fd, shared ? 1 : 0)
            if rc != 0 {
                Glibc.close(fd)
                if rc == EAGAIN || rc == EACCES { throw locked }
                throw HybridStoreError(
                    .io, unsafe "cannot lock \(path): \(String(cString: strerror(rc)))", context: ["path": directory])
            }
            open[key] = OpenDirectory(descriptor: fd, readers: shared ? 1 : 0)
        }
        return key
    }

    /// Releases this store's share of its directory's lock (the lock itself with the last store).
    private static func releaseLock(_ key: String) {
        openHere.withLock { open in
            guard let entry = open[key] else { return }
            if entry.readers > 1 {
                open[key]!.readers -= 1
            } else {
                if entry.descriptor >= 0 { Glibc.close(entry.descriptor) }
                open[key] = nil
            }
        }
    }

    private func prepareCatalog(_ c: Connection, existed: Bool) throws(HybridStoreError) {
        try sqliteWork("opening \(databasePath)") {
            let hasCatalog = try c.statement(SQL.hasCatalog).scalar() == .integer(1)
            if hasCatalog {
                guard case .integer(let version)? = try c.statement(SQL.readMeta).scalar([.text("format_version")])
                else {
                    throw HybridStoreError(
                        .corruptFile, "\(databasePath) has no format version: not a HybridStore database")
                }
                guard version <= SQL.formatVersion else {
                    throw HybridStoreError(
                        .newerFormat,
                        "\(databasePath) has format \(version); this build reads up to \(SQL.formatVersion). Upgrade HybridStore.",
                        context: ["expected": "\(SQL.formatVersion)", "actual": "\(version)"])
                }
                if mode == .readWrite {
                    try c.execute(SQL.createTiering)
                    try c.execute(SQL.createTenancy)
                }
                return
            }
            if existed, case .integer(let n)? = try c.statement(SQL.tableCount).scalar(), n > 0 {
                throw HybridStoreError(.corruptFile, "\(databasePath) is an SQLite database but not a HybridStore one")
            }
            guard mode == .readWrite else {
                throw HybridStoreError(.notAStore, "\(databasePath) is an empty database, not a HybridStore store")
            }
            try c.transaction(immediate: true) {
                try c.execute(SQL.createCatalog)
                try c.statement(SQL.writeMeta).run([.text("format_version"), .integer(SQL.formatVersion)])
                try c.statement(SQL.writeMeta).run([.text("log_trimmed_through"), .integer(0)])
            }
        }
    }

    // MARK: - Connections

    /// Runs `body` with a reader connection from the pool (opened on demand).
    func withReader<R>(_ body: (Connection) throws -> R) throws(HybridStoreError) -> R {
        // A call racing with close() or after it: an error, not a crash. Background work queued before close (a
        // checkpoint) still reads while close waits for it.
        guard !readersClosed.load(ordering: .acquiring) else {
            throw HybridStoreError(.io, "the store at \(directory) is closed", context: ["path": directory])
        }
        let pooled = readers.withLock { $0.popLast() }
        let connection: Connection
        if let pooled {
            connection = pooled
        } else {
            connection = try sqliteWork("opening a reader on \(databasePath)") {
                try Connection(path: databasePath, create: false, readOnly: true, immutable: immutable)
            }
        }
        defer { readers.withLock { if $0.count < 16 { $0.append(connection) } } }
        return try sqliteWork("reading") { try body(connection) }
    }

    /// Statements started on all pooled reader connections so far (for tests of hydration).
    package var readerStatementsStarted: Int { readers.withLock { $0.reduce(0) { $0 + $1.statementsStarted } } }

    /// Runs `body` holding the writer connection.
    func withWriter<R>(_ body: (Connection, inout Int) throws -> R) throws -> R {
        guard mode == .readWrite else {
            throw HybridStoreError(
                .readOnly, "the store at \(directory) is open read-only", context: ["path": directory])
        }
        return try writer.withLock { state throws -> R in
            guard let connection = state.connection else {
                throw HybridStoreError(.io, "the store at \(directory) is closed", context: ["path": directory])
            }
            return try body(connection, &state.changesSinceCheckpoint)
        }
    }

    // MARK: - Collections

    func state(_ collection: CollectionRef) throws(HybridStoreError) -> CollectionState {
        guard let state = catalog.withLock({ $0[collection.name] }), state.number == collection.number else {
            throw HybridStoreError(
                .unknownCollection, "no collection `\(collection.name)` (dropped?)",
                context: ["collection": collection.name])
        }
        return state
    }

    /// The collection named `name`.
    /// - Throws: `unknownCollection`.
    public func collection(_ name: String) throws(HybridStoreError) -> CollectionRef {
        guard let state = catalog.withLock({ $0[name] }) else {
            throw HybridStoreError(
                .unknownCollection, "no collection `\(name)`; create it first", context: ["collection": name])
        }
        return state.handle
    }

    /// The schema of a collection. O(1); no I/O (`describe` also counts the rows, a scan).
    /// - Throws: `unknownCollection` (dropped, or of another store).
    public func schema(of collection: CollectionRef) throws(HybridStoreError) -> Schema {
        try state(collection).schema
    }

    /// The collection named `name`, created with `schema` when missing. An existing collection must have
    /// the same schema.
    /// - Throws: `invalidSchema` (bad schema, or an existing collection with another schema), `sqlite`.
    public func collection(_ name: String, creatingIfMissing schema: Schema) throws(HybridStoreError) -> CollectionRef {
        if let state = catalog.withLock({ $0[name] }) {
            guard state.schema == schema else {
                throw HybridStoreError(
                    .invalidSchema, "collection `\(name)` exists with another schema",
                    context: ["collection": name])
            }
            return state.handle
        }
        do {
            return try createCollection(name, schema: schema)
        } catch  where error.code == .collectionExists {
            return try collection(name, creatingIfMissing: schema)
        }
    }

    /// Creates a collection.
    /// - Throws: `collectionExists`, `invalidSchema` (bad name or schema), `sqlite`.
    /// - Complexity: O(1); one transaction.
    public func createCollection(_ name: String, schema: Schema) throws(HybridStoreError) -> CollectionRef {
        guard isValidName(name) else {
            throw HybridStoreError(
                .invalidSchema,
                "collection name `\(name)` must be 1–64 characters of letters, digits and _, not starting with a digit",
                context: ["collection": name])
        }
        try schema.validate()
        let schemaText = try schema.json()
        return try sqliteWork("creating collection `\(name)`") {
            try withWriter { c, _ in
                if catalog.withLock({ $0[name] }) != nil {
                    throw HybridStoreError(
                        .collectionExists, "collection `\(name)` already exists", context: ["collection": name])
                }
                let uuid = UUID().uuidString
                let number = try c.transaction(immediate: true) { () throws -> Int64 in
                    try c.statement(SQL.insertCollection).run([.text(name), .text(schemaText), .text(uuid)])
                    let number = c.lastInsertRowID
                    try c.execute(SQL.Table(number: number, schema: schema).create)
                    return number
                }
                let index = try HNSWIndex(parameters: schema.vector.hnswParameters)
                let state = CollectionState(number: number, name: name, schema: schema, uuid: uuid, index: index)
                catalog.withLock { $0[name] = state }
                return state.handle
            }
        }
    }

    /// Every collection, by name.
    public func collections() throws(HybridStoreError) -> [CollectionInfo] {
        let states = catalog.withLock { Array($0.values) }.sorted { $0.name < $1.name }
        var result: [CollectionInfo] = []
        for s in states { result.append(CollectionInfo(name: s.name, schema: s.schema, rows: try count(s.handle))) }
        return result
    }

    /// The schema and row count of one collection.
    /// - Throws: `unknownCollection`.
    public func describe(_ name: String) throws(HybridStoreError) -> CollectionInfo {
        let handle = try collection(name)
        let s = try state(handle)
        return CollectionInfo(name: name, schema: s.schema, rows: try count(handle))
    }

    /// Drops a collection: its rows, change log and snapshot, in one transaction. With a tenant column, its
    /// rows come off their tenants' stored rows and bytes in the same transaction (their quotas and written
    /// totals stay).
    /// - Throws: `unknownCollection`, `sqlite`.
    public func dropCollection(_ name: String) throws(HybridStoreError) {
        let s = try state(try collection(name))
        try sqliteWork("dropping collection `\(name)`") {
            try withWriter { c, _ in
                try c.transaction(immediate: true) {
                    if s.schema.tenantColumn != nil {
                        try foldUsageLog(c)
                        let totals = try c.prepareOnce(s.table.tenantTotals)
                        var rows: [(Value, [Int64])] = []
                        while try totals.step() {
                            rows.append((totals.column(0), (1...4).map { totals.int64(Int32($0)) }))
                        }
                        for (name, t) in rows {
                            try c.statement(SQL.uncountTenant).run([name] + t.map { .integer($0) })
                        }
                    }
                    try c.statement(SQL.deleteCollection).run([.integer(s.number)])
                    try c.statement(SQL.deleteCollectionChanges).run([.integer(s.number)])
                    try c.statement(SQL.dropColdBlocks).run([.integer(s.number)])
                    try c.statement(SQL.dropColdRows).run([.integer(s.number)])
                    try c.execute(s.table.drop)
                }
                c.evictStatements(containing: s.table.name)
                if s.schema.tenantColumn != nil { try loadQuotas(c) }
                catalog.withLock { $0[name] = nil }
                unsafe unlink(snapshotPath(s))
            }
        }
    }

    func snapshotPath(_ state: CollectionState) -> String { directory + "/index-\(state.uuid).hsnap" }
}
