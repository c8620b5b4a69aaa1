import CSQLite

/// Reads one BLOB column of one table, row after row by rowid, into memory it keeps: `sqlite3_blob_open` for
/// the first row, `sqlite3_blob_reopen` for the next (no statement step, no allocation per row; SQLite's
/// `column_blob` allocates and copies any value that spills onto overflow pages). Lives inside one read
/// transaction on its connection: `close()` it before that transaction ends. Not thread-safe.
// SAFETY: `buffer` is owned, grown before every write that needs more, freed in deinit; the pointer `read`
// returns is valid until the next `read` or deinit.
@safe package final class BlobReader {
    private unowned let connection: Connection
    private let table: String
    private let column: String
    private var handle: OpaquePointer?
    private var count = 0
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)

    /// `table` and `column` are names fixed in code, never user text.
    package init(_ connection: Connection, table: String, column: String) {
        self.connection = connection
        self.table = table
        self.column = column
    }

    deinit {
        close()
        unsafe buffer.deallocate()
    }

    /// The value of `row`, valid until the next call. Nil when SQLite reports a plain `SQLITE_ERROR` for it
    /// (no such row, or a NULL or number): the caller learns which through a statement.
    /// - Throws: any other SQLite error (I/O, corruption).
    package func read(_ row: Int64) throws(SQLiteError) -> UnsafeRawBufferPointer? {
        guard let count = try seek(row) else { return nil }
        try load(0..<count)
        return unsafe value
    }

    /// Moves to `row` and returns its value's size, reading none of it (see `load`). Nil as for `read`.
    package func seek(_ row: Int64) throws(SQLiteError) -> Int? {
        let rc: Int32
        if let handle = unsafe handle {
            rc = unsafe sqlite3_blob_reopen(handle, row)
        } else {
            var opened: OpaquePointer?
            rc = unsafe sqlite3_blob_open(connection.handle, "main", table, column, row, 0, &opened)
            unsafe handle = unsafe opened
        }
        guard rc == SQLITE_OK, let handle = unsafe handle else {
            let error = connection.error(rc, sql: nil)
            close()  // a handle whose reopen failed is aborted: start afresh next time
            count = 0
            if error.primaryCode == SQLITE_ERROR { return nil }
            throw error
        }
        count = unsafe Int(sqlite3_blob_bytes(handle))
        if unsafe buffer.count < count {
            unsafe buffer.deallocate()
            unsafe buffer = unsafe .allocate(byteCount: max(count, 2 * buffer.count), alignment: 16)
        }
        return count
    }

    /// Copies bytes `range` of the current value (clamped to it) into `value` at the same offsets: a caller
    /// that needs only parts of a large value (a block's header and some of its frames) reads only those.
    package func load(_ range: Range<Int>) throws(SQLiteError) {
        let range = range.clamped(to: 0..<count)
        guard let handle = unsafe handle, !range.isEmpty else { return }
        let rc = unsafe sqlite3_blob_read(
            handle, buffer.baseAddress! + range.lowerBound, Int32(range.count), Int32(range.lowerBound))
        guard rc == SQLITE_OK else {
            let error = connection.error(rc, sql: nil)
            close()
            throw error
        }
    }

    /// The current value's bytes: those of the ranges loaded since `seek`; the rest are unspecified.
    package var value: UnsafeRawBufferPointer { unsafe UnsafeRawBufferPointer(rebasing: buffer[0..<count]) }

    package func close() {
        if let handle = unsafe handle { unsafe sqlite3_blob_close(handle) }
        unsafe handle = nil
    }
}
