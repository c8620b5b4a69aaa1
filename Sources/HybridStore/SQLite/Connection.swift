import CSQLite
import CTextRank
import Foundation

/// One SQLite connection. Not thread-safe: the store hands each connection to one thread at a time (the
/// writer under its mutex, readers through a pool). This folder is the only place that calls `sqlite3_*`.
// @safe: owns its SQLite handle (closed in deinit) and lends it to its statements only.
@safe package final class Connection {
    package let handle: OpaquePointer
    private var cache: [String: Statement] = [:]
    /// FTS5 tokenizers made on this connection, by `tokenize` option; closed before the connection.
    private var tokenizers: [String: OpaquePointer] = unsafe [:]
    /// Statements started on this connection (counted by an SQLite trace hook; tests assert on it).
    package private(set) var statementsStarted = 0

    /// Opens (creating when `create`) the database at `path` in WAL mode with extended result codes.
    /// `immutable`: the database cannot change while open (a read-only store whose write-ahead log is empty,
    /// under a shared lock that keeps writers out): SQLite then takes no locks and needs no `-shm` file.
    package init(
        path: String, create: Bool, readOnly: Bool = false, immutable: Bool = false,
        synchronousFull: Bool = true
    ) throws(SQLiteError) {
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0))
        var target = path
        if immutable {
            flags |= SQLITE_OPEN_URI
            target =
                "file:"
                + (path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["?", "#"])) ?? path)
                + "?immutable=1"
        }
        let rc = unsafe sqlite3_open_v2(target, &db, flags, nil)
        guard rc == SQLITE_OK, let db = unsafe db else {
            let message = unsafe db.map { unsafe String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db = unsafe db { unsafe sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: message, sql: nil)
        }
        unsafe handle = unsafe db
        unsafe sqlite3_trace_v2(
            db, UInt32(SQLITE_TRACE_STMT),
            { _, context, _, _ in
                // SAFETY: the context is this connection, which outlives its handle (closed in deinit).
                unsafe Unmanaged<Connection>.fromOpaque(context!).takeUnretainedValue().statementsStarted += 1
                return 0
            }, unsafe Unmanaged.passUnretained(self).toOpaque())
        unsafe sqlite3_extended_result_codes(db, 1)
        unsafe sqlite3_busy_timeout(db, 10_000)
        do throws(SQLiteError) {
            // Reading the schema first turns a foreign or corrupt file into an error here, not later.
            try execute("SELECT count(*) FROM sqlite_schema")
            if !readOnly {
                try execute("PRAGMA journal_mode = WAL")
                try execute(synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            }
            try execute("PRAGMA foreign_keys = ON")
            // Memory-mapped reads: cold blocks (~1 MB blobs) are read without copying through read(2).
            try execute("PRAGMA mmap_size = 1073741824")
            // Keyword ranking under a scope's own statistics (see CTextRank).
            let rc = unsafe hs_register_text_rank(db)
            guard rc == SQLITE_OK else {
                throw SQLiteError(code: rc, message: "this SQLite has no FTS5: keyword search needs it", sql: nil)
            }
        } catch {
            cache.removeAll()
            unsafe sqlite3_close_v2(db)
            throw error
        }
    }

    deinit {
        cache.removeAll()  // finalize statements before closing
        unsafe tokenizers.values.forEach { unsafe hs_tokenizer_close($0) }
        unsafe sqlite3_close_v2(handle)
    }

    /// Runs SQL without results (may hold several statements). For fixed SQL only: nothing is bound.
    package func execute(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = unsafe sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message =
                unsafe errorMessage.map { unsafe String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            unsafe sqlite3_free(errorMessage)
            throw unsafe SQLiteError(code: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    /// A prepared statement for `sql`, prepared once and cached (SQLITE_PREPARE_PERSISTENT).
    package func statement(_ sql: String) throws(SQLiteError) -> Statement {
        if let cached = cache[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(connection: self, sql: sql, persistent: true)
        cache[sql] = statement
        return statement
    }

    /// Forgets cached statements whose SQL mentions `fragment` (after a table is dropped).
    package func evictStatements(containing fragment: String) {
        cache = cache.filter { !$0.key.contains(fragment) }
    }

    package func error(_ rc: Int32, sql: String?) -> SQLiteError {
        unsafe SQLiteError(
            code: rc == SQLITE_OK ? sqlite3_extended_errcode(handle) : rc,
            message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    package var changes: Int { unsafe Int(sqlite3_changes64(handle)) }
    package var isInTransaction: Bool { unsafe sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in one transaction: BEGIN IMMEDIATE (writers) or DEFERRED (readers), COMMIT on success,
    /// ROLLBACK when `body` throws.
    /// BEGIN and COMMIT are prepared once per connection (`sqlite3_exec` parses them on every call: ~1 µs
    /// each, and a query over both tiers runs one read transaction).
    /// A read (DEFERRED) inside an open transaction joins it: a pinned snapshot's reads stay in its state.
    package func transaction<R>(immediate: Bool, _ body: () throws -> R) throws -> R {
        if !immediate && isInTransaction { return try body() }
        try statement(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED").run()
        do {
            let result = try body()
            try statement("COMMIT").run()
            return result
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }
}

extension Connection {
    package var lastInsertRowID: Int64 { unsafe sqlite3_last_insert_rowid(handle) }
}

// SAFETY(@unchecked Sendable): a connection is opened with SQLITE_OPEN_NOMUTEX and used by one thread at a
// time: the writer inside the store's Mutex, readers borrowed from and returned to a lock-guarded pool.
extension Connection: @unchecked Sendable {}

extension Connection {
    /// Lends `body` this connection's FTS5 tokenizer for a `tokenize` option (as a collection's keyword index
    /// names it), made on first use and kept until the connection closes. Not to be kept past `body`.
    package func withTokenizer<R>(_ spec: String, _ body: (OpaquePointer) throws -> R) throws -> R {
        if let tokenizer = unsafe tokenizers[spec] { return try unsafe body(tokenizer) }
        var made: OpaquePointer? = nil
        let rc = unsafe hs_tokenizer_open(handle, spec, &made)
        guard rc == SQLITE_OK, let tokenizer = unsafe made else {
            throw SQLiteError(code: rc, message: "cannot make the FTS5 tokenizer `\(spec)`", sql: nil)
        }
        unsafe tokenizers[spec] = unsafe tokenizer
        return try unsafe body(tokenizer)
    }

    /// A statement prepared for one use (not cached): for SQL whose shape varies per call, such as a
    /// compiled filter condition.
    package func prepareOnce(_ sql: String) throws(SQLiteError) -> Statement {
        try Statement(connection: self, sql: sql, persistent: false)
    }
}
