import CSQLite
import CTextRank

/// A collection's searchable text as posting lists in memory (per term, the rows holding it and how often),
/// tokenized by the same FTS5 tokenizer as its keyword index, so they hold what that index holds. The keyword
/// arm ranks a plain words query from them: every matching row scored with FTS5's BM25 formula and statistics
/// (`hs_postings_top`), in a few microseconds where FTS5 decodes each match's position list and calls the
/// ranking function per row (Benchmarks/README.md). Filtered, tenant-scoped, snapshot and FTS5-syntax queries,
/// and words that tokenize to more than one term, are ranked in SQLite as before.
///
/// Loaded on a collection's first keyword query holding the store's writer (so no commit is missed), kept by
/// the writer after each commit for the rows whose searchable text changed or that went.
///
/// Threading: guarded by the collection's lock, like `TextLengths`.
// @safe: owns its C structure; every call passes it only for the call's duration.
@safe final class TextPostings: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): every access happens under the owning collection's `lock`.
    private let handle: OpaquePointer
    /// Every row was indexed when loaded; false once one could not be (memory, a row number ≥ 2^32, a term more
    /// than 65,535 times in one row): queries then rank in SQLite.
    private(set) var isComplete = true

    init() {
        guard let handle = unsafe hs_postings_create() else { fatalError("out of memory creating posting lists") }
        unsafe self.handle = unsafe handle
    }

    deinit { unsafe hs_postings_free(handle) }

    /// Bytes held (dictionary, lists and each row's terms).
    var bytes: Int { unsafe Int(hs_postings_bytes(handle)) }

    /// Indexes every row of `statement` (bound, not stepped; `row, text…` with `columns` texts), tokenized by
    /// the connection's tokenizer for `tokenizer` (the FTS5 `tokenize` option).
    func index(_ statement: Statement, columns: Int, tokenizer: String, on connection: Connection) throws {
        let rc = try unsafe connection.withTokenizer(tokenizer) { t in
            unsafe hs_postings_index_statement(handle, t, statement.handle, Int32(columns))
        }
        statement.reset()
        switch rc {
        case SQLITE_OK: break
        case SQLITE_NOMEM, SQLITE_TOOBIG, SQLITE_RANGE: isComplete = false
        default: throw SQLiteError(code: rc, message: "indexing searchable text in memory", sql: nil)
        }
    }

    /// Replaces each of `rows` here by what `other` holds of it (nothing: the row goes).
    func replace(rows: [Int64], from other: TextPostings) {
        guard isComplete else { return }
        if !other.isComplete {
            isComplete = false
            return
        }
        let rc = unsafe rows.withUnsafeBufferPointer { buffer in
            unsafe hs_postings_move_rows(handle, other.handle, buffer.baseAddress, Int32(buffer.count))
        }
        if rc != SQLITE_OK { isComplete = false }
    }

    /// The best `depth` rows for a words query (the words OR'ed, each one term as the tokenizer reads it), by
    /// BM25 over a corpus of `rows` rows of `tokens` tokens, each row's length from `lengths`: rows and scores
    /// (positive, higher better) best first, and how many rows matched. Nil when these lists cannot rank it:
    /// a word that is not exactly one term, more than 16 words, an empty corpus, or a matching row whose
    /// length is not in `lengths`.
    func top(
        words: [String], tokenizer: String, on connection: Connection, rows: Int64, tokens: Int64,
        lengths: TextLengths, depth: Int
    ) throws -> (rows: [Int64], scores: [Double], matches: Int)? {
        guard isComplete, !words.isEmpty, words.count <= Int(HS_POSTINGS_MAX_PHRASES), rows > 0, tokens > 0, depth > 0
        else { return nil }
        var terms: [Int32] = []
        terms.reserveCapacity(words.count)
        let single = try unsafe connection.withTokenizer(tokenizer) { t in
            for word in words {
                var term: Int32 = -1
                var utf8 = word
                let count = utf8.withUTF8 { bytes in
                    unsafe hs_postings_query_term(
                        handle, t, UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self),
                        Int32(bytes.count), &term)
                }
                guard count == 1 else { return false }
                terms.append(term)
            }
            return true
        }
        guard single else { return nil }
        var outRows = [Int64](repeating: 0, count: depth)
        var outScores = [Double](repeating: 0, count: depth)
        var matches: Int64 = 0
        let count = unsafe terms.withUnsafeBufferPointer { termBuffer in
            unsafe outRows.withUnsafeMutableBufferPointer { rowBuffer in
                unsafe outScores.withUnsafeMutableBufferPointer { scoreBuffer in
                    unsafe hs_postings_top(
                        handle, lengths.handle, termBuffer.baseAddress, Int32(termBuffer.count), Double(rows),
                        Double(tokens) / Double(rows), Int32(depth), rowBuffer.baseAddress, scoreBuffer.baseAddress,
                        &matches)
                }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(outRows.prefix(Int(count))), Array(outScores.prefix(Int(count))), Int(matches))
    }
}

/// FTS5's corpus totals from its averages record (`_data` row 1): the rows indexed and their tokens over every
/// column, SQLite varints (nil when the record is malformed).
func fts5Totals(_ record: [UInt8]) -> (rows: Int64, tokens: Int64)? {
    var at = 0
    func varint() -> UInt64? {
        var value: UInt64 = 0
        for i in 0..<9 {
            guard at < record.count else { return nil }
            let byte = record[at]
            at += 1
            if i == 8 { return (value << 8) | UInt64(byte) }
            value = (value << 7) | UInt64(byte & 0x7f)
            if byte & 0x80 == 0 { return value }
        }
        return value
    }
    guard let rows = varint() else { return nil }
    var tokens: UInt64 = 0
    while at < record.count {
        guard let n = varint() else { return nil }
        tokens &+= n
    }
    guard rows <= UInt64(Int64.max), tokens <= UInt64(Int64.max) else { return nil }
    return (Int64(rows), Int64(tokens))
}
