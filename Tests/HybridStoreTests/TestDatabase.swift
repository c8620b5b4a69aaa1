import HybridStore

/// Direct SQLite access for tests that inspect or tamper with a store's database.
struct TestDatabase {
    let connection: Connection
    init(_ path: String) throws { connection = try Connection(path: path, create: true) }
    func execute(_ sql: String) throws { try connection.execute(sql) }
    func count(_ sql: String) throws -> Int {
        guard case .integer(let n)? = try connection.statement(sql).scalar() else { return -1 }
        return Int(n)
    }
}
