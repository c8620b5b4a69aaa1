// Every SQL statement the store runs. Fixed statements are constants; per-collection statements are built
// only from numbers the store assigns (table `hs_rows_<number>`, columns `c<position>`), never from names
// or values a user wrote. User values are always bound.

enum SQL {
    static let formatVersion: Int64 = 1

    static let createCatalog = """
        CREATE TABLE IF NOT EXISTS hs_meta(key TEXT PRIMARY KEY, value ANY) STRICT;
        CREATE TABLE IF NOT EXISTS hs_collections(
            number INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            schema TEXT NOT NULL,
            uuid TEXT NOT NULL,
            snapshot_seq INTEGER NOT NULL DEFAULT 0) STRICT;
        CREATE TABLE IF NOT EXISTS hs_changes(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            collection INTEGER NOT NULL,
            row INTEGER NOT NULL,
            op INTEGER NOT NULL) STRICT;
        CREATE INDEX IF NOT EXISTS hs_changes_by_collection ON hs_changes(collection, seq);
        """ + createTiering + createTenancy

    /// Tenants (run on every open, like `createTiering`): one row per tenant with its quotas, its stored rows
    /// and bytes per tier, and running totals; `hs_usage` holds the metered flows per time bucket.
    static let createTenancy = """
        CREATE TABLE IF NOT EXISTS hs_tenants(
            name TEXT PRIMARY KEY,
            max_rows INTEGER, max_bytes INTEGER, max_queries INTEGER, query_period INTEGER,
            hot_rows INTEGER NOT NULL DEFAULT 0, hot_bytes INTEGER NOT NULL DEFAULT 0,
            cold_rows INTEGER NOT NULL DEFAULT 0, cold_bytes INTEGER NOT NULL DEFAULT 0,
            rows_written INTEGER NOT NULL DEFAULT 0, rows_deleted INTEGER NOT NULL DEFAULT 0,
            bytes_written INTEGER NOT NULL DEFAULT 0, queries INTEGER NOT NULL DEFAULT 0,
            vectors_scored INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT, WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS hs_usage(
            tenant TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            rows_written INTEGER NOT NULL DEFAULT 0, rows_deleted INTEGER NOT NULL DEFAULT 0,
            bytes_written INTEGER NOT NULL DEFAULT 0, queries INTEGER NOT NULL DEFAULT 0,
            vectors_scored INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, bucket)) STRICT, WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS hs_usage_by_bucket ON hs_usage(bucket);
        CREATE TABLE IF NOT EXISTS hs_usage_log(
            seq INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL, bucket INTEGER NOT NULL,
            hot_rows INTEGER NOT NULL, hot_bytes INTEGER NOT NULL, cold_rows INTEGER NOT NULL, cold_bytes INTEGER NOT NULL,
            rows_written INTEGER NOT NULL, rows_deleted INTEGER NOT NULL, bytes_written INTEGER NOT NULL) STRICT;
        CREATE TABLE IF NOT EXISTS hs_query_windows(
            tenant TEXT PRIMARY KEY, start INTEGER NOT NULL, count INTEGER NOT NULL) STRICT, WITHOUT ROWID;
        """
    /// A write's usage deltas for one tenant, appended in the write's transaction (sequential: no random page
    /// writes per tenant). `?1` tenant, `?2` bucket, `?3…?6` hot rows, hot bytes, cold rows, cold bytes,
    /// `?7…?9` rows written, deleted, bytes written.
    static let appendUsage = """
        INSERT INTO hs_usage_log(tenant, bucket, hot_rows, hot_bytes, cold_rows, cold_bytes, rows_written, rows_deleted, \
        bytes_written) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        """
    static let usageLogCount = "SELECT count(*) FROM hs_usage_log"
    /// Folds the log into the tenants' rows (creating tenants first seen in it); `?1` now.
    static let foldTenants = """
        INSERT INTO hs_tenants(name, hot_rows, hot_bytes, cold_rows, cold_bytes, rows_written, rows_deleted, bytes_written, \
        created_at, updated_at) \
        SELECT tenant, sum(hot_rows), sum(hot_bytes), sum(cold_rows), sum(cold_bytes), sum(rows_written), \
        sum(rows_deleted), sum(bytes_written), ?1, ?1 FROM hs_usage_log WHERE true GROUP BY tenant \
        ON CONFLICT(name) DO UPDATE SET hot_rows = hot_rows + excluded.hot_rows, hot_bytes = hot_bytes + excluded.hot_bytes, \
        cold_rows = cold_rows + excluded.cold_rows, cold_bytes = cold_bytes + excluded.cold_bytes, \
        rows_written = rows_written + excluded.rows_written, rows_deleted = rows_deleted + excluded.rows_deleted, \
        bytes_written = bytes_written + excluded.bytes_written, updated_at = excluded.updated_at
        """
    /// Folds the log's flows into the usage buckets.
    static let foldUsage = """
        INSERT INTO hs_usage(tenant, bucket, rows_written, rows_deleted, bytes_written, queries, vectors_scored) \
        SELECT tenant, bucket, sum(rows_written), sum(rows_deleted), sum(bytes_written), 0, 0 FROM hs_usage_log \
        WHERE rows_written != 0 OR rows_deleted != 0 OR bytes_written != 0 GROUP BY tenant, bucket \
        ON CONFLICT(tenant, bucket) DO UPDATE SET rows_written = rows_written + excluded.rows_written, \
        rows_deleted = rows_deleted + excluded.rows_deleted, bytes_written = bytes_written + excluded.bytes_written
        """
    static let clearUsageLog = "DELETE FROM hs_usage_log"
    static let tenantColumns = """
        name, max_rows, max_bytes, max_queries, query_period, hot_rows, hot_bytes, cold_rows, cold_bytes, \
        rows_written, rows_deleted, bytes_written, queries, vectors_scored, created_at, updated_at
        """
    /// Adds flows to a tenant's usage bucket: `?1` tenant, `?2` bucket, `?3…?7` rows written, rows deleted,
    /// bytes written, queries, vectors scored.
    static let chargeUsage = """
        INSERT INTO hs_usage(tenant, bucket, rows_written, rows_deleted, bytes_written, queries, vectors_scored) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        ON CONFLICT(tenant, bucket) DO UPDATE SET rows_written = rows_written + ?3, rows_deleted = rows_deleted + ?4, \
        bytes_written = bytes_written + ?5, queries = queries + ?6, vectors_scored = vectors_scored + ?7
        """
    /// Adds metered queries to a tenant's totals (`?1` name, `?2` queries, `?3` vectors scored, `?4` now);
    /// only for tenants that exist (a dropped tenant's last queries are not resurrected).
    static let chargeQueries = """
        UPDATE hs_tenants SET queries = queries + ?2, vectors_scored = vectors_scored + ?3, updated_at = ?4 WHERE name = ?1
        """
    static let createTenant = """
        INSERT INTO hs_tenants(name, max_rows, max_bytes, max_queries, query_period, created_at, updated_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(name) DO NOTHING
        """
    static let setQuota = """
        INSERT INTO hs_tenants(name, max_rows, max_bytes, max_queries, query_period, created_at, updated_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
        ON CONFLICT(name) DO UPDATE SET max_rows = ?2, max_bytes = ?3, max_queries = ?4, query_period = ?5, updated_at = ?6
        """
    static let tenantByName = "SELECT \(tenantColumns) FROM hs_tenants WHERE name = ?1"
    static let allTenants = "SELECT \(tenantColumns) FROM hs_tenants ORDER BY name"
    static let tenantsWithQuotas = """
        SELECT name, max_queries, query_period, max_rows, max_bytes, hot_rows + cold_rows, hot_bytes + cold_bytes \
        FROM hs_tenants WHERE max_queries IS NOT NULL OR max_rows IS NOT NULL OR max_bytes IS NOT NULL
        """
    /// Flows per tenant in buckets from `?1` on.
    static let usageSince = """
        SELECT tenant, sum(rows_written), sum(rows_deleted), sum(bytes_written), sum(queries), sum(vectors_scored) \
        FROM hs_usage WHERE bucket >= ?1 GROUP BY tenant ORDER BY tenant
        """
    static let usageOfOneSince = """
        SELECT tenant, sum(rows_written), sum(rows_deleted), sum(bytes_written), sum(queries), sum(vectors_scored) \
        FROM hs_usage WHERE bucket >= ?1 AND tenant = ?2 GROUP BY tenant
        """
    /// Takes a dropped collection's rows off a tenant: `?1` name, `?2…?5` hot rows, hot bytes, cold rows, cold bytes.
    static let uncountTenant = """
        UPDATE hs_tenants SET hot_rows = hot_rows - ?2, hot_bytes = hot_bytes - ?3, cold_rows = cold_rows - ?4, \
        cold_bytes = cold_bytes - ?5 WHERE name = ?1
        """
    static let deleteTenant = "DELETE FROM hs_tenants WHERE name = ?1"
    static let deleteTenantUsage = "DELETE FROM hs_usage WHERE tenant = ?1"
    /// A tenant's query-quota window (`?1` tenant, `?2` start, `?3` queries counted in it), persisted with the
    /// usage flush so a quota holds across processes and restarts.
    static let saveQueryWindow = """
        INSERT INTO hs_query_windows(tenant, start, count) VALUES (?1, ?2, ?3) \
        ON CONFLICT(tenant) DO UPDATE SET start = excluded.start, count = excluded.count
        """
    static let queryWindows = "SELECT tenant, start, count FROM hs_query_windows"
    static let deleteQueryWindow = "DELETE FROM hs_query_windows WHERE tenant = ?1"
    static let tenantCount = "SELECT count(*) FROM hs_tenants"

