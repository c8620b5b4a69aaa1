#ifndef CTEXTRANK_H
#define CTEXTRANK_H

#include <sqlite3.h>
#include <stdint.h>

/// Registers HybridStore's FTS5 functions on a connection (call once per connection):
///
/// - `hs_bm25(fts, lengths [, rows, avgTokens, docs_0, ..., docs_{p-1}])`: Okapi BM25 of the current row for
///   the query's p phrases, with the formula, constants (k1 = 1.2, b = 0.75) and sign of FTS5's built-in
///   `bm25()` (more negative is a better match). `lengths` is a `hs_doc_lengths` bound with
///   `hs_bind_doc_lengths` (or NULL): a row's length comes from it when known, else from FTS5's size record
///   (reading that record per row is most of what ranking costs). With only `lengths`, the corpus statistics
///   are FTS5's of the whole table, as `bm25()` uses; given, they are the caller's (a tenant's own rows, so
///   its scores reveal nothing of other tenants' rows).
/// - `hs_docsize_tokens(sz)` (a scalar function): the tokens of a row as its FTS5 `_docsize` record counts them,
///   over all columns (BM25's document length).
///
/// Returns an SQLite result code (SQLITE_OK, or an error when FTS5 is missing).
int hs_register_text_rank(sqlite3 *db);

/// Rows' token counts kept in memory for `hs_bm25`. Not thread-safe: the caller serializes `set` against
/// every statement that reads it (HybridStore: the collection's lock, shared by readers, exclusive by writers).
typedef struct hs_doc_lengths hs_doc_lengths;
hs_doc_lengths *hs_doc_lengths_create(void);
void hs_doc_lengths_free(hs_doc_lengths *lengths);
/// Records row `row`'s token count (a negative count forgets it); grows as needed. SQLITE_OK, SQLITE_NOMEM, or
/// SQLITE_RANGE for a row outside [0, 2^40).
int hs_doc_lengths_set(hs_doc_lengths *lengths, int64_t row, int64_t tokens);
/// Binds `lengths` as parameter `index` of a statement calling `hs_bm25` (SQLite's pointer passing).
int hs_bind_doc_lengths(sqlite3_stmt *statement, int index, hs_doc_lengths *lengths);

#endif
