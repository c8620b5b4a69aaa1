import CSQLite

/// A failed SQLite call: the extended result code, SQLite's message, and the SQL (never the bound values).
package struct SQLiteError: Error, Sendable, CustomStringConvertible {
    package var code: Int32
    package var message: String
    package var sql: String?

    package var primaryCode: Int32 { code & 0xFF }
    package var isCorrupt: Bool { primaryCode == SQLITE_CORRUPT || primaryCode == SQLITE_NOTADB }

    package var description: String {
        // The statement's start only: a compiled filter's SQL can run to many kilobytes.
        "SQLite error \(code): \(message)" + (sql.map { " in `\($0.count > 160 ? $0.prefix(160) + "…" : $0)`" } ?? "")
    }
}