    /// Cold storage (run on every open: stores created before tiering get the tables too).
    static let createTiering = """
        CREATE TABLE IF NOT EXISTS hs_cold_blocks(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection INTEGER NOT NULL,
            centroid BLOB NOT NULL,
            radius REAL NOT NULL,
            rows INTEGER NOT NULL,
            data BLOB NOT NULL) STRICT;
        CREATE INDEX IF NOT EXISTS hs_cold_blocks_by_collection ON hs_cold_blocks(collection);
        CREATE TABLE IF NOT EXISTS hs_cold_rows(
            collection INTEGER NOT NULL,
            row INTEGER NOT NULL,
            block INTEGER NOT NULL,
            PRIMARY KEY (collection, row)) STRICT, WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS hs_cold_rows_by_block ON hs_cold_rows(collection, block);
        """
    static let coldSummaries = "SELECT id, centroid, radius, rows FROM hs_cold_blocks WHERE collection = ?1 ORDER BY id"
    static let insertColdBlock =
        "INSERT INTO hs_cold_blocks(collection, centroid, radius, rows, data) VALUES (?1, ?2, ?3, ?4, ?5)"
    static let coldBlockData = "SELECT data FROM hs_cold_blocks WHERE id = ?1"
    static let updateColdBlock =
        "UPDATE hs_cold_blocks SET centroid = ?2, radius = ?3, rows = ?4, data = ?5 WHERE id = ?1"
    static let deleteColdBlock = "DELETE FROM hs_cold_blocks WHERE id = ?1"
    static let insertColdRow = "INSERT INTO hs_cold_rows(collection, row, block) VALUES (?1, ?2, ?3)"
    static let deleteColdRow = "DELETE FROM hs_cold_rows WHERE collection = ?1 AND row = ?2 RETURNING block"
    static let coldBlockOfRow = "SELECT block FROM hs_cold_rows WHERE collection = ?1 AND row = ?2"
    static let moveColdRow = "UPDATE hs_cold_rows SET block = ?3 WHERE collection = ?1 AND row = ?2"
    static let coldRowsOfBlock = "SELECT row FROM hs_cold_rows WHERE collection = ?1 AND block = ?2"
    static let coldRowCount = "SELECT count(*) FROM hs_cold_rows WHERE collection = ?1"
    static let coldRowsOfCollection = "SELECT row, block FROM hs_cold_rows WHERE collection = ?1"
    static let checkpointWAL = "PRAGMA wal_checkpoint(PASSIVE)"
    static let coldBytes = "SELECT coalesce(sum(length(data)), 0) FROM hs_cold_blocks WHERE collection = ?1"
    static let dropColdBlocks = "DELETE FROM hs_cold_blocks WHERE collection = ?1"
    static let dropColdRows = "DELETE FROM hs_cold_rows WHERE collection = ?1"
    static let hasCatalog = "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'hs_meta'"
    static let tableCount = "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
    static let readMeta = "SELECT value FROM hs_meta WHERE key = ?1"
    static let writeMeta =
        "INSERT INTO hs_meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    static let listCollections = "SELECT number, name, schema, uuid, snapshot_seq FROM hs_collections ORDER BY number"
    static let insertCollection = "INSERT INTO hs_collections(name, schema, uuid) VALUES (?1, ?2, ?3)"
    static let deleteCollection = "DELETE FROM hs_collections WHERE number = ?1"
    static let setSchema = "UPDATE hs_collections SET schema = ?2 WHERE number = ?1"
    static let setSnapshotSeq = "UPDATE hs_collections SET snapshot_seq = ?2 WHERE number = ?1"
    static let appendChange = "INSERT INTO hs_changes(collection, row, op) VALUES (?1, ?2, ?3)"
    static let deleteCollectionChanges = "DELETE FROM hs_changes WHERE collection = ?1"
    static let trimChanges = "DELETE FROM hs_changes WHERE seq <= ?1"
    static let lastSeq = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'hs_changes'), 0)"
    /// Rows whose vector changed or which were deleted after a sequence number, each once.
    static let changedRows = """
        SELECT row FROM hs_changes WHERE collection = ?1 AND seq > ?2 AND op IN (1, 2) GROUP BY row ORDER BY max(seq)
        """

    /// Change-log operation codes.
    enum Op: Int64 {
        /// The row's vector was written (insert, upsert with a vector, a move to the hot tier).
        case vector = 1
        /// The row left the index (deleted, or moved to the cold tier).
        case delete = 2
        case values = 3
    }

    /// The statements of one collection, built from its number and schema.
    struct Table: Sendable {
        let number: Int64
        let schema: Schema
        var name: String { "hs_rows_\(number)" }

        func columnName(_ position: Int) -> String { "c\(position)" }

        var create: String {
            let idType = schema.id == .integer ? "INTEGER" : "TEXT"
            var parts = [
                "row INTEGER PRIMARY KEY AUTOINCREMENT", "id \(idType) NOT NULL UNIQUE", "vector BLOB NOT NULL",
            ]
            for (i, c) in schema.columns.enumerated() {
                parts.append(
                    "\(columnName(i)) \(c.type == .boolean ? "INTEGER" : c.type.sqlType)\(c.nullable ? "" : " NOT NULL")"
                )
            }
            var sql = "CREATE TABLE \(name)(\(parts.joined(separator: ", "))) STRICT"
            if let tenant = schema.tenantPosition {
                sql += "; CREATE INDEX \(name)_tenant ON \(name)(\(columnName(tenant)))"
            }
            if let createText { sql += "; " + createText }
            return sql
        }
        var drop: String { "DROP TABLE IF EXISTS \(textName); DROP TABLE IF EXISTS \(name)" }

        // MARK: Keyword index

        /// The FTS5 index over the searchable columns: external content (the text lives once, in the rows
        /// table), the same column names, `rowid` = `row`.
        var textName: String { "hs_text_\(number)" }
        private var textColumns: [String] { schema.searchablePositions.map(columnName) }
        /// The keyword index and the triggers that keep it in the writing transaction (insert, delete, and an
        /// update of a searchable column; tier moves rewrite only `vector` and do not touch it). Nil without
        /// searchable columns.
        var createText: String? {
            let columns = textColumns
            guard !columns.isEmpty else { return nil }
            let list = columns.joined(separator: ", ")
            let new = columns.map { "new." + $0 }.joined(separator: ", ")
            let old = columns.map { "old." + $0 }.joined(separator: ", ")
            return """
                CREATE VIRTUAL TABLE \(textName) USING fts5(\(list), content='\(name)', content_rowid='row', \
                tokenize='\(schema.tokenizer.fts5Option)');
                CREATE TRIGGER \(textName)_insert AFTER INSERT ON \(name) BEGIN \
                INSERT INTO \(textName)(rowid, \(list)) VALUES (new.row, \(new)); END;
                CREATE TRIGGER \(textName)_delete AFTER DELETE ON \(name) BEGIN \
                INSERT INTO \(textName)(\(textName), rowid, \(list)) VALUES ('delete', old.row, \(old)); END;
                CREATE TRIGGER \(textName)_update AFTER UPDATE OF \(list) ON \(name) BEGIN \
                INSERT INTO \(textName)(\(textName), rowid, \(list)) VALUES ('delete', old.row, \(old)); \
                INSERT INTO \(textName)(rowid, \(list)) VALUES (new.row, \(new)); END
                """
        }
        /// Drops the keyword index and its triggers (before it is made anew with other columns).
        var dropText: String {
            """
            DROP TRIGGER IF EXISTS \(textName)_insert; DROP TRIGGER IF EXISTS \(textName)_delete; \
            DROP TRIGGER IF EXISTS \(textName)_update; DROP TABLE IF EXISTS \(textName)
            """
        }
        /// Indexes the rows with `row` in `?1...?2` (building the index of an existing collection in batches).
        var indexTextRange: String {
            "INSERT INTO \(textName)(rowid, \(textColumns.joined(separator: ", "))) SELECT row, \(textColumns.joined(separator: ", ")) FROM \(name) WHERE row BETWEEN ?1 AND ?2"
        }
        var maxRow: String { "SELECT coalesce(max(row), 0) FROM \(name)" }
        /// Rows numbered below ?1 (a long fill's progress).
        var rowsBelow: String { "SELECT count(*) FROM \(name) WHERE row < ?1" }
        /// Every row's number, id and vector, in row order (`verify`).
        var allRowsWithVectors: String { "SELECT row, id, vector FROM \(name) ORDER BY row" }
        /// The number and id of the rows matching a compiled condition, in row order.
        func rowsAndIDs(where condition: String) -> String {
            "SELECT row, id FROM \(name) WHERE \(condition) ORDER BY row"
        }
        /// A batch of up to ?2 rows numbered above ?1: number, id, the vector when asked, then the columns at
        /// `positions`.
        func rowsAfter(vector: Bool, positions: [Int]) -> String {
            "SELECT row, id" + (vector ? ", vector" : "") + positions.map { ", " + columnName($0) }.joined()
                + " FROM \(name) WHERE row > ?1 ORDER BY row LIMIT ?2"
        }
        /// FTS5's check of the index against the rows (an error when they disagree).
        var checkText: String { "INSERT INTO \(textName)(\(textName), rank) VALUES ('integrity-check', 1)" }
        /// Every row's token count, from the keyword index's size records.
        var textLengths: String { "SELECT id, hs_docsize_tokens(sz) FROM \(textName)_docsize" }
        /// One row's token count (`?1` the row).
        /// `row, text…` of every row: the searchable columns, in the keyword index's order.
        var searchableText: String { "SELECT row, \(textColumns.joined(separator: ", ")) FROM \(name)" }
        /// As `searchableText`, of the rows in the JSON array `?1`.
        var searchableTextOfRows: String {
            "SELECT row, \(textColumns.joined(separator: ", ")) FROM \(name) WHERE row IN (SELECT value FROM json_each(?1))"
        }
        /// FTS5's averages record: its rows and each column's tokens (see `fts5Totals`).
        var textTotals: String { "SELECT block FROM \(textName)_data WHERE id = 1" }
        var textLengthOfRow: String { "SELECT hs_docsize_tokens(sz) FROM \(textName)_docsize WHERE id = ?1" }
        /// The keyword index's triggers present (3 when whole).
        var textTriggerCount: String {
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '\(name)' AND name LIKE '\(textName)\\_%' ESCAPE '\\'"
        }
        /// Merges the keyword index's segments into one.
        var optimizeText: String { "INSERT INTO \(textName)(\(textName)) VALUES ('optimize')" }
        /// Rebuilds the index from the rows.
        var rebuildText: String { "INSERT INTO \(textName)(\(textName)) VALUES ('rebuild')" }
        /// Rows the index holds a size record for, and the rows of the collection (they must agree).
        var textRecordCount: String {
            "SELECT (SELECT count(*) FROM \(textName)_docsize), (SELECT count(*) FROM \(name))"
        }
        /// A scope's corpus statistics for BM25: its rows and their tokens (`?1` the tenant; tenant column).
        var tenantTextTotals: String {
            "SELECT count(*), total(hs_docsize_tokens(d.sz)) FROM \(name) t LEFT JOIN \(textName)_docsize d ON d.id = t.row WHERE t.\(columnName(schema.tenantPosition!)) = ?1"
        }
        /// Rows of tenant `?2` matching the FTS5 expression `?1` (a phrase's document count in the scope).
        var tenantTextMatches: String {
            "SELECT count(*) FROM \(textName) WHERE \(textName) MATCH ?1 AND EXISTS (SELECT 1 FROM \(name) t WHERE t.row = \(textName).rowid AND t.\(columnName(schema.tenantPosition!)) = ?2)"
        }
        /// Rows matching the FTS5 expression `?` and, optionally, a compiled filter condition (whose parameters follow).
        func keywordMatchCount(condition: String?) -> String {
            let filter =
                condition.map { " AND EXISTS (SELECT 1 FROM \(name) WHERE row = \(textName).rowid AND (\($0)))" } ?? ""
            return "SELECT count(*) FROM \(textName) WHERE \(textName) MATCH ?\(filter)"
        }
        /// The keyword arm: the best rows matching an FTS5 expression by `score` (an expression of the FTS5 table;
        /// more negative is better), optionally under a compiled filter condition, then their ids and columns.
        /// Parameters are unnumbered, bound in order: the score's, the MATCH expression, the condition's, the limit.
        /// The rows come in no set order (the caller sorts the few it gets by score, then row).
        func keywordSearch(score: String, condition: String?, positions: [Int]) -> String {
            let filter =
                condition.map { " AND EXISTS (SELECT 1 FROM \(name) WHERE row = \(textName).rowid AND (\($0)))" } ?? ""
            let columns = (["m.row", "t.id", "m.score"] + positions.map { "t." + columnName($0) }).joined(
                separator: ", ")
            return """
                SELECT \(columns) FROM (SELECT rowid AS row, \(score) AS score FROM \(textName) \
                WHERE \(textName) MATCH ?\(filter) ORDER BY score, rowid LIMIT ?) m \
                JOIN \(name) t ON t.row = m.row
                """
        }

        var insert: String {
            let columns = ["id", "vector"] + schema.columns.indices.map(columnName)
            let params = (1...columns.count).map { "?\($0)" }
            return "INSERT INTO \(name)(\(columns.joined(separator: ", "))) VALUES (\(params.joined(separator: ", ")))"
        }
        /// `row` of an id, whether the row is cold (its vector lives in a block; the column is empty), and its
        /// tenant (NULL without a tenant column).
        var rowForID: String {
            "SELECT row, length(vector) = 0, \(schema.tenantPosition.map(columnName) ?? "NULL") FROM \(name) WHERE id = ?1"
        }
        /// What a row counts for its tenant: tenant, logical bytes (see `TenantUsage`), whether it is cold.
        /// - Precondition: the collection has a tenant column.
        var accountRow: String {
            "SELECT \(columnName(schema.tenantPosition!)), \(bytesExpression), length(vector) = 0 FROM \(name) WHERE row = ?1"
        }
        /// A row's logical size: 4 bytes per vector component, 8 per number, the UTF-8 or blob length of text
        /// and blobs, 0 for NULL.
        var bytesExpression: String {
            let values = schema.columns.indices.map { i in
                let c = columnName(i)
                return
                    "(CASE WHEN \(c) IS NULL THEN 0 WHEN typeof(\(c)) IN ('integer', 'real') THEN 8 ELSE length(CAST(\(c) AS BLOB)) END)"
            }
            return ([String(4 * schema.vector.dimensions)] + values).joined(separator: " + ")
        }
        /// Per tenant: rows and bytes, hot and cold (for `verify`).
        var tenantTotals: String {
            let t = columnName(schema.tenantPosition!)
            return """
                SELECT \(t), sum(length(vector) > 0), sum(CASE WHEN length(vector) > 0 THEN \(bytesExpression) ELSE 0 END), \
                sum(length(vector) = 0), sum(CASE WHEN length(vector) = 0 THEN \(bytesExpression) ELSE 0 END) \
                FROM \(name) GROUP BY \(t)
                """
        }
        /// Deletes the rows of one tenant (`?1`), returning each one's row number and whether it was cold.
        var deleteTenantRows: String {
            "DELETE FROM \(name) WHERE \(columnName(schema.tenantPosition!)) = ?1 RETURNING row, length(vector) = 0"
        }
        var updateVector: String { "UPDATE \(name) SET vector = ?2 WHERE row = ?1" }
        /// Sets one column of one row: `?1` row, `?2` value.
        func updateColumn(_ position: Int) -> String {
            "UPDATE \(name) SET \(columnName(position)) = ?2 WHERE row = ?1"
        }
        var deleteRow: String { "DELETE FROM \(name) WHERE row = ?1" }
        var count: String { "SELECT count(*) FROM \(name)" }
        var vectorForRow: String { "SELECT vector FROM \(name) WHERE row = ?1" }
        /// Hot rows (a cold row's vector lives in its block; its `vector` here is empty).
        var allVectors: String { "SELECT row, vector FROM \(name) WHERE length(vector) > 0 ORDER BY row" }
        /// Hot rows matching a compiled filter condition, with their vectors.
        func hotRowsWhere(_ condition: String) -> String {
            "SELECT row, vector FROM \(name) WHERE length(vector) > 0 AND (\(condition)) ORDER BY row"
        }
        /// Cold rows matching a compiled filter condition, with their block.
        func coldRowsWhere(_ condition: String) -> String {
            "SELECT t.row, c.block FROM \(name) t JOIN hs_cold_rows c ON c.collection = \(number) AND c.row = t.row WHERE \(condition) ORDER BY t.row"
        }
        /// `row, block, c…` of every cold row (filterable columns `positions`).
        func coldRowsWithValues(_ positions: [Int]) -> String {
            (["SELECT c.row", "c.block"] + positions.map { "t." + columnName($0) }).joined(separator: ", ")
                + " FROM hs_cold_rows c JOIN \(name) t ON t.row = c.row WHERE c.collection = \(number)"
        }
        /// Valid rows of a cold block (`?1` block) that match a compiled condition (or `1`).
        func coldBlockRowsWhere(_ condition: String) -> String {
            "SELECT t.row FROM hs_cold_rows c JOIN \(name) t ON t.row = c.row WHERE c.collection = \(number) AND c.block = ?1 AND (\(condition))"
        }

        /// `row, id, c…` of every row.
        func selectAll(_ positions: [Int]) -> String {
            (["SELECT row, id"] + positions.map(columnName)).joined(separator: ", ") + " FROM \(name) ORDER BY row"
        }
        /// `row` of rows matching a compiled filter condition.
        func rowsWhere(_ condition: String) -> String { "SELECT row FROM \(name) WHERE \(condition)" }
        /// `count(*)` of rows matching a compiled filter condition.
        func countWhere(_ condition: String) -> String { "SELECT count(*) FROM \(name) WHERE \(condition)" }

        /// `row, id, [vector,] c…` of rows whose `row` is in the JSON array `?1`.
        func hydrateByRow(_ positions: [Int], vector: Bool = false) -> String {
            let columns = ["row", "id"] + (vector ? ["vector"] : []) + positions.map(columnName)
            return
                "SELECT \(columns.joined(separator: ", ")) FROM \(name) WHERE row IN (SELECT value FROM json_each(?1))"
        }
        /// `row, id, vector` of the rows in the JSON array of the first parameter that match a compiled condition
        /// (its arguments follow); for re-evaluating rows changed under a read (see `ReadView`).
        func vectorsWhere(_ condition: String) -> String {
            "SELECT row, id, vector FROM \(name) WHERE row IN (SELECT value FROM json_each(?)) AND (\(condition))"
        }
        /// `row, id, c…` of the row `?1` (a rowid lookup).
        func hydrateRow(_ positions: [Int]) -> String {
            (["SELECT row, id"] + positions.map(columnName)).joined(separator: ", ") + " FROM \(name) WHERE row = ?1"
        }
        /// `row, id, [vector,] c…` of the row whose `id` is `?1`.
        func selectOneByID(_ positions: [Int], vector: Bool) -> String {
            let columns = ["row", "id"] + (vector ? ["vector"] : []) + positions.map(columnName)
            return "SELECT \(columns.joined(separator: ", ")) FROM \(name) WHERE id = ?1"
        }
        /// `row, id, [vector,] c…` of rows whose `id` is in the JSON array `?1`.
        func selectByID(_ positions: [Int], vector: Bool) -> String {
            let columns = ["row", "id"] + (vector ? ["vector"] : []) + positions.map(columnName)
            return
                "SELECT \(columns.joined(separator: ", ")) FROM \(name) WHERE id IN (SELECT value FROM json_each(?1))"
        }
    }
}
