import CTextRank

/// Each row's token count (BM25's document length) in memory, for the keyword ranking: reading FTS5's size
/// record per matching row costs most of a BM25 ranking's time (Benchmarks/README.md). Loaded from those records
/// on a collection's first keyword query, kept by the writer after each commit for the rows whose searchable
/// text changed. A row not known here is ranked with FTS5's own record, so rankings equal FTS5's; only a reader
/// whose snapshot predates the last commit may rank a row rewritten by it with the row's new length.
///
/// Threading: guarded by the collection's lock: keyword statements run under its shared side; loading and
/// updates take its exclusive side.
// @safe: owns its buffers; lookups are bounded by their counts.
@safe final class TextLengths: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): every access happens under the owning collection's `lock` (see above).
    /// Lent to `TextPostings.top` only, under the same lock.
    let handle: OpaquePointer
    private(set) var isLoaded = false

    init() {
        guard let handle = unsafe hs_doc_lengths_create() else {
            fatalError("out of memory creating the keyword lengths")
        }
        unsafe self.handle = unsafe handle
    }

    deinit { unsafe hs_doc_lengths_free(handle) }

    /// Records a row's token count (nil forgets it). Returns false when memory ran out (the row is then ranked
    /// with FTS5's record).
    @discardableResult
    func set(row: Int64, tokens: Int64?) -> Bool {
        unsafe hs_doc_lengths_set(handle, row, tokens ?? -1) == 0
    }

    /// Loads every row's count from the keyword index's size records.
    func load(from statement: Statement) throws(SQLiteError) {
        while try statement.step() { set(row: statement.int64(0), tokens: statement.int64(1)) }
        isLoaded = true
    }

    /// RAM of the counts (4 bytes a row number up to the highest loaded).
    var bytes: Int { unsafe Int(hs_doc_lengths_capacity(handle)) * MemoryLayout<UInt32>.size }

    /// Forgets everything (the index was rebuilt); the next query loads again.
    func reset() {
        isLoaded = false
    }

    /// Binds the lengths as parameter `index` of a statement calling `hs_bm25`.
    func bind(to statement: Statement, at index: Int32) throws(SQLiteError) {
        unsafe try statement.check(hs_bind_doc_lengths(statement.handle, index, handle))
    }
}
