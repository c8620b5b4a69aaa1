@_exported import HNSW
@_exported import QueryPlanner
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
/// let store = try HybridStore(directory: "/var/lib/rag")
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
    private let lockDescriptor: Int32
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
    let backgroundError = Locked<HybridStoreError?>(nil)
    /// One background recall check at a time, and when the last one started.
    let recallCheck = Locked<(inFlight: Bool, lastNanos: UInt64)>((false, 0))
    /// Query metering and query quotas of tenants (see `TenantScope`).
    let meter = Locked(Meter())

    struct WriterState: ~Copyable {
        var connection: Connection?
        var changesSinceCheckpoint = 0
        var checkpointScheduled = false
    }

    /// Opens the store in `directory`, creating it when missing (see `Configuration.createIfMissing`),
    /// and brings every collection's index in line with the database (load snapshot, replay the change
    /// log after it, or rebuild).
    /// - Throws: `storeLocked` (open elsewhere, in this or another process), `newerFormat`, `corruptFile`
    ///   (not a HybridStore database, or damaged), `io`, `sqlite`.
    public init(directory: String, configuration: Configuration = Configuration()) throws(HybridStoreError) {
        self.directory = directory
        self.configuration = configuration
        self.databasePath = directory + "/store.sqlite"
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard configuration.createIfMissing else {
                throw HybridStoreError(.io, "no store at \(directory)", context: ["path": directory])
            }
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw HybridStoreError(.io, "cannot create \(directory): \(error.localizedDescription)", context: ["path": directory])
            }
        } else if !isDirectory.boolValue {
            throw HybridStoreError(.io, "\(directory) is not a directory", context: ["path": directory])
        }
        let (lockFD, key) = try Self.acquireLock(directory)
        lockDescriptor = lockFD
        lockKey = key
        let existed = FileManager.default.fileExists(atPath: databasePath)
        let connection: Connection
        do {
            connection = try Connection(path: databasePath, create: true,
                                        synchronousFull: configuration.synchronousCommits)
        } catch {
            Glibc.close(lockFD)
            Self.openHere.withLock { _ = $0.remove(key) }
            throw HybridStoreError(error, while: "opening \(databasePath)")
        }
        writer = Mutex(WriterState(connection: connection))
        backgroundQueue.setSpecific(key: Self.backgroundKey, value: ObjectIdentifier(self))
        do throws(HybridStoreError) {
            try prepareCatalog(connection, existed: existed)
            try recoverAll(connection)
            try loadQuotas(connection)
            try loadCalibrations(connection)
        } catch {
            shutdown()
            throw error
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
        try? flushUsage()  // the writer connection is still open
        readers.withLock { $0.removeAll() }
        writer.withLock { $0.connection = nil }
        catalog.withLock { $0.removeAll() }
        Glibc.close(lockDescriptor)
        Self.openHere.withLock { _ = $0.remove(lockKey) }
    }

    /// Directories open in this process (POSIX file locks are per process, so they cannot see these).
    private static let openHere = Locked<Set<String>>([])

    /// Locks the store: in this process through `openHere`, against other processes with a POSIX lock on
    /// `LOCK` (per process, so a child forked elsewhere in the program never holds it by inheritance).
    private static func acquireLock(_ directory: String) throws(HybridStoreError) -> (Int32, String) {
        let path = directory + "/LOCK"
        let key = URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path
        let locked = HybridStoreError(.storeLocked,
                                      "the store at \(directory) is open elsewhere (in this or another process); close it first",
                                      context: ["path": directory])
        guard openHere.withLock({ $0.insert(key).inserted }) else { throw locked }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            openHere.withLock { _ = $0.remove(key) }
            throw HybridStoreError(.io, "cannot open \(path): \(String(cString: strerror(errno)))", context: ["path": path])
        }
        let rc = hs_lock_file(fd)
        if rc != 0 {
            Glibc.close(fd)
            openHere.withLock { _ = $0.remove(key) }
            if rc == EAGAIN || rc == EACCES { throw locked }
            throw HybridStoreError(.io, "cannot lock \(path): \(String(cString: strerror(rc)))", context: ["path": directory])
        }
        return (fd, key)
    }

    private func prepareCatalog(_ c: Connection, existed: Bool) throws(HybridStoreError) {
        try sqliteWork("opening \(databasePath)") {
            let hasCatalog = try c.statement(SQL.hasCatalog).scalar() == .integer(1)
            if hasCatalog {
                guard case .integer(let version)? = try c.statement(SQL.readMeta).scalar([.text("format_version")]) else {
                    throw HybridStoreError(.corruptFile, "\(databasePath) has no format version: not a HybridStore database")
                }
                guard version <= SQL.formatVersion else {
                    throw HybridStoreError(.newerFormat,
                                           "\(databasePath) has format \(version); this build reads up to \(SQL.formatVersion). Upgrade HybridStore.",
                                           context: ["expected": "\(SQL.formatVersion)", "actual": "\(version)"])
                }
                try c.execute(SQL.createTiering)
                try c.execute(SQL.createTenancy)
                return
            }
            if existed, case .integer(let n)? = try c.statement(SQL.tableCount).scalar(), n > 0 {
                throw HybridStoreError(.corruptFile, "\(databasePath) is an SQLite database but not a HybridStore one")
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
        // Background work (a checkpoint) can race with close(): an error, not a crash.
        guard !closed.load(ordering: .acquiring) else {
            throw HybridStoreError(.io, "the store at \(directory) is closed", context: ["path": directory])
        }
        let pooled = readers.withLock { $0.popLast() }
        let connection: Connection
        if let pooled {
            connection = pooled
        } else {
            connection = try sqliteWork("opening a reader on \(databasePath)") {
                try Connection(path: databasePath, create: false, readOnly: true)
            }
        }
        defer { readers.withLock { if $0.count < 16 { $0.append(connection) } } }
        return try sqliteWork("reading") { try body(connection) }
    }

    /// Statements started on all pooled reader connections so far (for tests of hydration).
    package var readerStatementsStarted: Int { readers.withLock { $0.reduce(0) { $0 + $1.statementsStarted } } }

    /// Runs `body` holding the writer connection.
    func withWriter<R>(_ body: (Connection, inout Int) throws -> R) throws -> R {
        try writer.withLock { state throws -> R in
            guard let connection = state.connection else {
                throw HybridStoreError(.io, "the store at \(directory) is closed", context: ["path": directory])
            }
            return try body(connection, &state.changesSinceCheckpoint)
        }
    }

    // MARK: - Collections

    func state(_ collection: Collection) throws(HybridStoreError) -> CollectionState {
        guard let state = catalog.withLock({ $0[collection.name] }), state.number == collection.number else {
            throw HybridStoreError(.unknownCollection, "no collection `\(collection.name)` (dropped?)",
                                   context: ["collection": collection.name])
        }
        return state
    }

    /// The collection named `name`.
    /// - Throws: `unknownCollection`.
    public func collection(_ name: String) throws(HybridStoreError) -> Collection {
        guard let state = catalog.withLock({ $0[name] }) else {
            throw HybridStoreError(.unknownCollection, "no collection `\(name)`; create it first", context: ["collection": name])
        }
        return state.handle
    }

    /// The collection named `name`, created with `schema` when missing. An existing collection must have
    /// the same schema.
    /// - Throws: `invalidSchema` (bad schema, or an existing collection with another schema), `sqlite`.
    public func collection(_ name: String, creatingIfMissing schema: Schema) throws(HybridStoreError) -> Collection {
        if let state = catalog.withLock({ $0[name] }) {
            guard state.schema == schema else {
                throw HybridStoreError(.invalidSchema, "collection `\(name)` exists with another schema",
                                       context: ["collection": name])
            }
            return state.handle
        }
        do {
            return try createCollection(name, schema: schema)
        } catch where error.code == .collectionExists {
            return try collection(name, creatingIfMissing: schema)
        }
    }

    /// Creates a collection.
    /// - Throws: `collectionExists`, `invalidSchema` (bad name or schema), `sqlite`.
    /// - Complexity: O(1); one transaction.
    public func createCollection(_ name: String, schema: Schema) throws(HybridStoreError) -> Collection {
        guard isValidName(name) else {
            throw HybridStoreError(.invalidSchema, "collection name `\(name)` must be 1–64 characters of letters, digits and _, not starting with a digit",
                                   context: ["collection": name])
        }
        try schema.validate()
        let schemaText: String
        do {
            schemaText = String(decoding: try JSONEncoder().encode(schema), as: UTF8.self)
        } catch {
            throw HybridStoreError(.invalidSchema, "cannot encode schema: \(error)")
        }
        return try sqliteWork("creating collection `\(name)`") {
            try withWriter { c, _ in
                if catalog.withLock({ $0[name] }) != nil {
                    throw HybridStoreError(.collectionExists, "collection `\(name)` already exists", context: ["collection": name])
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
                        while try totals.step() { rows.append((totals.column(0), (1...4).map { totals.int64(Int32($0)) })) }
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
                unlink(snapshotPath(s))
            }
        }
    }

    func snapshotPath(_ state: CollectionState) -> String { directory + "/index-\(state.uuid).hsnap" }
}

