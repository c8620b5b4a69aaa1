import CSQLite
import QueryPlanner

/// A prepared statement. Finalized in deinit. Values are always bound, never spliced into SQL.
// @safe: owns its statement handle (finalized in deinit); values are copied out of SQLite before returning.
@safe package final class Statement {
    package let handle: OpaquePointer
    package let sql: String
    private unowned let connection: Connection

    init(connection: Connection, sql: String, persistent: Bool) throws(SQLiteError) {
        var statement: OpaquePointer?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let rc = unsafe sqlite3_prepare_v3(connection.handle, sql, -1, flags, &statement, nil)
        guard rc == SQLITE_OK, let statement = unsafe statement else { throw connection.error(rc, sql: sql) }
        unsafe self.handle = unsafe statement
        self.sql = sql
        self.connection = connection
    }

    deinit { unsafe sqlite3_finalize(handle) }

    package func reset() {
        unsafe sqlite3_reset(handle)
        unsafe sqlite3_clear_bindings(handle)
    }

    func check(_ rc: Int32) throws(SQLiteError) {
        if rc != SQLITE_OK { throw connection.error(rc, sql: sql) }
    }

    /// Binds a value at a 1-based index.
    package func bind(_ value: Value, at index: Int32) throws(SQLiteError) {
        switch value {
        case .null: unsafe try check(sqlite3_bind_null(handle, index))
        case .integer(let v): unsafe try check(sqlite3_bind_int64(handle, index, v))
        case .real(let v): unsafe try check(sqlite3_bind_double(handle, index, v))
        case .boolean(let v): unsafe try check(sqlite3_bind_int64(handle, index, v ? 1 : 0))
        case .text(let v):
            // By byte length, never as a C string: text holding NUL is stored whole, not cut at the NUL.
            var text = v
            let rc = text.withUTF8 { utf8 in
                unsafe sqlite3_bind_text64(
                    handle, index,
                    UnsafeRawPointer(utf8.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                        .assumingMemoryBound(to: CChar.self), sqlite3_uint64(utf8.count), hs_sqlite_transient(),
                    UInt8(SQLITE_UTF8))
            }
            try check(rc)
        case .blob(let bytes):
            let rc = unsafe bytes.withUnsafeBytes { raw in
                // SQLite treats a nil pointer as NULL; an empty blob needs a non-nil one (never read).
                unsafe sqlite3_bind_blob64(
                    handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                    sqlite3_uint64(raw.count), hs_sqlite_transient())
            }
            try check(rc)
        }
    }

    package func bind(_ values: [Value]) throws(SQLiteError) {
        try bind(values, from: 1)
    }

    /// Binds `values` to consecutive parameters starting at `first`.
    package func bind(_ values: [Value], from first: Int32) throws(SQLiteError) {
        for (i, v) in values.enumerated() { try bind(v, at: first + Int32(i)) }
    }

    /// Binds float32 components as a little-endian blob (copied by SQLite).
    package func bind(floats: UnsafeBufferPointer<Float>, at index: Int32) throws(SQLiteError) {
        unsafe try check(
            sqlite3_bind_blob64(
                handle, index, UnsafeRawPointer(floats.baseAddress) ?? UnsafeRawPointer(bitPattern: 1),
                sqlite3_uint64(floats.count * 4), hs_sqlite_transient()))
    }

    /// Steps once; true when a row is available.
    @discardableResult
    package func step() throws(SQLiteError) -> Bool {
        let rc = unsafe sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw connection.error(rc, sql: sql)
    }

    /// Binds, runs to completion, resets.
    package func run(_ values: [Value] = []) throws(SQLiteError) {
        reset()
        try bind(values)
        while try step() {}
        reset()
    }

    /// Binds and returns the first column of the first row, if any.
    package func scalar(_ values: [Value] = []) throws(SQLiteError) -> Value? {
        reset()
        try bind(values)
        defer { reset() }
        return try step() ? column(0) : nil
    }

    package func column(_ i: Int32) -> Value {
        switch unsafe sqlite3_column_type(handle, i) {
        case SQLITE_INTEGER: return unsafe .integer(sqlite3_column_int64(handle, i))
        case SQLITE_FLOAT: return unsafe .real(sqlite3_column_double(handle, i))
        case SQLITE_TEXT:
            // By byte length (text may hold NUL): the pointer is read before the length, as SQLite documents.
            guard let p = unsafe sqlite3_column_text(handle, i) else { return .text("") }
            let n = unsafe Int(sqlite3_column_bytes(handle, i))
            return unsafe .text(String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self))
        case SQLITE_BLOB:
            let n = unsafe Int(sqlite3_column_bytes(handle, i))
            guard n > 0, let p = unsafe sqlite3_column_blob(handle, i) else { return .blob([]) }
            return unsafe .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
        default: return .null
        }
    }

    package func int64(_ i: Int32) -> Int64 { unsafe sqlite3_column_int64(handle, i) }

    /// Lends the column's blob bytes without copying; valid only inside `body`.
    package func withBlob<R>(_ i: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let n = unsafe Int(sqlite3_column_bytes(handle, i))
        return unsafe try body(UnsafeRawBufferPointer(start: sqlite3_column_blob(handle, i), count: n))
    }
}
